"""guardian.safefile as any user (the directories here are the test user's own), the leak
state's refusal of NaN/inf and of wrong shapes, and `status` on a state file of the wrong shape.
The attacks by another user, as root, are in tests/integration/test_security_files.py."""
import json
import os
import stat
import time

import pytest

from guardian import safefile
from guardian.commands import status
from guardian.config import Config, Critical, LeakWatch, Leaks, Match
from guardian.core.parts.leakstate import STATE_NAME
from guardian.core.parts.leakwatch import LeakWatcher

BOOT = "0a1b2c3d-0000-4000-8000-000000000001"


# ------------------------------------------------------------------------------ safefile

def test_write_atomic_uses_a_fresh_random_temp_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "d" / "state.json")
    names = set()
    real_replace = os.replace

    def spy(src, dst, **kw):
        names.add(src)
        return real_replace(src, dst, **kw)

    os.replace = spy
    try:
        for i in range(5):
            safefile.write_atomic(path, b"%d" % i)
    finally:
        os.replace = real_replace
    assert len(names) == 5 and all(n.startswith(".state.json.") and n.endswith(".tmp") for n in names)
    assert os.listdir(str(tmp_path / "d")) == ["state.json"]
    assert open(path, "rb").read() == b"4"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(tmp_path / "d")).st_mode) == 0o755


def test_stale_temp_files_of_a_killed_writer_are_swept_once(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / ".m.prom.0123456789ab.tmp").write_bytes(b"half")
    (d / ".m.prom.notours.tmp").write_bytes(b"keep")
    safefile.write_atomic(str(d / "m.prom"), b"x")
    assert sorted(os.listdir(str(d))) == [".m.prom.notours.tmp", "m.prom"]


def test_a_link_is_refused_for_appends_and_replaced_not_followed_by_atomic_writes(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(str(target), str(d / "events.jsonl"))
    with pytest.raises(safefile.UnsafePath, match="events.jsonl is a symbolic link"):
        safefile.open_append(str(d / "events.jsonl"))
    os.symlink(str(target), str(d / "state.json"))
    safefile.write_atomic(str(d / "state.json"), b"new")
    assert target.read_bytes() == b"keep"
    assert not os.path.islink(str(d / "state.json")) and (d / "state.json").read_bytes() == b"new"


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = str(tmp_path / STATE_NAME)
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(safefile.UnsafePath, match="is a FIFO, not a regular file"):
        safefile.read_regular(fifo, 100)
    with pytest.raises(OSError, match="FIFO"):
        safefile.open_append(fifo)
    assert time.monotonic() - started < 1.0


def test_read_regular_reads_at_most_one_byte_past_the_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 100000)
    assert len(safefile.read_regular(str(tmp_path / "big"), 10)) == 11
    with pytest.raises(FileNotFoundError):
        safefile.read_regular(str(tmp_path / "none"), 10)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o707])
def test_a_directory_others_can_write_is_refused_sticky_or_not(tmp_path, mode):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(str(d), mode)
    with pytest.raises(safefile.UnsafePath, match="directory %s is writable by others" % d):
        safefile.write_atomic(str(d / "x"), b"")
    assert os.listdir(str(d)) == []


def test_a_sticky_directory_above_is_fine_one_without_the_bit_is_not(tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    os.chmod(str(up), 0o1777)
    safefile.write_atomic(str(up / "mine" / "x"), b"1")  # like /tmp/guardian/x
    os.chmod(str(up), 0o777)
    with pytest.raises(safefile.UnsafePath,
                       match="directory %s is writable by others .mode 0777. without the sticky bit" % up):
        safefile.write_atomic(str(up / "mine" / "x"), b"2")


def test_remove_removes_a_link_not_its_target(tmp_path):
    (tmp_path / "t").write_bytes(b"keep")
    os.symlink(str(tmp_path / "t"), str(tmp_path / "guardian.prom"))
    assert safefile.remove(str(tmp_path / "guardian.prom"))
    assert (tmp_path / "t").read_bytes() == b"keep" and not os.path.lexists(str(tmp_path / "guardian.prom"))


def test_a_file_where_a_directory_should_be_is_named(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(safefile.UnsafePath, match="refused: %s is a regular file, not a directory" % (tmp_path / "f")):
        safefile.write_atomic(str(tmp_path / "f" / "x"), b"")


# ------------------------------------------------------------------------------ leaks.json

class Tell:
    def __init__(self):
        self.messages = []

    def event(self, kind, message, **fields):
        self.messages.append(message)


def fake_proc(tmp_path):
    d = tmp_path / "proc" / "sys" / "kernel" / "random"
    d.mkdir(parents=True)
    (d / "boot_id").write_text(BOOT + "\n")
    return str(tmp_path / "proc")


def state_doc(mono="100.0", wall="1700000000.0", series=None):
    if series is None:
        series = ('[{"key": "svc", "name": "svc", "kind": "critical", "pid": 5, "start": 1, "segment": 0,'
                  ' "age": [0], "rss": [20480], "file": [0], "seg": [[0, 0]]}]')
    return ('{"format": 1, "boot_id": "%s", "mono": %s, "wall": %s, "series": %s}'
            % (BOOT, mono, wall, series)).encode()


def watcher(tmp_path, data):
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    (state_dir / STATE_NAME).write_bytes(data)
    tell = Tell()
    cfg = Config(critical=(Critical("svc", Match(comm="svc"), leak=LeakWatch(enabled=True, max_rss_mib=64.0)),),
                 leaks=Leaks(state_dir=str(state_dir)))
    w = LeakWatcher(cfg, fake_proc(tmp_path) if not (tmp_path / "proc").exists() else str(tmp_path / "proc"),
                    state_dir=str(state_dir), tell=tell, clock=lambda: 200.0)
    return w, tell


def test_a_good_state_file_loads(tmp_path):
    w, tell = watcher(tmp_path, state_doc())
    assert w.loaded, tell.messages
    assert len(w.series["svc"].t) == 1


@pytest.mark.parametrize("where,value", [("mono", "NaN"), ("mono", "Infinity"), ("mono", "-Infinity"),
                                         ("mono", "1e999"), ("wall", "NaN")])
def test_nan_and_inf_are_refused_on_load_and_saving_goes_on(tmp_path, where, value):
    w, tell = watcher(tmp_path, state_doc(**{where: value}))
    assert not w.loaded and w.series == {}
    assert len(tell.messages) == 1
    message = tell.messages[0]
    assert message.startswith("ignored %s (torn or garbled: " % (tmp_path / "state" / STATE_NAME)), message
    assert ("is not a number this file holds" in message or "is not a finite number" in message), message
    assert "\n" not in message
    w._dirty = True
    assert w.save(300.0, force=True)  # no value from the file left to break encode
    assert json.loads((tmp_path / "state" / STATE_NAME).read_text())["format"] == 1


@pytest.mark.parametrize("doc,why", [
    (b"[1, 2]", "not format 1"),
    (b'{"format": 1, "series": {"a": 1}}', "no list of series"),
    (state_doc(series='[{"key": "svc"}]'), "field 'name' missing"),
    (state_doc(series='[{"key": "svc", "name": "svc", "kind": "critical", "pid": 5, "start": 1, "segment": 0,'
                      ' "age": [0], "rss": [20480], "file": [0], "seg": 5}]'),
     "wrong shape: 'int' object is not iterable"),
    (state_doc(series='[{"key": "svc", "name": "svc", "kind": "critical", "pid": 5, "start": 1, "segment": 0,'
                      ' "age": "x", "rss": [20480], "file": [0], "seg": []}]'), "not an integer: 'x'"),
    (state_doc(mono='"soon"'), "could not convert string to float"),
    (b"[" * 100000 + b"]" * 100000, "nested too deep"),
])
def test_a_state_file_of_the_wrong_shape_is_named_in_one_line(tmp_path, doc, why):
    w, tell = watcher(tmp_path, doc)
    assert not w.loaded
    assert len(tell.messages) == 1 and why in tell.messages[0] and "\n" not in tell.messages[0], tell.messages


def test_a_value_that_cannot_be_encoded_is_reported_once_not_raised(tmp_path):
    w, tell = watcher(tmp_path, state_doc())
    assert w.loaded
    w.series["svc"].t[0] = float("nan")  # however it got there
    for i in range(3):
        w._dirty = True
        assert not w.save(300.0 + i, force=True)
    problems = [m for m in tell.messages if "cannot encode" in m]
    assert len(problems) == 1 and "trend state is kept in memory only" in problems[0], tell.messages


# ------------------------------------------------------------------------------ status

@pytest.mark.parametrize("text,why", [
    ('{"pid": %(pid)d}', "field 'wait_mode' missing"),
    ('[%(pid)d]', "not a JSON object"),
    ('{"pid": "%(pid)d", "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 1e400, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 99999999999999999999, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": 0, "wait_mode": "poll", "rung": "normal"}', "field 'pid' is not a valid int"),
    ('{"pid": %(pid)d, "wait_mode": "poll", "rung": "normal", "kills": "3"}', "field 'kills' is not a valid int"),
    ('{"pid": %(pid)d, "wait_mode": "poll", "rung": ["normal"]}', "field 'rung' is not a valid str"),
    ('{"pid": NaN}', "not JSON (NaN is not allowed)"),
    ('{"pid": ', "not JSON ("),
])
def test_status_names_a_wrong_state_file_in_one_line(tmp_path, text, why):
    path = tmp_path / "state.json"
    path.write_text(text % {"pid": os.getpid()})
    problems = []
    assert status._daemon_state(str(path), problems) is None
    assert problems == ["ignored %s: %s" % (path, problems[0].split(": ", 1)[1])] and why in problems[0], problems


def test_status_takes_a_good_state_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"pid": os.getpid(), "wait_mode": "poll", "rung": "normal", "kills": 2}))
    problems = []
    assert status._daemon_state(str(path), problems)["kills"] == 2 and problems == []
    assert status._daemon_state(str(tmp_path / "none.json"), problems) is None and problems == []
