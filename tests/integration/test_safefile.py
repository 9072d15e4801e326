"""Hostile local users against the files the root guardian writes (issue 12, item 3).

Each attack runs for real: user `nobody` (uid 65534, in a forked child after setuid) plants
symlinks to root-only files and a FIFO in a directory it can write, then the real guardian (as
root: `guardian run` in a subprocess, or the classes the daemon uses) does its work there. The
root-only files must be untouched, nothing may block, the log must name the path refused, and
only the feature that needed the file stops.

To see the attacks succeed against another source tree (e.g. the code before this test):
GUARDIAN_TEST_TREE=/path/to/tree python3 -m pytest tests/integration/test_safefile.py
"""
import errno
import json
from guardian import logger
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid

import pytest

from guardian import safefile
from guardian.config import Config, Leaks
from guardian.core.eventlog import EventLog
from guardian.core.parts.leakstate import STATE_NAME
from guardian.core.parts.leakwatch import LeakWatcher
from guardian.core.parts.metrics import Metrics
from guardian.core.telemetry import Telemetry
from tests.support import REPO

pytestmark = pytest.mark.integration
TREE = os.environ.get("GUARDIAN_TEST_TREE") or REPO
NOBODY = 65534
SECRET = b"root only: must never change\n"


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the attacks are root writing where user nobody (uid 65534) planted links; "
                    "run as root to exercise them")


def as_user(uid, fn, *args):
    """Run fn(*args) in a forked child that has become `uid` (no groups); fail if it fails."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fn(*args)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the attacker's child failed"


class Scene:
    """A base directory nobody can reach through, root-only targets in base/secret, and a
    directory `drop` for the files the guardian writes."""

    def __init__(self):
        self.base = "/tmp/guardian-sec-%s" % uuid.uuid4().hex[:10]  # reachable by nobody (not tmp_path: 0700)
        os.mkdir(self.base, 0o755)
        os.chmod(self.base, 0o755)
        self.secret = os.path.join(self.base, "secret")
        os.mkdir(self.secret, 0o700)
        self.drop = os.path.join(self.base, "drop")
        os.mkdir(self.drop, 0o755)
        self.targets = {}

    def target(self, name):
        path = os.path.join(self.secret, name)
        with open(path, "wb") as f:
            f.write(SECRET)
        os.chmod(path, 0o600)
        self.targets[path] = os.stat(path)
        return path

    def give_drop_to(self, uid, mode=0o755):
        os.chown(self.drop, uid, uid)
        os.chmod(self.drop, mode)

    def plant(self, links=(), fifos=()):
        """As nobody: symlinks name -> target, FIFOs."""
        def work():
            for name, target in links:
                os.symlink(target, os.path.join(self.drop, name))
            for name in fifos:
                os.mkfifo(os.path.join(self.drop, name), 0o666)
        as_user(NOBODY, work)

    def assert_targets_untouched(self):
        for path, before in self.targets.items():
            st = os.stat(path)
            with open(path, "rb") as f:
                assert f.read() == SECRET, "root-only file %s was written through a planted link" % path
            assert (st.st_size, st.st_mtime_ns, st.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino), path

    def path(self, name):
        return os.path.join(self.drop, name)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def scene():
    need_root()
    s = Scene()
    try:
        yield s
    finally:
        s.cleanup()


class Run:
    """`guardian run` (dry run) in a subprocess, its files in scene.drop. Started through `sh -c
    'sleep; exec'` so its PID is known before Python runs: the old metrics temp name was
    .guardian.prom.<PID>.tmp, and the attacker plants that name in the pause."""

    def __init__(self, scene, plant=None, pause=0.5):
        self.log_path = os.path.join(scene.base, "guardian.log")
        self._log = open(self.log_path, "w")
        d = scene.drop
        argv = [sys.executable, "-m", "guardian", "--log-level", "debug", "run", "--dry-run", "--syslog", "off",
                "--hotplug", "off", "--events-file", os.path.join(d, "events.jsonl"),
                "--state-file", os.path.join(d, "state.json"), "--state-dir", d,
                "--metrics-file", os.path.join(d, "guardian.prom")]
        self.proc = subprocess.Popen(["/bin/sh", "-c", 'sleep %s; exec "$@"' % pause, "sh"] + argv,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd="/",
                                     env=dict(os.environ, PYTHONPATH=TREE), start_new_session=True)
        if plant:
            plant(self.proc.pid)
        started = time.monotonic()
        while "start: guardian" not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError("guardian exited %s:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() - started > 20:
                self.kill()
                raise AssertionError("guardian did not start within 20 s (blocked?):\n%s" % self.log())
            time.sleep(0.05)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; it must be gone within 10 s (a guardian stuck in open() on a FIFO was not)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("guardian ignored SIGTERM for 10 s (blocked?):\n%s" % self.log()) from None
        self._log.close()
        return code

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        self._log.close()


def plant_everything(scene):
    """What the old code followed: the state file and its fixed temp name, the event log, the
    leak state's fixed temp name, the metrics temp name (from the PID); a FIFO as leaks.json."""
    def plant(pid):
        scene.plant(links=[("state.json", scene.target("state")), ("state.json.tmp", scene.target("state_tmp")),
                           ("events.jsonl", scene.target("events")),
                           ("leaks.json.tmp", scene.target("leaks_tmp")),
                           (".guardian.prom.%d.tmp" % pid, scene.target("metrics_tmp"))],
                    fifos=["leaks.json"])
    return plant


def test_directory_owned_by_nobody_is_refused_and_the_daemon_runs_on(scene):
    scene.give_drop_to(NOBODY)
    started = time.monotonic()
    run = Run(scene, plant_everything(scene))
    time.sleep(1.5)  # a few ticks: state file, metrics, event log all tried
    assert run.stop() == 0, run.log()
    assert time.monotonic() - started < 20
    log = run.log()
    scene.assert_targets_untouched()
    refused = "refused: directory %s is owned by uid 65534 (nobody), not root" % scene.drop
    for line in ("cannot open the event log %s: %s" % (scene.path("events.jsonl"), refused),
                 "cannot write the state file %s: %s" % (scene.path("state.json"), refused),
                 "cannot write metrics to %s: %s" % (scene.path("guardian.prom"), refused),
                 "cannot read %s: %s" % (scene.path(STATE_NAME), refused)):
        assert line in log, "%r not in the log:\n%s" % (line, log)
    assert "Traceback" not in log, log
    # nothing of root's was created in nobody's directory; the planted entries are as they were
    assert sorted(os.listdir(scene.drop)) == sorted([".guardian.prom.%d.tmp" % run.proc.pid, "events.jsonl",
                                                     "leaks.json", "leaks.json.tmp", "state.json", "state.json.tmp"])


def test_leftovers_in_a_directory_made_safe_are_never_followed(scene):
    """The admin took the directory back (root, 0755), but what nobody planted before is still
    there: links are not followed (the event log refuses its name, replaced files replace the
    link itself), the FIFO does not block startup and is replaced by the leak state."""
    scene.give_drop_to(NOBODY)
    run_pid = []

    def plant(pid):
        run_pid.append(pid)
        plant_everything(scene)(pid)
        scene.give_drop_to(0, 0o755)

    started = time.monotonic()
    run = Run(scene, plant)
    deadline = time.monotonic() + 10
    while not (os.path.isfile(scene.path("state.json")) and not os.path.islink(scene.path("state.json"))
               and os.path.isfile(scene.path("guardian.prom"))):
        assert time.monotonic() < deadline, "state file and metrics not written:\n%s" % run.log()
        time.sleep(0.05)
    with open(scene.path("state.json")) as f:
        assert json.load(f)["pid"] == run.proc.pid  # the state file is the daemon's own again
    status = subprocess.run([sys.executable, "-m", "guardian", "status", "--json", "--state-file",
                             scene.path("state.json")], env=dict(os.environ, PYTHONPATH=TREE), cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert json.loads(status.stdout)["daemon"]["pid"] == run.proc.pid, status.stderr
    assert run.stop() == 0, run.log()
    assert time.monotonic() - started < 30
    log = run.log()
    scene.assert_targets_untouched()
    assert ("cannot open the event log %s: refused: %s is a symbolic link" % (scene.path("events.jsonl"),
                                                                              scene.path("events.jsonl"))) in log, log
    assert "cannot read %s: refused: %s is a FIFO" % (scene.path(STATE_NAME), scene.path(STATE_NAME)) in log, log
    assert "Traceback" not in log, log
    # the event log's link stays as planted (refused, not followed, not removed)
    assert os.readlink(scene.path("events.jsonl")) == os.path.join(scene.secret, "events")
    # the old predictable temp names were never used: their links are still there, unfollowed
    for name in ("state.json.tmp", "leaks.json.tmp", ".guardian.prom.%d.tmp" % run_pid[0]):
        assert os.path.islink(scene.path(name)), name
    assert not [n for n in os.listdir(scene.drop) if n.endswith(".tmp") and not os.path.islink(scene.path(n))]


@pytest.mark.parametrize("mode,why", [(0o777, "writable by others (mode 0777)"),
                                      (0o1777, "writable by others (mode 1777)"),
                                      (0o775, "writable by group 65534 (mode 0775)")])
def test_directory_writable_by_others_is_refused(scene, mode, why, guardian_log):
    """Root's directory, but others may write it: refused, sticky or not (sticky stops others
    removing our files, not planting names we have yet to create). Each writer the daemon uses."""
    os.chown(scene.drop, 0, NOBODY)
    os.chmod(scene.drop, mode)
    if mode & 0o002:  # nobody can plant there itself
        scene.plant(links=[("events.jsonl", scene.target("events")), ("leaks.json.tmp", scene.target("leaks"))])
    refused = "refused: directory %s is %s" % (scene.drop, why)
    guardian_log.set_level(logger.DEBUG)
    events = EventLog(scene.path("events.jsonl"), fsync=False)
    assert not events.append({"event": "test"})
    tell = Telemetry(state_file=scene.path("state.json"))
    tell.write_state({"pid": os.getpid()})
    metrics = Metrics(scene.path("guardian.prom"))
    assert not metrics.write(0.0)
    told = []
    leaks = LeakWatcher(Config(leaks=Leaks(state_dir=scene.drop)), state_dir=scene.drop,
                        tell=type("T", (), {"event": lambda self, kind, msg, **f: told.append(msg)})())
    leaks._dirty = True
    assert not leaks.save(0.0, force=True)
    text = guardian_log.text + "\n".join(told)
    for name in ("events.jsonl", "state.json", "guardian.prom", STATE_NAME):
        assert "%s: %s" % (scene.path(name), refused) in text, (name, text)
    assert not [n for n in os.listdir(scene.drop) if not os.path.islink(scene.path(n))]
    scene.assert_targets_untouched()


def test_a_directory_above_owned_by_another_user_or_a_link_of_theirs_is_refused(scene, guardian_log):
    """Root's own 0755 directory under one that nobody owns (nobody could rename it away and put
    its own in its place), and a path through a link that nobody owns."""
    scene.give_drop_to(NOBODY)
    inner = scene.path("guardian")
    os.mkdir(inner, 0o755)
    guardian_log.set_level(logger.DEBUG)
    tell = Telemetry(state_file=os.path.join(inner, "state.json"))
    tell.write_state({"pid": 1})
    assert "refused: directory %s is owned by uid 65534 (nobody), not root" % scene.drop in guardian_log.text
    assert os.listdir(inner) == []
    # a sticky directory like /tmp is fine above the files, but a link nobody put there is not
    roots = os.path.join(scene.base, "roots")
    os.mkdir(roots, 0o755)
    sticky = os.path.join(scene.base, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    as_user(NOBODY, os.symlink, roots, os.path.join(sticky, "via"))
    with pytest.raises(safefile.UnsafePath, match="is a symbolic link owned by uid 65534 .nobody., not root"):
        safefile.write_atomic(os.path.join(sticky, "via", "state.json"), b"{}")
    assert os.listdir(roots) == []
    # a link root owns is followed (as /var/run -> /run)
    os.symlink(roots, os.path.join(scene.base, "rootlink"))
    safefile.write_atomic(os.path.join(scene.base, "rootlink", "state.json"), b"{}")
    assert os.listdir(roots) == ["state.json"]


def test_leak_state_save_and_load_with_planted_links_and_fifo(scene):
    """The real LeakWatcher in a root directory where nobody's leftovers remain: the FIFO as
    leaks.json is refused at once on load (it used to hang in open()), the save replaces it,
    and the old fixed temp name (a link to a root-only file) is never opened."""
    scene.give_drop_to(NOBODY)
    scene.plant(links=[("leaks.json.tmp", scene.target("leaks_tmp"))], fifos=[STATE_NAME])
    scene.give_drop_to(0, 0o755)
    told = []
    tell = type("T", (), {"event": lambda self, kind, msg, **f: told.append(msg)})()
    started = time.monotonic()
    w = LeakWatcher(Config(leaks=Leaks(state_dir=scene.drop)), state_dir=scene.drop, tell=tell)
    assert time.monotonic() - started < 2
    assert not w.loaded
    assert told == ["cannot read %s: refused: %s is a FIFO, not a regular file; starting without trend history"
                    % (scene.path(STATE_NAME), scene.path(STATE_NAME))]
    w._dirty = True
    assert w.save(0.0, force=True), told
    assert os.path.isfile(scene.path(STATE_NAME)) and not os.path.islink(scene.path(STATE_NAME))
    assert os.path.islink(scene.path("leaks.json.tmp"))
    scene.assert_targets_untouched()
    w2 = LeakWatcher(Config(leaks=Leaks(state_dir=scene.drop)), state_dir=scene.drop, tell=tell)
    assert w2.loaded


def test_metrics_temp_name_is_unpredictable_and_exclusive(scene):
    """The old temp name was .<file>.<PID>.tmp: plant it for our own PID; Metrics.write must not
    write through it, and the file it writes is a regular file, mode 0644."""
    scene.give_drop_to(NOBODY)
    scene.plant(links=[(".guardian.prom.%d.tmp" % os.getpid(), scene.target("metrics_tmp")),
                       ("guardian.prom", scene.target("metrics"))])
    scene.give_drop_to(0, 0o755)
    m = Metrics(scene.path("guardian.prom"))
    assert m.write(0.0)
    st = os.lstat(scene.path("guardian.prom"))
    assert oct(st.st_mode) == oct(0o100644) and st.st_uid == 0
    assert os.path.islink(scene.path(".guardian.prom.%d.tmp" % os.getpid()))
    scene.assert_targets_untouched()
    m.remove()
    assert not os.path.lexists(scene.path("guardian.prom"))


def test_event_log_refuses_a_hard_link_and_a_file_of_another_user(scene, guardian_log):
    """With fs.protected_hardlinks off, a user could hard-link a root file under the log's name;
    and a file nobody made there before the admin took the directory back is not ours."""
    guardian_log.set_level(logger.DEBUG)
    target = scene.target("events")
    os.link(target, scene.path("events.jsonl"))
    del scene.targets[target]  # same inode, counted again below
    log = EventLog(scene.path("events.jsonl"), fsync=False)
    assert not log.append({"event": "x"})
    assert "refused: %s has 2 hard links" % scene.path("events.jsonl") in guardian_log.text
    with open(target, "rb") as f:
        assert f.read() == SECRET
    os.unlink(scene.path("events.jsonl"))
    with open(scene.path("events.jsonl"), "wb"):
        pass
    os.chown(scene.path("events.jsonl"), NOBODY, NOBODY)
    log = EventLog(scene.path("events.jsonl"), fsync=False)
    assert not log.append({"event": "x"})
    assert "refused: %s is owned by uid 65534 (nobody), not root" % scene.path("events.jsonl") in guardian_log.text


def test_directories_the_guardian_creates_are_0755_root_whatever_the_umask(scene):
    old = os.umask(0o077)
    try:
        EventLog(os.path.join(scene.base, "new", "log", "events.jsonl"), fsync=False).append({"event": "x"})
    finally:
        os.umask(old)
    for d in ("new", "new/log"):
        st = os.stat(os.path.join(scene.base, d))
        assert (st.st_mode & 0o7777, st.st_uid) == (0o755, 0), d
    assert os.stat(os.path.join(scene.base, "new/log/events.jsonl")).st_mode & 0o037 == 0  # at most 0640


def test_status_does_not_block_on_a_fifo_as_state_file(scene):
    os.mkfifo(scene.path("state.json"))
    out = subprocess.run([sys.executable, "-m", "guardian", "status", "--state-file", scene.path("state.json")],
                         env=dict(os.environ, PYTHONPATH=TREE), cwd="/", stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60)
    text = out.stdout.decode()
    assert out.returncode == 0, text
    assert "state file  ignored %s: refused: %s is a FIFO, not a regular file" % (
        scene.path("state.json"), scene.path("state.json")) in text, text


def test_no_fifo_hang_for_appends_either(scene):
    """A FIFO as the event log with a reader waiting: opened without blocking, then refused."""
    fifo = scene.path("events.jsonl")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(safefile.UnsafePath, match="is a FIFO"):
            safefile.open_append(fifo)
    finally:
        os.close(reader)
    with pytest.raises(OSError) as info:  # without a reader: ENXIO at once, named as a FIFO
        safefile.open_append(fifo)
    assert info.value.errno != errno.EAGAIN and "FIFO" in str(info.value)
