"""The guardian protecting itself: locked memory and its own oom_score_adj. (Which capabilities
it lacks, and what stops working without each, is guardian.core.capabilities: the start child
and the commands tell it, the daemon does not hold it.)

Nothing here raises; failures come back as text for the log.
"""
from __future__ import annotations

import errno
import os

from guardian.kernel.libc import libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

__all__ = ["lock_memory", "set_oom_score_adj"]

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
        mlockall = libc().mlockall
    except (OSError, AttributeError) as e:
        return "mlockall unavailable: %s" % e
    current, future, onfault = _mcl_flags()
    try:
        mlockall(current | future | onfault)
        return "mlockall(current|future|onfault)"
    except OSError as e:
        err = e.errno
    if err == errno.EINVAL:
        try:
            mlockall(current | future)
            return "mlockall(current|future)"
        except OSError as e:
            err = e.errno
    return "mlockall refused: %s" % os.strerror(err or 0)


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
