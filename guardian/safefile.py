"""The one way the guardian opens files it writes (and the state it reads back) as root.

A path is not a file: whoever can write a directory on the way can put a symlink, a FIFO or
a file of their own where the guardian expects its own. So:

- the directories are walked from `/` one component at a time (openat, O_NOFOLLOW), each one
  judged on its descriptor: owned by root or the guardian's user; the one holding the file
  writable by no one else (no write bit for others, none for a group other than root's, sticky
  or not); those above it not writable by others unless sticky (like /tmp). A symlink on the way
  is followed only when root (or the guardian's user) owns it, as fs.protected_symlinks would;
- missing directories are created 0755, owned by the guardian's user (root);
- files are opened with O_NOFOLLOW and O_NONBLOCK and refused unless regular (a FIFO never
  blocks the daemon); a file appended to must be ours and have one link;
- a file is replaced by writing a temp file created with O_EXCL under an unpredictable name
  in the same directory, then renaming it over the old one.

A refusal raises UnsafePath (an OSError whose strerror says what was refused and why); the
caller turns off what needed the file and the daemon runs on. Stdlib only, nothing heavy: the
daemon imports this on its resident path.
"""
from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Set

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK
_MAX_HOPS = 40
DIR_MODE = 0o755

__all__ = ["UnsafePath", "open_dir", "open_append", "write_atomic", "read_regular", "remove", "DIR_MODE"]


class UnsafePath(OSError):
    """A path the guardian will not write (or trust) as it is: strerror says why."""

    def __init__(self, message: str, code: int = errno.EPERM):
        super().__init__(code, message)


def _user(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "no such user"


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISREG, "a regular file"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


def _judge(fd: int, shown: str, holds_file: bool, euid: int) -> None:
    st = os.fstat(fd)
    mode = st.st_mode
    if st.st_uid not in (0, euid):
        raise UnsafePath("refused: directory %s is owned by uid %d (%s), not root; its owner could put "
                         "anything in place of the guardian's files (fix: chown root %s, or choose another "
                         "directory)" % (shown, st.st_uid, _user(st.st_uid), shown))
    if holds_file:
        others = mode & 0o002
        group = mode & 0o020 and st.st_gid not in (0, os.getegid())
        if others or group:
            raise UnsafePath("refused: directory %s is writable by %s (mode %04o); whoever can write it could "
                             "plant links or files where the guardian writes (fix: chmod go-w %s)"
                             % (shown, "others" if others else "group %d" % st.st_gid, mode & 0o7777, shown))
    elif mode & 0o002 and not mode & stat.S_ISVTX:
        raise UnsafePath("refused: directory %s is writable by others (mode %04o) without the sticky bit; "
                         "anyone could replace what lies below it (fix: chmod o-w %s)" % (shown, mode & 0o7777, shown))


def open_dir(directory: str, create: bool = False) -> int:
    """A descriptor of `directory` after judging it and every directory above it (see the
    module doc); with `create`, missing ones are made 0755. Raises UnsafePath, or OSError
    (FileNotFoundError without `create`)."""
    euid = os.geteuid()
    path = os.path.abspath(directory or ".")
    hops = 0
    while True:
        parts = [p for p in path.split("/") if p]
        fd = os.open("/", _DIR_FLAGS)
        shown = "/"
        follow = None
        try:
            _judge(fd, shown, not parts, euid)
            for i, name in enumerate(parts):
                here = _join(shown, name)
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, 0o700, dir_fd=fd)
                        made = True
                    except FileExistsError:
                        made = False  # someone else just made it: judged like any other
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    if made:
                        try:
                            os.fchmod(nfd, DIR_MODE)  # exactly 0755, whatever the umask
                        except OSError:
                            os.close(nfd)
                            raise
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise UnsafePath("refused: %s is %s, not a directory" % (here, _kind(st.st_mode)),
                                         errno.ENOTDIR) from exc
                    if st.st_uid not in (0, euid):
                        raise UnsafePath("refused: %s is a symbolic link owned by uid %d (%s), not root; its owner "
                                         "chose where it points" % (here, st.st_uid, _user(st.st_uid))) from exc
                    hops += 1
                    if hops > _MAX_HOPS:
                        raise UnsafePath("refused: too many symbolic links under %s" % path, errno.ELOOP) from exc
                    target = os.readlink(name, dir_fd=fd)
                    base = target if target.startswith("/") else _join(shown, target)
                    follow = os.path.normpath("/".join([base] + parts[i + 1:]))
                    break
                os.close(fd)
                fd, shown = nfd, here
                _judge(fd, shown, i == len(parts) - 1, euid)
        except BaseException:
            os.close(fd)
            raise
        if follow is None:
            return fd
        os.close(fd)
        path = follow


def _split(path: str):
    path = os.path.abspath(path)
    return os.path.dirname(path), os.path.basename(path)


def open_append(path: str, mode: int = 0o640, readable: bool = False) -> int:
    """A descriptor to append to `path` (created `mode` if missing): O_APPEND|O_CREAT|O_NOFOLLOW,
    opened without blocking, then refused unless a regular file of ours with one link.
    `readable` opens it O_RDWR (to look at its last byte)."""
    directory, name = _split(path)
    dfd = open_dir(directory, create=True)
    try:
        flags = ((os.O_RDWR if readable else os.O_WRONLY)
                 | os.O_APPEND | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
        try:
            fd = os.open(name, flags, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR, errno.EMLINK):
                _refuse_entry(dfd, name, path)
            raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath("refused: %s is %s" % (path, _kind(st.st_mode)))
        if st.st_uid not in (0, os.geteuid()):
            raise UnsafePath("refused: %s is owned by uid %d (%s), not root" % (path, st.st_uid, _user(st.st_uid)))
        if st.st_nlink != 1:
            raise UnsafePath("refused: %s has %d hard links; it may be another file under this name"
                             % (path, st.st_nlink))
        _blocking(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _blocking(fd: int) -> None:
    try:
        os.set_blocking(fd, True)
    except (AttributeError, OSError):
        pass


def _refuse_entry(dfd: int, name: str, path: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath("refused: %s is a symbolic link (owned by uid %d); the guardian does not follow links "
                         "where it writes (remove it)" % (path, st.st_uid), errno.ELOOP)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath("refused: %s is %s (remove it)" % (path, _kind(st.st_mode)))


_swept: Set[str] = set()


def write_atomic(path: str, data: bytes, mode: int = 0o644, durable: bool = False) -> None:
    """Replace `path` with `data`: a temp file beside it, created with O_EXCL|O_NOFOLLOW under an
    unpredictable name, written, then renamed over `path` (a link or FIFO planted there is
    replaced, never followed). `durable`: fsync the file before the rename and the directory
    after, so a power cut leaves the old file or the new one."""
    directory, name = _split(path)
    dfd = open_dir(directory, create=True)
    try:
        if path not in _swept:  # temp files of a guardian killed mid-write, once per process
            _swept.add(path)
            _sweep(dfd, name)
        tmp = ".%s.%s.tmp" % (name, os.urandom(6).hex())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, 0o600,
                     dir_fd=dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        if durable:
            try:
                os.fsync(dfd)
            except OSError:
                pass
    finally:
        os.close(dfd)


def _sweep(dfd: int, name: str) -> None:
    prefix, size = ".%s." % name, len(name) + 18  # "." name "." 12 hex ".tmp"
    try:
        with os.scandir(dfd) as entries:
            stale = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp")
                     and len(e.name) == size and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for entry in stale:
        try:
            os.unlink(entry, dir_fd=dfd)
        except OSError:
            pass


def read_regular(path: str, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of `path` (the caller decides what too long means), read only
    if it is a regular file in a directory that passes the checks; opened O_NOFOLLOW|O_NONBLOCK
    so a FIFO or link planted there is refused at once. FileNotFoundError when absent."""
    directory, name = _split(path)
    dfd = open_dir(directory, create=False)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | _CLOEXEC | getattr(os, "O_NOCTTY", 0),
                         dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _refuse_entry(dfd, name, path)
            raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath("refused: %s is %s, not a regular file" % (path, _kind(st.st_mode)))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove(path: str) -> bool:
    """Unlink `path` (a link is removed, not followed) if its directory passes the checks.
    False when there was nothing to remove or the directory was refused."""
    directory, name = _split(path)
    try:
        dfd = open_dir(directory, create=False)
    except OSError:
        return False
    try:
        os.unlink(name, dir_fd=dfd)
        return True
    except OSError:
        return False
    finally:
        os.close(dfd)
