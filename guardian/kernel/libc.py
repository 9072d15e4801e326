"""The C library, loaded once through ctypes, for the calls Python's os module lacks
(mlockall, prctl, syscall, timerfd). ctypes is imported at the first call, not at import:
a board whose guardian never needs it does not hold it."""
from __future__ import annotations

import errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

_libc: Optional[Any] = None


def libc() -> Any:
    """The process's libc (ctypes.CDLL, use_errno=True). OSError(ENOSYS) when ctypes or libc is
    missing (a Python built without libffi, a static binary without dlopen)."""
    global _libc
    if _libc is None:
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
        _libc = lib
    return _libc
