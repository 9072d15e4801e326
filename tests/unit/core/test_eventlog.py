"""The durable event log: lines, rotation, fsync before returning, torn lines, syslog. (Telemetry,
on top of it: test_telemetry.py.)"""
import json
from guardian import logger
import os
import threading
import time

from guardian.core import eventfiles, eventlog
from guardian.core.eventfiles import read_events, read_events_counted
from guardian.core.eventlog import EventLog
from guardian.core.telemetry import Telemetry


def lines(path):
    with open(path, "rb") as f:
        return f.read().splitlines()


def test_append_and_read_back(tmp_path):
    path = str(tmp_path / "sub" / "events.jsonl")  # the directory is created
    log = EventLog(path)
    assert log.append({"event": "start", "n": 1})
    assert log.append({"event": "kill", "name": "hög", "odd": object()})  # non-JSON values become strings
    log.close()
    records = list(read_events(path))
    assert [r["event"] for r in records] == ["start", "kill"]
    assert records[1]["name"] == "hög" and records[1]["odd"].startswith("<object")
    assert all(line.startswith(b"{") for line in lines(path))


def test_rotation_keeps_n_backups(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=400, backups=2, fsync=False)
    for i in range(40):
        log.append({"i": i, "pad": "x" * 40})
    log.close()
    assert os.path.exists(path + ".1") and os.path.exists(path + ".2") and not os.path.exists(path + ".3")
    for p in (path, path + ".1", path + ".2"):
        assert os.path.getsize(p) <= 400
    every = [r["i"] for r in read_events(path, with_rotated=True)]
    assert every == sorted(every) and every[-1] == 39 and len(every) < 40  # the oldest were dropped
    assert every == list(range(every[0], 40))  # nothing missing in what is kept


def test_rotation_without_backups(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path, max_bytes=200, backups=0, fsync=False)
    for i in range(20):
        log.append({"i": i, "pad": "x" * 30})
    log.close()
    assert not os.path.exists(path + ".1") and os.path.getsize(path) <= 200


def test_reader_skips_a_torn_last_line_and_the_writer_starts_fresh(tmp_path):
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path)
    log.append({"event": "a"})
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"event": "kill", "na')  # power cut in mid-write
    records, skipped = read_events_counted(path)
    assert [r["event"] for r in records] == ["a"] and skipped == 1
    log = EventLog(path)
    log.append({"event": "b"})
    log.close()
    records, skipped = read_events_counted(path)
    assert [r["event"] for r in records] == ["a", "b"] and skipped == 1  # the fragment stays one bad line
    assert lines(path)[1] == b'{"event": "kill", "na'


def test_reader_skips_garbage_and_non_objects(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event":"a"}\n\n[1,2]\nnot json\n\x00\x00\n{"event":"b"}\n')
    records, skipped = read_events_counted(str(path))
    assert [r["event"] for r in records] == ["a", "b"] and skipped == 3
    assert list(read_events(str(tmp_path / "absent"))) == []


def test_durable_line_is_synced_before_append_returns(tmp_path, monkeypatch):
    calls = []
    real = os.fdatasync

    def spy(fd):
        calls.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    path = str(tmp_path / "events.jsonl")
    log = EventLog(path)
    log.append({"event": "kill"})
    assert calls == [os.path.getsize(path)]  # synced, with the whole line in it
    log.append({"event": "rung"}, durable=False)
    assert len(calls) == 1
    assert log.syncs == 1 and log.sync_cost_s is not None
    log.close()


def test_slow_fsync_moves_to_a_helper_thread(tmp_path, monkeypatch, guardian_log):
    delay = {"s": 0.05}
    synced = threading.Event()
    threads = []

    def slow(fd):
        threads.append(threading.current_thread().name)
        time.sleep(delay["s"])
        synced.set()

    monkeypatch.setattr(os, "fdatasync", slow)
    log = EventLog(str(tmp_path / "events.jsonl"), fsync_budget_s=0.01)
    log.append({"i": 0})  # measured: too slow
    assert threads == ["MainThread"]
    synced.clear()
    started = time.monotonic()
    with guardian_log.at_level(logger.INFO):
        log.append({"i": 1})
    assert time.monotonic() - started < 0.04  # the act is not held up
    assert synced.wait(2.0) and threads[-1] != "MainThread"  # the helper (a _thread thread: no name)
    assert log.deferred_syncs == 1 and "background" in guardian_log.text
    # Once the disk is quick again, syncs come back before the act.
    delay["s"] = 0.0
    for i in range(30):
        log.append({"i": i + 2})
        time.sleep(0.002)
    before = len(threads)
    log.append({"i": 99})
    assert threads[before:] == ["MainThread"]
    log.close()


def test_unwritable_place_is_an_error_not_a_crash(tmp_path, guardian_log):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with guardian_log.at_level(logger.ERROR):
        log = EventLog(str(blocker / "events.jsonl"))
        assert log.append({"event": "a"}) is False
        assert log.append({"event": "b"}) is False
    assert guardian_log.text.count("cannot open the event log") == 1  # said once, retried later
    blocker.unlink()  # the place becomes writable (a late mount)
    log._retry_at = 0.0  # a minute later
    assert log.append({"event": "c"}) is True
    assert [r["event"] for r in read_events(str(blocker / "events.jsonl"))] == ["c"]
    log.close()


def test_no_path_writes_nothing(tmp_path):
    log = EventLog(None)
    assert log.append({"a": 1}) is False
    log.close()


def test_syslog_datagram_format(fake_devlog, monkeypatch):
    path, server = fake_devlog
    monkeypatch.setattr(eventlog, "SYSLOG_PATH", path)
    log = EventLog(None, syslog=True)
    log.syslog.path = path
    log.send_syslog("kill: hog[100]: ...", eventlog.LOG_WARNING)
    data = server.recv(4096).decode()
    assert data == "<28>guardian[%d]: kill: hog[100]: ..." % os.getpid()  # daemon.warning = 3*8+4
    log.close()


def test_syslog_never_blocks_and_drops_when_nobody_listens(tmp_path):
    s = eventlog._Syslog("guardian", path=str(tmp_path / "absent"))
    started = time.monotonic()
    for _ in range(100):
        s.send("x")
    assert time.monotonic() - started < 0.5 and s.dropped == 100


def test_syslog_auto(monkeypatch, fake_devlog):
    path, _server = fake_devlog
    monkeypatch.setattr(eventlog, "SYSLOG_PATH", path)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert eventlog._want_syslog("auto") is True
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")  # under systemd: stderr is the journal
    assert eventlog._want_syslog("auto") is False
    monkeypatch.setattr(eventlog, "SYSLOG_PATH", path + ".none")
    monkeypatch.delenv("JOURNAL_STREAM")
    assert eventlog._want_syslog("auto") is False
    assert eventlog._want_syslog(False) is False


def test_event_json_is_one_line_even_with_newlines(tmp_path):
    tell = Telemetry(state_file=None, events_file=str(tmp_path / "ev.jsonl"))
    tell.event("reload", "bad config:\nline 2", ok=False)
    tell.close()
    raw = lines(str(tmp_path / "ev.jsonl"))
    assert len(raw) == 1 and json.loads(raw[0])["message"] == "bad config:\nline 2"


def test_measure_fsync(tmp_path):
    result = eventfiles.measure_fsync(str(tmp_path), count=5)
    assert result["count"] == 5 and 0 <= result["median_ms"] <= result["max_ms"]
    assert os.listdir(str(tmp_path)) == []


# --------------------------------------------------------------------------- where the events go

def _fs(ram):
    """fstype_of for a board whose directories in `ram` are tmpfs (the rest ext4)."""
    return lambda path: "tmpfs" if any(path == d or path.startswith(d + "/") for d in ram) else "ext4"


def test_default_place_on_a_persistent_var_log():
    place = eventfiles.choose_place(None, "/var/lib/guardian", _fs(["/tmp", "/run"]))
    assert place.path == eventlog.DEFAULT_EVENTS_FILE and not place.in_ram and place.note is None
    assert place.max_bytes == eventlog.DEFAULT_MAX_BYTES and place.backups == eventlog.DEFAULT_BACKUPS


def test_var_log_in_ram_sends_events_beside_the_leak_state():
    place = eventfiles.choose_place(None, "/var/lib/guardian", _fs(["/var/log", "/tmp"]))
    assert place.path == "/var/lib/guardian/events.jsonl" and not place.in_ram
    assert "/var/log/guardian is on tmpfs (RAM)" in place.note and "survives a reboot" in place.note


def test_nothing_persistent_keeps_a_small_ring_in_ram_and_says_its_size():
    place = eventfiles.choose_place(None, "/var/lib/guardian", _fs(["/var"]))
    assert place.path == eventlog.DEFAULT_EVENTS_FILE and place.in_ram
    assert (place.max_bytes, place.backups) == (eventlog.RAM_MAX_BYTES, eventlog.RAM_BACKUPS)
    assert place.ram_bytes == 512 << 10 and "at most 512 KiB (256 KiB and 1 rotation)" in place.note
    assert eventfiles.choose_place(None, "", _fs(["/var"])).in_ram  # leak state kept in RAM only


def test_an_explicit_path_is_kept_and_ram_is_said():
    place = eventfiles.choose_place("/run/guardian/events.jsonl", "/var/lib/guardian", _fs(["/run"]))
    assert place.path == "/run/guardian/events.jsonl" and place.in_ram
    assert "lost at a reboot" in place.note and "up to 3 MiB of RAM (1 MiB and 2 rotations)" in place.note
    assert eventfiles.choose_place("/data/ev.jsonl", None, _fs(["/run"])).note is None
    assert eventfiles.choose_place("", "/var/lib/guardian", _fs(["/var"])).path is None


def test_unknown_filesystem_is_taken_as_persistent():
    assert eventfiles.choose_place(None, "/var/lib/guardian", lambda p: None).path == eventlog.DEFAULT_EVENTS_FILE
