"""Signalling processes without PID-reuse races.

A victim is named by (pid, starttime): starttime is field 22 of /proc/<pid>/stat, the clock
tick the process started at, so a recycled PID shows a different one. ``open_process`` takes
a pidfd (pidfd_open(2), Linux >= 5.3) *first* and checks the starttime *afterwards*: if the
check passes, the pidfd refers to the very process that was chosen, and every later signal
goes through the pidfd, which can never reach a process that merely inherited the number.
(If the victim dies and its PID is reused between the two steps, the starttime check fails
and we act on nothing - the safe direction.)

Degraded mode: on a kernel without pidfds (< 5.3, or a seccomp filter that refuses the
syscall) the handle carries no pidfd and ``handle.degraded`` says why. Signals are then sent
with kill(2) right after re-checking the starttime; between that check and kill(2) the
victim could exit, be reaped and have its PID handed to a new process, which would then be
signalled. The window is a few microseconds and needs a full PID wrap-around, but it exists;
memory cannot be released early (process_mrelease needs a pidfd) in that mode.

Nothing in this module raises because a process vanished: a vanished process makes
``open_process`` return None, ``send_signal`` return False and ``kill`` report
``signalled=False`` without an error.
"""
from __future__ import annotations

import errno
import os
import _signal as signal  # not signal.py: its enums import enum, functools, collections (~0.7 MiB)
import struct
import time

from guardian.kernel.libc import POLLIN, libc, poll
from guardian.record import mutable_record, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

__all__ = [
    "ProcessHandle",
    "KillResult",
    "open_process",
    "send_signal",
    "kill",
    "release_memory",
    "wait_exit",
    "exited",
    "kernel_support",
]

# pidfd_send_signal(2) flag, Linux >= 6.9: signal the process group of the pidfd's process,
# resolved by the kernel from the process itself (no PGID read/reuse race).
PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2

# Syscall numbers of the unified table (asm-generic, x86, arm, arm64, riscv, powerpc, s390,
# loongarch...). MIPS and Alpha number their tables differently, see _syscall_number.
_SYSCALLS = {"pidfd_send_signal": 424, "pidfd_open": 434, "process_mrelease": 448}

# What the kernel turned out not to support; None = not known to be missing.
_pidfd_missing: Optional[str] = None
_mrelease_missing: Optional[str] = None
_pgroup_flag_missing = False



# --------------------------------------------------------------------------- raw syscalls


def _syscall_number(name: str) -> int:
    number = _SYSCALLS[name]
    machine = os.uname().machine
    if machine.startswith("mips"):
        # o32 tables start at 4000, n64 at 5000 (n32, at 6000, is not told apart from o32).
        return number + (5000 if struct.calcsize("P") == 8 else 4000)
    if machine.startswith("alpha"):
        return number + 110
    return number


def _syscall(name: str, *args: int) -> int:
    """syscall(2); raises OSError with the errno (ENOSYS where no way to make it is built)."""
    return libc().syscall(_syscall_number(name), *args)  # type: ignore[no-any-return]


def _pidfd_open(pid: int) -> int:
    if hasattr(os, "pidfd_open"):
        return os.pidfd_open(pid)
    return _syscall("pidfd_open", pid, 0)  # the kernel always sets O_CLOEXEC on a pidfd


def _pidfd_send(pidfd: int, sig: int, flags: int = 0) -> None:
    if hasattr(signal, "pidfd_send_signal"):
        signal.pidfd_send_signal(pidfd, sig, None, flags)
    else:
        _syscall("pidfd_send_signal", pidfd, int(sig), 0, flags)


# --------------------------------------------------------------------------- /proc/<pid>/stat


@record
class _Stat:
    state: str
    pgid: int
    starttime: int


def _read_stat(pid: int, proc_root: str) -> Optional[_Stat]:
    """None if the process is gone or its stat is unreadable/garbled."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat"), "rb") as f:
            data = f.read()
    except OSError:  # ENOENT, ESRCH (vanished while opening), EACCES...
        return None
    end = data.rfind(b")")  # comm may contain spaces and ')': it ends at the LAST ')'
    if end < 0:
        return None
    fields = data[end + 1 :].split()  # fields[0] is field 3 (state)
    try:
        return _Stat(state=fields[0].decode("ascii", "replace"), pgid=int(fields[2]), starttime=int(fields[19]))
    except (IndexError, ValueError):
        return None


# --------------------------------------------------------------------------- the handle


class ProcessHandle:
    """One process, pinned by a pidfd. Close it (or use ``with``) when done."""

    __slots__ = ("pid", "starttime", "proc_root", "degraded", "_pidfd", "_closed")

    def __init__(self, pid: int, starttime: int, pidfd: Optional[int], proc_root: str = "/proc",
                 degraded: Optional[str] = None):
        self.pid = pid
        self.starttime = starttime
        self.proc_root = proc_root
        self.degraded = degraded  # why there is no pidfd, or None
        self._pidfd = pidfd
        self._closed = False

    @property
    def pidfd(self) -> Optional[int]:
        return self._pidfd

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The pidfd, for an event loop (readable once the process exited)."""
        if self._pidfd is None:
            raise ValueError("no pidfd (degraded mode or closed)")
        return self._pidfd

    def close(self) -> None:
        fd, self._pidfd, self._closed = self._pidfd, None, True
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "ProcessHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("pidfd=%d" % self._pidfd if self._pidfd is not None else "degraded")
        return "ProcessHandle(pid=%d, starttime=%d, %s)" % (self.pid, self.starttime, state)


def _same_process(handle: ProcessHandle) -> Optional[_Stat]:
    st = _read_stat(handle.pid, handle.proc_root)
    if st is None or st.starttime != handle.starttime:
        return None
    return st


def open_process(pid: int, starttime: int, proc_root: str = "/proc") -> Optional[ProcessHandle]:
    """A handle on the process (pid, starttime), or None if it is gone or the PID was reused.

    A zombie (exited, not yet reaped) still gets a handle; ``exited()`` is then True.
    Never raises for a vanished process; a pid that is a thread, not a process, gives None.
    """
    global _pidfd_missing
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    pidfd = None
    degraded = _pidfd_missing
    if _pidfd_missing is None:
        try:
            pidfd = _pidfd_open(pid)
        except OSError as e:
            # gone / a thread id, not a process (EINVAL; ENOENT on newer kernels, seen on 6.18)
            if e.errno in (errno.ESRCH, errno.EINVAL, errno.ENOENT):
                return None
            if e.errno in (errno.ENOSYS, errno.EPERM):  # old kernel / seccomp refuses it
                degraded = "pidfd_open unavailable (%s): signals use kill(2) after a starttime check" % (
                    errno.errorcode.get(e.errno, e.errno))
                _pidfd_missing = degraded
            else:  # EMFILE, ENFILE, ENOMEM, ENODEV: still act, but without the pidfd's guarantee
                degraded = "pidfd_open(%d) failed (%s): signals use kill(2) after a starttime check" % (pid, e.strerror)
    st = _read_stat(pid, proc_root)  # AFTER the pidfd: see the module docstring
    if st is None or st.starttime != starttime:
        if pidfd is not None:
            os.close(pidfd)
        return None
    return ProcessHandle(pid, starttime, pidfd, proc_root, degraded)


# --------------------------------------------------------------------------- signalling


def send_signal(handle: Optional[ProcessHandle], sig: int) -> bool:
    """Send sig; True if the kernel accepted it, False if the process is already gone
    (or handle is None). Other failures (EPERM...) raise OSError; a closed handle ValueError."""
    if handle is None:
        return False
    if handle.closed:
        raise ValueError("send_signal on a closed ProcessHandle")
    try:
        if handle.pidfd is not None:
            _pidfd_send(handle.pidfd, int(sig))
            return True
        if _same_process(handle) is None:  # degraded mode: check as late as possible
            return False
        os.kill(handle.pid, int(sig))
        return True
    except ProcessLookupError:
        return False


@mutable_record
class KillResult:
    signalled: bool  # the victim was sent SIGKILL
    group_signalled: bool  # its process group was sent SIGKILL
    mreleased: bool  # process_mrelease() reaped its memory
    error: Optional[str]  # what went wrong; None if nothing did (a vanished victim is not an error)
    # Why process_mrelease() reaped nothing, where that was no error: "ESRCH" (the victim's exit
    # had already let go of its memory, as a victim that is slow to exit after the SIGTERM
    # first does), "EINVAL" (not dying), "unavailable ..." (kernel or seccomp), "no pidfd".
    mrelease_skipped: Optional[str] = None


def _kill_group(handle: ProcessHandle, pgid: int) -> Tuple[bool, Optional[str]]:
    global _pgroup_flag_missing
    if handle.pidfd is not None and not _pgroup_flag_missing:
        try:
            _pidfd_send(handle.pidfd, signal.SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP)
            return True, None
        except OSError as e:
            if e.errno == errno.EINVAL:  # kernel < 6.9 knows no flags
                _pgroup_flag_missing = True
            elif e.errno != errno.ESRCH:  # ESRCH: victim reaped meanwhile, its group may live on
                return False, "pidfd_send_signal(SIGKILL, process group %d): %s" % (pgid, e.strerror)
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True, None
    except ProcessLookupError:
        return False, None
    except OSError as e:
        return False, "killpg(%d, SIGKILL): %s" % (pgid, e.strerror)


def kill(handle: Optional[ProcessHandle], process_group: bool = False, mrelease: bool = True) -> KillResult:
    """SIGKILL the victim through its pidfd, optionally its whole process group, then ask
    the kernel to reap its memory at once. Never raises."""
    if handle is None:  # open_process said: gone or PID reused. Touch nothing.
        return KillResult(False, False, False, None)
    if handle.closed:
        return KillResult(False, False, False, "handle is closed")
    if handle.pid == os.getpid():
        return KillResult(False, False, False, "refusing to kill the guardian itself (pid %d)" % handle.pid)
    errors = []
    signalled = group_signalled = mreleased = False

    if process_group:
        # Read the PGID before anything dies. The group goes first, while the victim is
        # still alive and keeps the PGID number from being reused.
        st = _same_process(handle)
        if st is None:
            errors.append("process %d gone before its process group could be read; group not signalled" % handle.pid)
        elif st.pgid in (0, 1) or st.pgid == os.getpgrp():
            errors.append("refusing to signal process group %d (%s)" % (
                st.pgid, "the guardian's own group" if st.pgid == os.getpgrp() else "not a real group"))
        else:
            group_signalled, err = _kill_group(handle, st.pgid)
            if err:
                errors.append(err)

    try:
        signalled = send_signal(handle, signal.SIGKILL)
        if not signalled and group_signalled:
            signalled = True  # it was in the group, which was signalled, and is gone now
    except OSError as e:
        errors.append("SIGKILL to %d: %s" % (handle.pid, e.strerror))

    skipped = None
    if mrelease and signalled:
        mreleased, err, skipped = _release_memory(handle)
        if err:
            errors.append(err)
    return KillResult(signalled, group_signalled, mreleased, "; ".join(errors) or None, skipped)


def release_memory(handle: Optional[ProcessHandle]) -> Tuple[bool, Optional[str]]:
    """process_mrelease(pidfd, 0) (Linux >= 5.15): reap the address space of a process that
    is already dying, instead of waiting for its exit path. Returns (released, error).

    Not errors: EINVAL (the process is not dying - or shares its memory with a process that
    is not), ESRCH (it already released its memory / was reaped), ENOSYS/EPERM (kernel
    without it / seccomp; remembered, never tried again), no pidfd (degraded mode).
    """
    released, err, _ = _release_memory(handle)
    return released, err


def _release_memory(handle: Optional[ProcessHandle]) -> Tuple[bool, Optional[str], Optional[str]]:
    """release_memory(), and why nothing was reaped where that is no error (KillResult's
    mrelease_skipped): what the VM suite's report counts per kernel."""
    global _mrelease_missing
    if _mrelease_missing:
        return False, None, _mrelease_missing
    if handle is None or handle.closed or handle.pidfd is None:
        return False, None, "no pidfd"
    for _ in range(3):
        try:
            _syscall("process_mrelease", handle.pidfd, 0)
            return True, None, None
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ESRCH):
                return False, None, errno.errorcode[e.errno]
            if e.errno in (errno.ENOSYS, errno.EPERM):
                _mrelease_missing = "process_mrelease unavailable (%s)" % errno.errorcode.get(e.errno, e.errno)
                return False, None, _mrelease_missing
            if e.errno not in (errno.EAGAIN, errno.EINTR):
                return False, "process_mrelease(%d): %s" % (handle.pid, e.strerror), None
    return False, "process_mrelease(%d): still EAGAIN/EINTR after 3 tries" % handle.pid, None


# --------------------------------------------------------------------------- waiting


def wait_exit(handle: Optional[ProcessHandle], timeout_s: float) -> bool:
    """True once the process has exited (a zombie counts), False if it still runs after
    timeout_s. A None handle (process already gone) is True at once."""
    if handle is None:
        return True
    if handle.closed:
        raise ValueError("wait_exit on a closed ProcessHandle")
    timeout_s = max(0.0, float(timeout_s))
    if handle.pidfd is not None:
        return bool(poll(((handle.pidfd, POLLIN),), timeout_s))  # EINTR is retried
    deadline = time.monotonic() + timeout_s
    while True:
        st = _same_process(handle)
        if st is None or st.state in ("Z", "X", "x"):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(0.02, remaining))


def exited(handle: Optional[ProcessHandle]) -> bool:
    """Non-blocking wait_exit."""
    return wait_exit(handle, 0)


def kernel_support() -> dict:
    """What this module has learnt so far: False = found missing, None = not found missing
    (possibly not tried yet)."""
    return {
        "pidfd": False if _pidfd_missing else None,
        "process_mrelease": False if _mrelease_missing else None,
        "pidfd_process_group": False if _pgroup_flag_missing else None,
    }
