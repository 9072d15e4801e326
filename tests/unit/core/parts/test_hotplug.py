"""Hotplug from kernel uevents: the messages parsed, filtered and described, fed through a
real socket pair (the netlink socket itself is in tests/integration/core/parts/test_hotplug.py)."""
import errno
import socket

import pytest

from guardian.core.parts import hotplug
from guardian.core.parts.hotplug import HotplugWatcher, describe
from guardian.kernel.uevent import parse_uevent
from tests.support.fakes import Tell


def uevent(action, devpath, subsystem, **props):
    pairs = dict(ACTION=action, DEVPATH=devpath, SUBSYSTEM=subsystem, SEQNUM="1234", **props)
    return ("%s@%s\0" % (action, devpath) + "".join("%s=%s\0" % kv for kv in pairs.items())).encode()


MEMORY_ONLINE = uevent("online", "/devices/system/memory/memory9", "memory")
ZRAM_REMOVE = uevent("remove", "/devices/virtual/block/zram0", "block", DEVNAME="zram0", MAJOR="252")
LOOP_ADD = uevent("add", "/devices/virtual/block/loop0", "block", DEVNAME="loop0")
NET_ADD = uevent("add", "/devices/virtual/net/wlan0", "net", INTERFACE="wlan0")


def test_parse_a_kernel_uevent():
    e = parse_uevent(ZRAM_REMOVE)
    assert (e.action, e.devpath, e.subsystem, e.name) == ("remove", "/devices/virtual/block/zram0", "block", "zram0")
    assert e.props["MAJOR"] == "252"
    assert parse_uevent(MEMORY_ONLINE).name == "memory9"  # no DEVNAME: the last part of DEVPATH


def test_udev_rebroadcast_and_garbage_are_not_uevents():
    assert parse_uevent(b"libudev\0\xfe\xed\xca\xfe" + ZRAM_REMOVE) is None
    assert parse_uevent(b"") is None and parse_uevent(b"no at sign\0A=B\0") is None


@pytest.mark.parametrize("subsystem, action, name, expected", [
    ("memory", "online", "memory42", "memory block memory42 online"),
    ("memory", "offline", "memory7", "memory block memory7 offline"),
    ("block", "add", "zram0", "zram device zram0 add"),
    ("block", "change", "zram1", "zram device zram1 change"),
    ("block", "add", "mmcblk0p2", None),
    ("block", "add", "loop3", None),
    ("net", "add", "wlan0", None),
])
def test_describe(subsystem, action, name, expected):
    assert describe(subsystem, action, name) == expected


class FakeNetlink:
    """recvfrom as a netlink socket answers it: (data, (port, groups)); port 0 is the kernel."""

    def __init__(self, messages, fail=None):
        self.messages = list(messages)
        self.fail = fail
        self.closed = False
        self.pair = socket.socketpair()

    def recvfrom(self, size):
        if not self.messages:
            if self.fail:
                raise self.fail
            raise BlockingIOError(errno.EAGAIN, "no message")
        return self.messages.pop(0)

    def fileno(self):
        return self.pair[0].fileno()

    def close(self):
        self.closed = True
        for s in self.pair:
            s.close()


def test_drain_filters_and_describes_and_ignores_other_senders():
    sock = FakeNetlink([(LOOP_ADD, (0, 1)), (MEMORY_ONLINE, (0, 1)), (NET_ADD, (0, 1)),
                        (uevent("online", "/devices/system/memory/memory3", "memory"), (4242, 1)),  # not the kernel
                        (ZRAM_REMOVE, (0, 1))])
    w = HotplugWatcher(sock)
    assert w.fileno() == sock.fileno()
    assert w.drain() == ["memory block memory9 online", "zram device zram0 remove"]
    assert w.drain() == []
    w.close()
    assert sock.closed and w.fileno() is None and w.drain() == []


def test_socket_overflow_still_asks_for_a_refresh():
    w = HotplugWatcher(FakeNetlink([], fail=OSError(errno.ENOBUFS, "No buffer space available")))
    (change,) = w.drain()
    assert "lost" in change and "No buffer space" in change


def test_on_readable_tells_each_change_and_restarts_the_fill_rate_once():
    tell, calls = Tell(), []
    w = HotplugWatcher(FakeNetlink([(MEMORY_ONLINE, (0, 1)), (ZRAM_REMOVE, (0, 1))]), tell, lambda: calls.append(1))
    w.on_readable()
    assert [(e[0], e[1]) for e in tell.events] == [("hotplug", "memory block memory9 online"),
                                                     ("hotplug", "zram device zram0 remove")]
    assert calls == [1]
    w.on_readable()  # nothing new: nothing told, no restart
    assert len(tell.events) == 2 and calls == [1]


def test_refused_socket_gives_none_and_one_line(monkeypatch, guardian_log):
    def refuse():
        raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")

    monkeypatch.setattr(hotplug, "open_uevent_socket", refuse)
    with guardian_log.at_level("DEBUG"):
        watcher, reason = HotplugWatcher.open()
    assert watcher is None and "Protocol not supported" in reason
    assert len(guardian_log.records) == 1 and "re-read every tick" in guardian_log.records[0].getMessage()
