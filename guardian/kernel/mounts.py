"""/proc/self/mountinfo: which filesystem holds a path. tmpfs and ramfs are RAM: what the
guardian writes there is lost at a reboot or power cut, and occupies the memory it guards.

A line: `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`,
with spaces, tabs, newlines and backslashes in paths written as octal escapes (`\\040`).
"""
from __future__ import annotations

import os

from guardian.kernel import ParseError, read_optional_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence, Tuple

RAM_FILESYSTEMS = frozenset(("tmpfs", "ramfs"))


@record
class Mount:
    mount_point: str
    fstype: str
    source: str

    @property
    def in_ram(self) -> bool:
        return self.fstype in RAM_FILESYSTEMS


def _unescape(text: str) -> str:
    """The kernel's \\NNN octal escapes (space, tab, newline, backslash) back; no re (~0.9 MiB)."""
    if "\\" not in text:
        return text
    parts = text.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        digits = part[:3]
        if len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)) + part[3:])
        else:
            out.append("\\" + part)
    return "".join(out)


def parse_mountinfo(text: str, path: str = "/proc/self/mountinfo") -> Tuple[Mount, ...]:
    """The mounts in the order the kernel lists them (a later one over the same point hides
    an earlier one)."""
    mounts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
            mounts.append(Mount(_unescape(fields[4]), fields[dash + 1], _unescape(fields[dash + 2])))
        except (ValueError, IndexError):
            raise ParseError(path, "line %d" % number, "a mountinfo line (... - FSTYPE SOURCE ...)") from None
    return tuple(mounts)


def read_mounts(proc_root: str = "/proc") -> Optional[Tuple[Mount, ...]]:
    text = read_optional_text(os.path.join(proc_root, "self", "mountinfo"))
    return None if text is None else parse_mountinfo(text)


def existing_realpath(path: str) -> str:
    """The real path of `path`, or of its nearest ancestor that exists (a directory the
    guardian will create later is on the filesystem of that ancestor), links resolved: on
    Buildroot's skeleton /var/log is a link into /tmp."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return os.path.realpath(path)


def mount_of(real_path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The mount that holds a real (link-free, absolute) path: the last listed of those with
    the longest mount point above it."""
    best: Optional[Mount] = None
    for m in mounts:
        point = m.mount_point.rstrip("/") or "/"
        if real_path == point or real_path.startswith(point if point.endswith("/") else point + "/"):
            if best is None or len(point) >= len(best.mount_point.rstrip("/") or "/"):
                best = m
    return best


def fstype_of(path: str, mounts: Optional[Sequence[Mount]]) -> Optional[str]:
    """The type of the filesystem that holds `path` (or would, once created); None if unknown."""
    if not mounts:
        return None
    m = mount_of(existing_realpath(path), mounts)
    return m.fstype if m is not None else None
