"""sd_notify through Telemetry: datagrams to $NOTIFY_SOCKET, silent without it."""
import os
import socket

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


def test_silent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    Telemetry(state_file=None).notify(READY="1")  # nothing to send to, nothing raised


def test_a_gone_manager_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    Telemetry(state_file=None).notify(READY="1")


def test_watchdog_interval(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Telemetry(state_file=None).watchdog_interval() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert Telemetry(state_file=None).watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert Telemetry(state_file=None).watchdog_interval() is None
