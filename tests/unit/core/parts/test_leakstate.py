"""The leak watch's state file, leaks.json, as a watcher loads and saves it: NaN and
infinities refused, a file of the wrong shape named in one line, a value that cannot be
encoded reported once."""
import json

import pytest

from guardian.config import Config, Critical, LeakWatch, Leaks, Match
from guardian.core.parts.leakstate import STATE_NAME
from guardian.core.parts.leakwatch import LeakWatcher
from tests.support.fakes import Tell


BOOT = "0a1b2c3d-0000-4000-8000-000000000001"


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


def test_a_column_does_what_the_series_did_with_array():
    import struct
    from array import array

    from guardian.core.parts.leakstate import Column

    for code, values in (("d", [0.5, -1.25, 1e300, 3.0, float("inf")]), ("q", [0, -1, 2 ** 62, 7, 7])):
        col, arr = Column(code), array(code)
        for v in values:
            col.append(v)
            arr.append(v)
        assert len(col) == len(arr) and list(col) == arr.tolist() == col.tolist()
        for i in range(-len(arr), len(arr)):
            assert col[i] == arr[i]
        for sl in (slice(1, None), slice(None, -1), slice(2, 2), slice(None, None, 2), slice(-3, None)):
            assert col[sl] == arr[sl].tolist()
        assert col.count(values[-1]) == arr.count(values[-1])
        col[0] = arr[0] = values[3]
        del col[:2]
        del arr[:2]
        assert col.tolist() == arr.tolist()
        with pytest.raises(IndexError):
            col[len(arr)]
    with pytest.raises((TypeError, struct.error)):
        Column("q").append(1.5)  # as array: no float in an integer column
