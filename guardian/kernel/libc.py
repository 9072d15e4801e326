"""The libc calls Python's os module lacks: mlockall, prctl, syscall, timerfd_create,
timerfd_settime, eventfd (os has it from Python 3.10 on), and attach_filter (a socket filter:
its pointer Python cannot pass). Each returns the call's result or raises OSError with its
errno. And poll, epoll_create and epoll_add, which select has: where the extension is built
they come from it, and the daemon does not hold select (each C module is 30-80 KiB resident).

They come from guardian._rest, the project's C extension, where the install built it: the
daemon then holds no ctypes (~0.4 MiB resident, about twice that where libffi is a shared
library). Else from the C library through ctypes, loaded at the first call; OSError(ENOSYS)
when neither is there (a Python without libffi, a static binary without dlopen). The fallbacks
are guardian.kernel.libc_fallback's, which a daemon with the extension never imports."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

POLLIN, POLLPRI, POLLERR = 1, 2, 8  # poll(2)'s bits, which are epoll's too (Linux)

_libc: Optional[Any] = None
_CALLS = ("mlockall", "prctl", "syscall", "timerfd_create", "timerfd_settime", "eventfd", "attach_filter")


def libc() -> Any:
    """The calls, from the extension or from ctypes (see the module's docstring)."""
    global _libc
    if _libc is None:
        try:
            from guardian import _rest as ext
        except ImportError:
            ext = None  # type: ignore[assignment]
        # An extension built before it had these calls (an old in-place build) is passed over.
        if ext is not None and all(hasattr(ext, name) for name in _CALLS):
            _libc = ext
        else:
            from guardian.kernel.libc_fallback import CtypesLibc

            _libc = CtypesLibc()
    return _libc


try:
    from guardian._rest import epoll_add, epoll_create, poll
except ImportError:  # no extension (or one built before these): select's
    from guardian.kernel.libc_fallback import select_epoll_add as epoll_add  # noqa: F401
    from guardian.kernel.libc_fallback import select_epoll_create as epoll_create  # noqa: F401
    from guardian.kernel.libc_fallback import select_poll as poll  # noqa: F401
