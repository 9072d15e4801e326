"""kill -9 a process in the middle of a burst of events: every complete line parses, nothing
before the last line is lost, a torn last line is skipped, and the next writer starts clean."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from guardian.core.eventfiles import read_events_counted
from guardian.core.eventlog import EventLog
from tests.support import REPO

pytestmark = pytest.mark.integration

# The guardian's own event path (Telemetry -> EventLog, fsync on), as fast as it goes, with
# lines of varied length (some over a page) so a kill can land anywhere.
WRITER = r"""
import sys
from guardian.core.telemetry import Telemetry
tell = Telemetry(state_file=None, events_file=sys.argv[1], events_max_bytes=1 << 30)
i = 0
while True:
    tell.event("kill", "burst %d" % i, seq=i, pad="x" * (50 + (i * 997) % 6000),
               victims=[{"pid": i, "name": "n%d" % i}])
    i += 1
"""


def run_writer(path):
    env = dict(os.environ, PYTHONPATH=REPO, GUARDIAN_LOG_LEVEL="error")
    return subprocess.Popen([sys.executable, "-c", WRITER, path], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_lines(path, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= count:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError("the writer did not write %d lines in %s s" % (count, timeout))


def check_log(path):
    records, skipped = read_events_counted(path)
    with open(path, "rb") as f:
        raw = f.read()
    complete = raw.split(b"\n")[:-1] if raw else []
    for line in complete:
        json.loads(line)  # every complete line parses
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(len(seqs))), "a line before the last one is missing or out of order"
    assert skipped <= 1
    return records, skipped, raw


@pytest.mark.parametrize("round_", range(3))
def test_kill_9_during_a_burst(tmp_path, round_):
    path = str(tmp_path / "events.jsonl")
    writer = run_writer(path)
    try:
        wait_for_lines(path, 200 + 150 * round_)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    records, skipped, raw = check_log(path)
    assert len(records) >= 200
    if not raw.endswith(b"\n"):
        assert skipped == 1  # the kill tore the last line: the reader skips it

    # The next guardian appends after whatever the kill left.
    log = EventLog(path)
    log.append({"event": "start", "seq": len(records)})
    log.close()
    after, after_skipped = read_events_counted(path, with_rotated=True)  # it may have rotated
    assert after[-1]["event"] == "start" and len(after) == len(records) + 1
    assert after_skipped == skipped


def test_power_cut_in_mid_line(tmp_path):
    """A power cut can leave part of the last line on disk (what kill -9 rarely does): cut the
    file inside its last line; the reader skips the piece, the next writer starts a fresh line."""
    path = str(tmp_path / "events.jsonl")
    writer = run_writer(path)
    try:
        wait_for_lines(path, 100)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    with open(path, "rb") as f:
        raw = f.read()
    last_start = raw.rstrip(b"\n").rfind(b"\n") + 1
    cut = last_start + (len(raw) - last_start) // 2
    with open(path, "r+b") as f:
        f.truncate(cut)
    records, skipped, _ = check_log(path)
    assert skipped == 1
    log = EventLog(path)
    log.append({"event": "start", "seq": len(records)})
    log.close()
    after, after_skipped = read_events_counted(path, with_rotated=True)  # it may have rotated
    assert after_skipped == 1 and after[-1]["event"] == "start" and [r["seq"] for r in after] == list(range(len(after)))


# --------------------------------------------------------------------------- an event log in RAM

RUN_IN_NAMESPACE = r"""
set -e
mount -t tmpfs tmpfs /var/log
[ -z "$RAM_STATE" ] || mount -t tmpfs tmpfs "$STATE"
exec "$PYTHON" -m guardian --log-level info run --dry-run --board generic --state-file '' --syslog off \
    --hotplug off --state-dir "$STATE"
"""


def _started(events):
    return os.path.exists(events) and any(r.get("event") == "start" for r in read_events_counted(events)[0])


@pytest.mark.parametrize("state_in_ram", [False, True], ids=["data-partition", "all-in-ram"])
def test_var_log_in_ram(tmp_path, state_in_ram):
    """As on Buildroot's skeleton, /var/log is RAM (a tmpfs here, in a mount namespace of its
    own). The real guardian, with no --events-file, keeps its events beside the leak state
    when that is on a persistent filesystem, and says so; when the state is RAM too, it keeps
    them in RAM as a small ring and says how much, as a warning."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare (a mount namespace with /var/log on tmpfs)")
    from guardian.kernel.mounts import fstype_of, read_mounts
    base = str(tmp_path)
    if fstype_of(base, read_mounts()) in ("tmpfs", "ramfs"):  # the data partition must be on disk
        base = tempfile.mkdtemp(prefix="guardian-test-", dir=os.path.join(REPO, "build"))
    state = os.path.join(base, "state")
    os.makedirs(state, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=REPO, PYTHON=sys.executable, STATE=state,
               RAM_STATE="1" if state_in_ram else "")
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", RUN_IN_NAMESPACE],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not state_in_ram:
            events = os.path.join(state, "events.jsonl")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _started(events):
                time.sleep(0.1)
            assert os.path.exists(events), "no events beside the leak state"
        else:
            time.sleep(5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    if not state_in_ram:
        said = "INFO: /var/log/guardian is on tmpfs (RAM): events go to %s/events.jsonl, which survives a reboot"
        assert said % state in err, err
        records, _skipped = read_events_counted(os.path.join(state, "events.jsonl"))
        assert [r["event"] for r in records][:1] == ["start"] and records[-1]["event"] == "stop", records
    else:
        assert "WARNING: /var/log/guardian is on tmpfs (RAM) and so is the state directory %s: events stay in RAM, " \
               "at most 512 KiB (256 KiB and 1 rotation)" % state in err, err
        assert not os.path.exists(os.path.join(state, "events.jsonl"))  # the tmpfs over it is gone
