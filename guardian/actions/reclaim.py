"""Giving memory back without killing anything.

Each step writes one kernel knob and returns a ReclaimResult; none raises. Failures carry
the path and the errno text in ``error``. Note that the /proc/sys/vm files are checked
against the effective UID 0 only - no capability (not even CAP_SYS_ADMIN or
CAP_DAC_OVERRIDE) lets another UID write them - and that containers often mount /proc/sys
read-only (EROFS).

These writes are synchronous: the writer does the work. drop_caches deliberately does not
sync() first - on slow flash that can block for a long time, and clean page cache is what
it is meant to drop anyway (dirty pages are simply skipped).
"""
from __future__ import annotations

import errno
import os

from guardian.record import mutable_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["ReclaimResult", "compact_memory", "drop_caches", "cgroup_reclaim"]


@mutable_record
class ReclaimResult:
    step: str  # "compact_memory" | "drop_caches" | "cgroup_reclaim"
    ok: bool
    error: Optional[str]
    note: Optional[str] = None  # something worth logging that is not a failure


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "?"


def _write(step: str, path: str, text: str, eagain_note: Optional[str] = None) -> ReclaimResult:
    """Write text to an existing kernel file. With eagain_note, EAGAIN counts as done."""
    try:
        # O_WRONLY without O_CREAT: a missing kernel file must stay missing, not be created
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        return ReclaimResult(step, False, "%s: %s (%s)" % (path, e.strerror, _errname(e)))
    try:
        os.write(fd, text.encode("ascii"))
    except OSError as e:
        if e.errno == errno.EAGAIN and eagain_note:
            return ReclaimResult(step, True, None, eagain_note)
        return ReclaimResult(step, False, "%s: write %r: %s (%s)" % (path, text, e.strerror, _errname(e)))
    finally:
        os.close(fd)
    return ReclaimResult(step, True, None)


def compact_memory(proc_root: str = "/proc") -> ReclaimResult:
    """Compact all zones (defragment free memory for higher-order allocations)."""
    return _write("compact_memory", os.path.join(proc_root, "sys", "vm", "compact_memory"), "1")


def drop_caches(level: int = 1, proc_root: str = "/proc") -> ReclaimResult:
    """Drop clean caches: 1 page cache, 2 reclaimable slab (dentries, inodes), 3 both."""
    path = os.path.join(proc_root, "sys", "vm", "drop_caches")
    if isinstance(level, bool) or level not in (1, 2, 3):
        return ReclaimResult("drop_caches", False, "%s: level must be 1, 2 or 3, not %r" % (path, level))
    return _write("drop_caches", path, str(level))


def cgroup_reclaim(cgroup_dir: str, nbytes: int) -> ReclaimResult:
    """Ask the kernel to reclaim nbytes from the cgroup (v2 memory.reclaim, Linux >= 5.19).

    Blocks while the kernel reclaims. EAGAIN means it reclaimed less than asked: ok=True,
    with a note.
    """
    path = os.path.join(cgroup_dir, "memory.reclaim")
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        return ReclaimResult("cgroup_reclaim", False, "%s: nbytes must be a positive int, not %r" % (path, nbytes))
    if not os.path.isdir(cgroup_dir):
        return ReclaimResult("cgroup_reclaim", False, "%s: no such cgroup directory" % cgroup_dir)
    if not os.path.exists(path):
        return ReclaimResult("cgroup_reclaim", False, "not supported: %s absent (needs cgroup v2 with the memory "
                             "controller, Linux >= 5.19)" % path)
    return _write("cgroup_reclaim", path, str(nbytes),
                  eagain_note="%s: reclaimed less than the %d bytes asked (EAGAIN)" % (path, nbytes))
