"""Reading a board config only if no one but root could have changed it.

The config can make the guardian run commands as root ([[low_priority]] stop, leak commands),
so every file read, and the directories holding it, must be writable by root (or the user
running the guardian) only. The file is judged as opened, not by its path, so nothing can be
swapped in between the check and the read.
"""
from __future__ import annotations

import os
import stat

from guardian.board.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

# A board config is a few KiB; anything far larger is no config.
MAX_CONFIG_BYTES = 1 << 20


def read_trusted(path: str, check_owner: bool = True) -> str:
    """Open the config once and judge the file that was opened (fstat), not the path: no
    window between the check and the read. Refused: a file someone other than root (or the
    user running the guardian) could change - group/other-writable or owned by another user
    -, a symlink owned by another user, anything but a regular file (a FIFO would block), and
    a file under a directory (of the path as given or as resolved) that is other-writable
    (sticky excepted) or owned by another user. Returns the text."""
    euid = os.geteuid()
    why = "the config can make the guardian run commands as root, so only root may be able to change it"
    try:
        lst = os.lstat(path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise ConfigError(path, expected="cannot read: %s" % (e.strerror or e)) from e
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(lst.st_mode) and check_owner and lst.st_uid not in (0, euid):
            raise ConfigError(path, expected="refused: a symlink owned by uid %d (%s), not root"
                              % (lst.st_uid, _user(lst.st_uid)), hint="%s; its owner chose what it points to" % why)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, expected="refused: not a regular file")
        if st.st_mode & 0o022:
            who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit)
            raise ConfigError(path, expected="refused: writable by %s (mode %04o)" % (who, st.st_mode & 0o7777),
                              hint="%s; fix with: chmod go-w %s" % (why, path))
        if check_owner and st.st_uid not in (0, euid):
            raise ConfigError(path, expected="refused: owned by uid %d (%s), not root" % (st.st_uid, _user(st.st_uid)),
                              hint="%s; fix with: chown root %s" % (why, path))
        try:
            opened = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            opened = os.path.realpath(path)
        _check_dirs(path, (os.path.dirname(os.path.abspath(path)), os.path.dirname(opened)), check_owner, why)
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(path, expected="refused: larger than %d bytes" % MAX_CONFIG_BYTES)
            chunks.append(chunk)
    except OSError as e:
        raise ConfigError(path, expected="cannot read: %s" % (e.strerror or e)) from e
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, expected="not UTF-8 text", line=data[:e.start].count(b"\n") + 1) from None


def _check_dirs(path: str, starts: Sequence[str], check_owner: bool, why: str) -> None:
    """The directories above the file (as named, and as opened): whoever can write one of them
    can put another file in its place."""
    euid = os.geteuid()
    seen = set()
    for start in starts:
        d = start
        while d not in seen:
            seen.add(d)
            try:
                ds = os.stat(d)
            except OSError:
                break
            if ds.st_mode & 0o002 and not ds.st_mode & 0o1000:
                raise ConfigError(path, expected="refused: directory %s is writable by others (mode %04o)"
                                  % (d, ds.st_mode & 0o7777), hint="%s; anyone could replace the file" % why)
            if check_owner and ds.st_uid not in (0, euid):
                raise ConfigError(path, expected="refused: directory %s is owned by uid %d (%s), not root"
                                  % (d, ds.st_uid, _user(ds.st_uid)),
                                  hint="%s; its owner could replace the file" % why)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return "no such user"
