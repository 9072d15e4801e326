"""The end of a fork child of the guardian (the start child in guardian.boot, a reload's in
guardian.core.parts.reload): its answer down its pipe, then _exit. Small, and imported before
any fork, so that a child never reads a module from flash to finish."""
import os
import sys


def write_all(fd: int, data: bytes) -> None:
    """A child's whole answer down its pipe."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def exit_child(status: int) -> None:
    """A fork child's end: what it printed reaches its streams, then _exit, never the parent's
    loop, atexit handlers, finally blocks or buffers again (the start child in guardian.boot too)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status)
