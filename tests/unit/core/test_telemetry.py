"""Telemetry: event lines to the event log and syslog, metrics fed from the events, and
sd_notify datagrams to $NOTIFY_SOCKET (silent without it)."""
from guardian import logger
import os
import socket
import time

import pytest

from guardian.core import eventlog, telemetry
from guardian.core.eventfiles import read_events
from guardian.core.telemetry import Telemetry


def test_telemetry_event_line(tmp_path, fake_devlog, monkeypatch):
    path, server = fake_devlog
    monkeypatch.setattr(eventlog, "SYSLOG_PATH", path)
    tell = Telemetry(state_file=None, events_file=str(tmp_path / "ev.jsonl"), syslog=True)
    tell.eventlog.syslog.path = path
    tell.event("kill", "hog[100]: memory short", pid=100, name="hog", freed_bytes=1 << 20, time=5, event="x")
    tell.close()
    (record,) = list(read_events(str(tmp_path / "ev.jsonl")))
    assert record["event"] == "kill" and record["message"] == "hog[100]: memory short"
    assert abs(record["time"] - time.time()) < 60
    assert record["field_time"] == 5 and record["field_event"] == "x"  # never overwrite the event's own
    assert record["pid"] == 100 and record["freed_bytes"] == 1 << 20
    assert server.recv(4096).decode().endswith("kill: hog[100]: memory short")
    assert tell.counts == {"kill": 1}


def test_telemetry_without_events_file_keeps_old_behaviour(tmp_path):
    tell = Telemetry(state_file=None)
    assert tell.eventlog is None
    tell.event("start", "x")
    tell.close()


def test_telemetry_feeds_metrics(tmp_path):
    from guardian.core.parts.metrics import Metrics
    m = Metrics(None)
    tell = Telemetry(state_file=None, metrics=m)
    tell.event("kill", "x", name="hog")
    tell.event("kill", "dry", name="hog", dry_run=True)
    tell.event("kernel_oom", "y", cause="fragmentation")
    assert m.actions["kill"] == 1 and m.kills == {"hog": 1} and m.kernel_oom_causes == {"fragmentation": 1}


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def test_ready_status_watchdog_reload(notify_socket):
    tell = Telemetry(state_file=None)
    tell.notify(READY="1", STATUS="watching, wait mode psi-trigger")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=watching, wait mode psi-trigger"
    tell.notify(STATUS="reclaim, 31 MiB available")
    assert notify_socket.recv(4096) == b"STATUS=reclaim, 31 MiB available"
    tell.notify(RELOADING="1", MONOTONIC_USEC="123")
    assert notify_socket.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=123"
    tell.notify(WATCHDOG="1")
    assert notify_socket.recv(4096) == b"WATCHDOG=1"


def test_abstract_socket(monkeypatch):
    name = "guardian-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        Telemetry(state_file=None).notify(READY="1")
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_silent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    tell = Telemetry(state_file=None)
    made = []
    real_socket = telemetry.Socket

    def recording_socket(*args, **kwargs):
        made.append(args)
        return real_socket(*args, **kwargs)

    monkeypatch.setattr(telemetry, "Socket", recording_socket)
    before = open_fds()
    tell.notify(READY="1")  # nothing to send to: no socket made, nothing raised
    tell.notify(STATUS="watching")
    assert made == []
    assert open_fds() == before


def test_a_gone_manager_is_not_an_error(tmp_path, monkeypatch, guardian_log):
    path = str(tmp_path / "gone")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    guardian_log.set_level(logger.DEBUG)
    tell = Telemetry(state_file=None)
    started = time.monotonic()
    tell.notify(READY="1")
    after_first = open_fds()
    for i in range(50):
        tell.notify(STATUS="tick %d" % i)
    assert time.monotonic() - started < 1.0  # never waits for the missing manager
    assert open_fds() == after_first  # one socket, reused: none left behind per call
    # Said at debug level only: the daemon runs on as if unsupervised.
    failed = [r for r in guardian_log.records if "sd_notify to %s failed" % path in r.getMessage()]
    assert failed and all(r.levelno == logger.DEBUG for r in failed)
    assert not [r for r in guardian_log.records if r.levelno >= logger.WARNING]
    # The manager back at that address: the next notification reaches it, and none of those
    # sent while it was gone were kept for it.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.settimeout(2.0)
        tell.notify(STATUS="back")
        assert sock.recv(4096) == b"STATUS=back"
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
    finally:
        sock.close()


def test_watchdog_interval(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Telemetry(state_file=None).watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert Telemetry(state_file=None).watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert Telemetry(state_file=None).watchdog_interval() is None


def test_log_lines_reach_syslog_with_their_severity_and_events_only_once(tmp_path, fake_devlog):
    """Where there is no journal (BusyBox: stderr is /dev/null under start-stop-daemon -b),
    the log lines go to syslog too, each with its level's severity; an event goes once, with
    its own severity; after close nothing more is sent."""
    path, server = fake_devlog
    tell = Telemetry(state_file=None, syslog=True)
    tell.eventlog.syslog.path = path
    log = logger.log
    before = log.level
    log.setLevel(logger.INFO)
    try:
        log.warning("running without some capabilities (uid %d)", 0)
        log.info("config: %s", "generic.toml")
        log.debug("not at this level")
        tell.event("start", "guardian armed")
        tell.event("kill", "hog[100]: memory short")
        tell.close()
        log.error("after close")
    finally:
        log.setLevel(before)
    server.settimeout(0.2)
    got = []
    try:
        while True:
            got.append(server.recv(4096).decode())
    except socket.timeout:
        pass
    # <PRI> = facility daemon (3) * 8 + severity
    assert [g.split(">", 1)[0] for g in got] == ["<28", "<30", "<29", "<28"], got
    assert got[0].endswith("running without some capabilities (uid 0)")
    assert got[1].endswith("config: generic.toml")
    assert got[2].endswith("start: guardian armed") and got[3].endswith("kill: hog[100]: memory short")


def test_no_syslog_handler_without_syslog(tmp_path):
    before = list(logger.log.handlers)
    tell = Telemetry(state_file=None, events_file=str(tmp_path / "ev.jsonl"), syslog=False)
    assert logger.log.handlers == before
    tell.close()
