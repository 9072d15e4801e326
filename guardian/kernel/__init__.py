"""Pure readers of /proc and /sys.

Every reader takes the root it reads from (``/proc`` or ``/sys`` by default) so tests can
point it at a fake tree. Readers never log and never raise for a vanished process; a file
that is missing returns None (the caller says so once), a file that is garbled raises
ParseError naming the file and the field.
"""
import errno as _errno
import os as _os


class ParseError(ValueError):
    """A kernel file was present but could not be understood."""

    def __init__(self, path, field, problem):
        self.path = str(path)
        self.field = field
        self.problem = problem
        super().__init__("%s: %s: %s" % (self.path, field, problem))


_O_RDONLY = _os.O_RDONLY | getattr(_os, "O_CLOEXEC", 0)

# errnos meaning "this is not supported here" (PSI disabled with psi=0, threaded cgroups).
NOT_SUPPORTED = frozenset(
    e for e in (getattr(_errno, "EOPNOTSUPP", None), getattr(_errno, "ENOTSUP", None)) if e is not None
)


def close_quietly(fd):
    """Close a descriptor kept open across ticks, if any; a close that fails (EBADF, EIO on
    a file that went away) changes nothing for the caller, which drops it either way. Returns
    None, for `self.fd = close_quietly(self.fd)`."""
    if fd is not None:
        try:
            _os.close(fd)
        except OSError:
            pass
    return None


_SURELY_WHOLE = 2048


def read_bytes(path, dir_fd=None, bufsize=8192):
    """The whole content of a (small) kernel file: one open, one read, one close in the
    usual case. A seq_file may stop a read short at a page boundary (smaps does, at ~4 KiB),
    so reading goes on until end of file unless the first read was clearly all of it (under
    half a page). OSError (FileNotFoundError, ProcessLookupError, ...) propagates to the
    caller, which knows what it means."""
    fd = _os.open(path, _O_RDONLY, dir_fd=dir_fd)
    try:
        data = _os.read(fd, bufsize)
        if len(data) < _SURELY_WHOLE:
            return data
        chunks = [data]
        while True:
            data = _os.read(fd, 65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        _os.close(fd)


def read_text(path, bufsize=8192):
    """read_bytes decoded as UTF-8 (undecodable bytes replaced)."""
    return read_bytes(path, bufsize=bufsize).decode("utf-8", "replace")


def read_optional_text(path, bufsize=8192):
    """read_text, or None when the file does not exist."""
    try:
        return read_text(path, bufsize)
    except FileNotFoundError:
        return None
