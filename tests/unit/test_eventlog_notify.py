"""sd_notify through Telemetry: datagrams to $NOTIFY_SOCKET, silent without it."""
import logging
import os
import socket
import time

import pytest

from guardian.core.telemetry import Telemetry


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
    real_socket = socket.socket

    def recording_socket(*args, **kwargs):
        made.append(args)
        return real_socket(*args, **kwargs)

    monkeypatch.setattr(socket, "socket", recording_socket)
    before = open_fds()
    tell.notify(READY="1")  # nothing to send to: no socket made, nothing raised
    tell.notify(STATUS="watching")
    assert made == []
    assert open_fds() == before


def test_a_gone_manager_is_not_an_error(tmp_path, monkeypatch, caplog):
    path = str(tmp_path / "gone")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    caplog.set_level(logging.DEBUG, logger="guardian")
    tell = Telemetry(state_file=None)
    started = time.monotonic()
    tell.notify(READY="1")
    after_first = open_fds()
    for i in range(50):
        tell.notify(STATUS="tick %d" % i)
    assert time.monotonic() - started < 1.0  # never waits for the missing manager
    assert open_fds() == after_first  # one socket, reused: none left behind per call
    # Said at debug level only: the daemon runs on as if unsupervised.
    failed = [r for r in caplog.records if "sd_notify to %s failed" % path in r.getMessage()]
    assert failed and all(r.levelno == logging.DEBUG for r in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
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
