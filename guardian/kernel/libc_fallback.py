"""guardian.kernel.libc's calls where guardian._rest is not built: the libc calls through ctypes,
poll and epoll through select. Imported only then: a daemon with the extension holds neither
this module nor ctypes and select."""
from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Sequence, Tuple


class CtypesLibc:
    """The same calls through ctypes."""

    def __init__(self) -> None:
        try:
            import ctypes
        except ImportError:
            raise OSError(errno.ENOSYS, "ctypes is not available") from None
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.syscall  # noqa: B018 - resolve now, fall back below
        except (OSError, AttributeError):
            import ctypes.util

            path = ctypes.util.find_library("c")
            if not path:
                raise OSError(errno.ENOSYS, "libc not found") from None
            lib = ctypes.CDLL(path, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        self._ctypes, self._lib = ctypes, lib

    def _call(self, name: str, *args: Any) -> int:
        self._ctypes.set_errno(0)
        ret = getattr(self._lib, name)(*args)
        if ret == -1:
            err = self._ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(ret)

    def mlockall(self, flags: int) -> int:
        return self._call("mlockall", flags)

    def prctl(self, option: int, *args: int) -> int:
        c_ulong = self._ctypes.c_ulong
        return self._call("prctl", option, *(c_ulong(a) for a in (list(args) + [0, 0, 0, 0])[:4]))

    def syscall(self, number: int, *args: int) -> int:
        c_long = self._ctypes.c_long
        return self._call("syscall", c_long(number), *(c_long(a) for a in args))

    def eventfd(self, initval: int, flags: int) -> int:
        return self._call("eventfd", self._ctypes.c_uint(initval), flags)

    def timerfd_create(self, clockid: int, flags: int) -> int:
        return self._call("timerfd_create", clockid, flags)

    def timerfd_settime(self, fd: int, interval_s: float) -> int:
        import ctypes  # loaded by __init__

        if not 0 <= interval_s <= 2 ** 31 - 1:
            raise ValueError("timerfd_settime: interval_s must be in 0..INT_MAX")

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

        sec, nsec = int(interval_s), int(round((interval_s % 1) * 1e9))
        if nsec >= 1000000000:
            sec, nsec = sec + 1, 0
        spec = Itimerspec()
        spec.it_interval.tv_sec = spec.it_value.tv_sec = sec
        spec.it_interval.tv_nsec = spec.it_value.tv_nsec = nsec
        return self._call("timerfd_settime", fd, 0, ctypes.byref(spec), None)

    def attach_filter(self, fd: int, program: bytes) -> int:
        import struct

        if not program or len(program) % 8 or len(program) // 8 > 0xFFFF:
            raise ValueError("attach_filter: the program must be 1..65535 8-byte instructions")
        buf = self._ctypes.create_string_buffer(program, len(program))
        fprog = struct.pack("HL", len(program) // 8, self._ctypes.addressof(buf))
        SO_ATTACH_FILTER = 26
        # setsockopt through a socket object made for the descriptor (and detached: it is not ours)
        import _socket

        sock = _socket.socket(fileno=fd)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        finally:
            sock.detach()
        return 0



def select_poll(fds: Sequence[Tuple[int, int]], timeout_s: float) -> List[Tuple[int, int]]:
    """poll(2) on (fd, events) pairs: [(fd, revents)] (a negative timeout waits for ever; select
    rounds the milliseconds up)."""
    import select

    poller = select.poll()
    for fd, events in fds:
        poller.register(fd, events)
    return poller.poll(None if timeout_s < 0 else timeout_s * 1000.0)


def select_epoll_create() -> int:
    """A close-on-exec epoll descriptor, the caller's to close."""
    import select

    ep = select.epoll()
    try:
        return os.dup(ep.fileno())  # the same instance; os.dup's copy is close-on-exec
    finally:
        ep.close()


def select_epoll_add(epfd: int, fd: int, events: int) -> int:
    """EPOLL_CTL_ADD fd to epfd's set, its data the fd."""
    import select

    ep = select.epoll.fromfd(os.dup(epfd))  # registering through a copy adds to the same set
    try:
        ep.register(fd, events)
    finally:
        ep.close()
    return 0
