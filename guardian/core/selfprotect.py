"""The guardian protecting itself: locked memory, its own oom_score_adj, and knowing which
capabilities it lacks (and what stops working without each).

Nothing here raises; failures come back as text for the log.
"""
from __future__ import annotations

import errno
import os

from guardian.kernel.libc import libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Union

__all__ = ["lock_memory", "set_oom_score_adj", "capabilities", "missing_capability_report", "CAPABILITIES"]

# The capabilities the guardian cares about, by number (include/uapi/linux/capability.h).
CAPABILITIES = {
    "CAP_DAC_OVERRIDE": 1,
    "CAP_KILL": 5,
    "CAP_IPC_LOCK": 14,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
}

# What does not work without each (checked against the kernel sources, see the notes).
_CONSEQUENCES = {
    "CAP_KILL": "cannot signal other users' processes (kill/pidfd_send_signal fail with EPERM "
                "unless the guardian's real or effective UID is the victim's real or saved UID)",
    "CAP_IPC_LOCK": "memory not locked: mlockall() is limited by RLIMIT_MEMLOCK, so the guardian may be "
                    "paged out or have its code evicted under the very pressure it must react to",
    "CAP_SYS_RESOURCE": "PSI triggers only with windows that are multiples of 2 s (Linux >= 6.5; "
                        "on 5.13-6.4 the pressure files cannot be opened for writing at all), and the "
                        "guardian cannot lower any oom_score_adj (its own included) below its "
                        "oom_score_adj_min",
    "CAP_SYS_PTRACE": "cannot read other users' (or more privileged) /proc/PID/smaps_rollup, io, environ: "
                      "PSS/swap per process unknown for them",
    "CAP_DAC_OVERRIDE": "cannot write other users' /proc/PID/oom_score_adj, nor root-owned files "
                        "(cgroup memory.reclaim, ...) unless running as UID 0",
    "CAP_SYS_ADMIN": "usually a sign of a confined container: /proc/sys is then often read-only, so "
                     "/proc/sys/vm/drop_caches and compact_memory cannot be written (the kernel itself "
                     "only checks for effective UID 0 on those files, not this capability)",
}

# mlockall() flags. x86, arm, arm64, riscv, mips, s390: 1/2/4. powerpc, sparc, alpha: 0x2000...
_MCL_HIGH = ("ppc", "powerpc", "sparc", "alpha")


def _mcl_flags():
    if os.uname().machine.startswith(_MCL_HIGH):
        return 0x2000, 0x4000, 0x8000
    return 1, 2, 4


def lock_memory() -> str:
    """mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT), falling back to MCL_CURRENT|MCL_FUTURE on
    kernels without MCL_ONFAULT (< 4.4, EINVAL). Returns what was done; never raises.

    Caveat: without CAP_IPC_LOCK, MCL_FUTURE makes every later mapping count against
    RLIMIT_MEMLOCK, so a lock that succeeds under a large finite limit can make later
    allocations fail once the limit is reached.
    """
    try:
        import ctypes

        mlockall = libc().mlockall
    except (ImportError, OSError, AttributeError) as e:
        return "mlockall unavailable: %s" % e
    current, future, onfault = _mcl_flags()
    ctypes.set_errno(0)
    if mlockall(current | future | onfault) == 0:
        return "mlockall(current|future|onfault)"
    err = ctypes.get_errno()
    if err == errno.EINVAL:
        ctypes.set_errno(0)
        if mlockall(current | future) == 0:
            return "mlockall(current|future)"
        err = ctypes.get_errno()
    return "mlockall refused: %s" % os.strerror(err)


def set_oom_score_adj(value: int, pid: Union[int, str] = "self", proc_root: str = "/proc") -> Optional[str]:
    """Write value (-1000..1000) to <proc>/<pid>/oom_score_adj; error text, or None on success."""
    path = os.path.join(proc_root, str(pid), "oom_score_adj")
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        return "%s: oom_score_adj must be an int in -1000..1000, not %r" % (path, value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # no O_CREAT: never invent the file
    except OSError as e:
        return "%s: %s" % (path, e.strerror)
    try:
        os.write(fd, str(value).encode("ascii"))
    except OSError as e:
        hint = ""
        if e.errno == errno.EACCES and value < 0:
            hint = " (lowering below oom_score_adj_min needs CAP_SYS_RESOURCE)"
        return "%s: write %d: %s%s" % (path, value, e.strerror, hint)
    finally:
        os.close(fd)
    return None


def capabilities(proc_root: str = "/proc") -> Dict[str, bool]:
    """Which of CAPABILITIES this process has in its effective set (CapEff of
    <proc>/self/status). All False if that cannot be read."""
    eff = 0
    try:
        with open(os.path.join(proc_root, "self", "status"), "r", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split(":", 1)[1].strip(), 16)
                    break
    except (OSError, ValueError):
        eff = 0
    return {name: bool(eff >> bit & 1) for name, bit in CAPABILITIES.items()}

# What a guardian without root still does (run and status say so).
STILL_WORKS = ("still works: watching memory and PSI, status, dry-run decisions, and ending "
               "processes of the guardian's own user")


def missing_capability_report(caps: Dict[str, bool]) -> List[str]:
    """One line per missing capability (in CAPABILITIES order): what does not work without it."""
    return ["%s missing: %s" % (name, _CONSEQUENCES[name]) for name in CAPABILITIES if not caps.get(name)]
