"""Kernel uevents: the kernel's own messages about devices (memory blocks online/offline, zram
and block devices added or removed), on a NETLINK_KOBJECT_UEVENT socket.

The socket joins the kernel's multicast group (1), not udev's re-broadcast (2), so it works the
same with udev, mdev or nothing, and needs no libudev: the kernel sends it only the events,
and an unprivileged process cannot send to that group (a message whose sender is not the
kernel, port 0, is dropped anyway). A message is "ACTION@DEVPATH" then NUL-separated
KEY=VALUE pairs (ACTION, DEVPATH, SUBSYSTEM, DEVNAME, SEQNUM...).
"""
from __future__ import annotations


from guardian.record import record
from guardian.kernel.sockets import AF_NETLINK, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, Socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
_UDEV_MAGIC = b"libudev\0"


@record
class Uevent:
    action: str
    devpath: str
    subsystem: Optional[str]
    name: str  # DEVNAME, else the last part of DEVPATH (memory42, zram0)
    props: Dict[str, str]


def parse_uevent(data: bytes) -> Optional[Uevent]:
    """One kernel uevent, or None for what is not one (udev's re-broadcast, garbage)."""
    if data.startswith(_UDEV_MAGIC) or b"@" not in data.split(b"\0", 1)[0]:
        return None
    head, *pairs = data.decode("utf-8", "replace").split("\0")
    action, _, devpath = head.partition("@")
    props: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep:
            props[key] = value
    devpath = props.get("DEVPATH", devpath)
    name = props.get("DEVNAME", "").rsplit("/", 1)[-1] or devpath.rstrip("/").rsplit("/", 1)[-1]
    return Uevent(props.get("ACTION", action), devpath, props.get("SUBSYSTEM"), name, props)


def open_uevent_socket() -> Socket:
    """A non-blocking socket on the kernel's uevent group; OSError if the kernel refuses it."""
    sock = Socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT)
    try:
        sock.bind((0, KERNEL_GROUP))
    except OSError:
        sock.close()
        raise
    return sock


def receive(sock: Socket) -> Optional[bytes]:
    """The next message from the kernel, b"" for one from anyone else, None when none is
    waiting. OSError (ENOBUFS: events were lost) is the caller's."""
    try:
        data, (port, _groups) = sock.recvfrom(16384)
    except BlockingIOError:
        return None
    return data if port == 0 else b""
