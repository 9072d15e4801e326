"""Wait: sleep until the kernel says memory got tight, or the adaptive timeout runs out.

Modes, best first:
- psi-trigger: a PSI trigger with the configured (sub-second) window; needs CAP_SYS_RESOURCE
  on kernels that restrict unprivileged triggers.
- psi-trigger-2s: the same with the window widened to a 2 s multiple, which unprivileged
  processes may use.
- poll: no PSI (absent, disabled with psi=0, or triggers refused): timeouts only.
In cgroup v1 scope, usage thresholds on memory.usage_in_bytes (cgroup.event_control + eventfd)
wake the guardian the moment usage crosses a line, whatever the PSI mode.
"""
from __future__ import annotations

import errno
import os

from guardian.config import MIB, Wait
from guardian.kernel.libc import POLLERR, POLLIN, POLLPRI, epoll_add, epoll_create, libc, poll

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

POLLPRI_ERR = POLLPRI | POLLERR


def _open_trigger(path: str, kind: str, stall_us: int, window_us: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # The kernel parses up to the last byte written: the NUL ends the string.
        os.write(fd, ("%s %d %d" % (kind, stall_us, window_us)).encode() + b"\0")
    except OSError:
        os.close(fd)
        raise
    return fd


def arm_psi(path: str, wait: Wait) -> Tuple[Optional[int], str, str]:
    """Arm a PSI trigger on `path`. Returns (fd or None, mode, detail)."""
    if not wait.use_psi:
        return None, "poll", "PSI triggers disabled by config"
    if not os.path.exists(path):
        return None, "poll", "%s absent" % path
    window = wait.psi_window_us
    stall = min(wait.psi_stall_us, window)
    try:
        return _open_trigger(path, "some", stall, window), "psi-trigger", "some %d us in %d us" % (stall, window)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EACCES):
            return None, "poll", "%s: %s" % (path, exc.strerror)
        first = exc.strerror
    # Unprivileged triggers need a window that is a multiple of 2 s.
    window2 = max(2000000, (window + 1999999) // 2000000 * 2000000)
    try:
        fd = _open_trigger(path, "some", stall, window2)
        return fd, "psi-trigger-2s", "some %d us in %d us (privileged window refused: %s)" % (stall, window2, first)
    except OSError as exc:
        return None, "poll", "%s: trigger refused: %s" % (path, exc.strerror)


def _eventfd() -> int:
    """A non-blocking eventfd: os's from Python 3.10 on, else guardian.kernel.libc's."""
    make = getattr(os, "eventfd", None)
    if make is not None:
        return make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # type: ignore[no-any-return]
    return libc().eventfd(0, os.O_NONBLOCK | os.O_CLOEXEC)  # type: ignore[no-any-return]  # EFD_*: O_*'s bits


class UsageThresholds:
    """cgroup v1: eventfds that fire when memory.usage_in_bytes crosses each line."""

    def __init__(self, cgroup_dir: str):
        self.cgroup_dir = cgroup_dir
        self._fds: Dict[int, int] = {}  # usage threshold -> eventfd
        self._usage_fd: Optional[int] = None
        self.error: Optional[str] = None
        self.limit: Optional[int] = None  # the limit the ladder was built for

    def set(self, usages: Sequence[int]) -> None:
        wanted = set(int(u) for u in usages if u > 0)
        if wanted == set(self._fds):
            return
        self.close()
        try:
            self._usage_fd = os.open(os.path.join(self.cgroup_dir, "memory.usage_in_bytes"), os.O_RDONLY | os.O_CLOEXEC)
            control = os.path.join(self.cgroup_dir, "cgroup.event_control")
            for usage in sorted(wanted):
                efd = _eventfd()
                self._fds[usage] = efd
                with open(control, "w") as f:
                    f.write("%d %d %d" % (efd, self._usage_fd, usage))
            self.error = None
        except OSError as exc:
            self.error = "%s: %s" % (self.cgroup_dir, exc.strerror)
            self.close()

    def fds(self) -> List[int]:
        return list(self._fds.values())

    def drain(self, fd: int) -> None:
        try:
            os.read(fd, 8)  # the count (os.eventfd_read's read, which Python 3.9 lacks)
        except OSError:
            pass

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
        if self._usage_fd is not None:
            os.close(self._usage_fd)
            self._usage_fd = None


def adaptive_timeout(headroom: int, fill_rate: float, wait: Wait, armed: bool) -> float:
    """Sleep no longer than the time the fastest fill seen (or assumed) needs to eat the
    headroom above the kill line, within [min_timeout_s, max_timeout_s]."""
    rate = max(wait.assumed_fill_rate_mib_s * MIB, 2.0 * fill_rate)
    ceiling = wait.max_timeout_s if armed else wait.max_timeout_poll_s
    if headroom <= 0:
        return wait.min_timeout_s
    return max(wait.min_timeout_s, min(ceiling, headroom / rate))


class Waiter:
    """One poll set: PSI trigger, cgroup thresholds, and whatever else the daemon adds."""

    def __init__(self, wait: Wait, psi_path: Optional[str], thresholds: Optional[UsageThresholds] = None):
        self.wait = wait
        self.psi_fd: Optional[int] = None
        self.mode = "poll"
        self.detail = "no PSI file for this scope"
        if psi_path is not None:
            self.psi_fd, self.mode, self.detail = arm_psi(psi_path, wait)
        self.thresholds = thresholds
        self._extra: Dict[int, Callable[[], None]] = {}
        self._poll_fds: Optional[Tuple[Tuple[int, int], ...]] = None  # None: to be built again
        self._epoll: Optional[int] = None  # the same set as an epoll descriptor, for the loop at rest in C
        self._threshold_fds: Tuple[int, ...] = ()

    @property
    def armed(self) -> bool:
        """True when some kernel event wakes the guardian between timeouts."""
        return self.psi_fd is not None or bool(self.thresholds and self.thresholds.fds())

    def describe(self) -> str:
        text = "%s (%s)" % (self.mode, self.detail)
        if self.thresholds is not None:
            if self.thresholds.fds():
                text += " + cgroup v1 usage thresholds"
            elif self.thresholds.error:
                text += "; cgroup v1 thresholds unavailable: %s" % self.thresholds.error
        return text

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        self._extra[fd] = callback
        self._poll_fds = None

    def remove(self, fd: int) -> None:
        self._extra.pop(fd, None)
        self._poll_fds = None

    def poll_set(self) -> Tuple[Tuple[int, int], ...]:
        """The (fd, events) pairs to poll, built again only when its descriptors changed (a
        quiet wake-up at rest allocates nothing here)."""
        threshold_fds = tuple(self.thresholds.fds()) if self.thresholds else ()
        if self._poll_fds is None or threshold_fds != self._threshold_fds:
            wanted: Dict[int, int] = {}  # one mask per fd, the last
            if self.psi_fd is not None:
                wanted[self.psi_fd] = POLLPRI
            for fd in threshold_fds:
                wanted[fd] = POLLIN
            for fd in self._extra:
                wanted[fd] = POLLIN | POLLPRI
            self._poll_fds, self._threshold_fds = tuple(wanted.items()), threshold_fds
            self._close_epoll()
        return self._poll_fds

    def rest_fds(self) -> "Union[int, Tuple[Tuple[int, int], ...]]":
        """What the loop at rest in C (guardian._rest) waits on: an epoll descriptor holding the
        poll set (registered once: under emulation a poll(2) of four descriptors cost a third
        more per wake than one epoll_wait), or the (fd, events) pairs where epoll refused one."""
        pairs = self.poll_set()
        if self._epoll is None and pairs:
            ep = epoll_create()
            try:
                for fd, mask in pairs:  # poll's POLLIN and POLLPRI are epoll's bits
                    epoll_add(ep, fd, mask)
            except OSError:
                os.close(ep)
                return pairs
            self._epoll = ep
        return self._epoll if self._epoll is not None else pairs

    def _close_epoll(self) -> None:
        if self._epoll is not None:
            os.close(self._epoll)
            self._epoll = None

    def wait_for(self, timeout_s: float) -> List[str]:
        """Block until an event or the timeout; returns what woke it ("psi", "threshold",
        "fd", or nothing for a timeout). Extra fds' callbacks run here."""
        pairs = self.poll_set()
        try:
            events = poll(pairs, max(0.0, timeout_s))
        except InterruptedError:
            return ["signal"]
        return self.handle(events) if events else []

    def handle(self, events: List[Tuple[int, int]]) -> List[str]:
        """What poll() returned on the poll set: what woke it; extra fds' callbacks run here."""
        woke = []
        threshold_fds = self._threshold_fds
        for fd, mask in events:
            if fd == self.psi_fd:
                if mask & POLLERR:
                    # The trigger went away (PSI file gone): fall back to polling.
                    os.close(self.psi_fd)
                    self.psi_fd, self.mode, self.detail = None, "poll", "PSI trigger failed (POLLERR)"
                    self._poll_fds = None
                woke.append("psi")
            elif self.thresholds is not None and fd in threshold_fds:
                self.thresholds.drain(fd)
                woke.append("threshold")
            elif fd in self._extra:
                woke.append("fd")
                self._extra[fd]()
        return woke

    def close(self) -> None:
        self._poll_fds = None
        self._close_epoll()
        if self.psi_fd is not None:
            os.close(self.psi_fd)
            self.psi_fd = None
        if self.thresholds is not None:
            self.thresholds.close()
