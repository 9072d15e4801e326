"""The event log's files, for the start child and the commands (never the daemon: a module once
imported stays for the process's life): where the events go (choose_place, events_place: the
mounts), reading them back (read_events: the JSON parser) and the fsync probe (measure_fsync).
See guardian.core.eventlog for the writer.
"""
from __future__ import annotations

import os
import time

from guardian import jsontext
from guardian.core.eventlog import (DEFAULT_BACKUPS, DEFAULT_EVENTS_FILE, DEFAULT_MAX_BYTES, EVENTS_NAME,
                                    RAM_BACKUPS, RAM_MAX_BYTES, Place)
from guardian.kernel.mounts import RAM_FILESYSTEMS, fstype_of, read_mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


def _size(nbytes: int) -> str:
    return "%d MiB" % (nbytes >> 20) if nbytes % (1 << 20) == 0 else "%d KiB" % (nbytes >> 10)


def choose_place(asked: Optional[str], state_dir: Optional[str],
                 fstype_of: Callable[[str], Optional[str]]) -> Place:
    """Where the events go. `asked`: --events-file ('' none, None the default); `state_dir`:
    the board's leak state directory; `fstype_of(path)`: the type of the filesystem that holds
    path (None: unknown, taken as persistent). RAM is tmpfs or ramfs."""
    if asked == "":
        return Place(None)

    def in_ram(path: str) -> Optional[str]:
        fstype = fstype_of(path)
        return fstype if fstype in RAM_FILESYSTEMS else None

    if asked is not None:
        fs = in_ram(os.path.dirname(os.path.abspath(asked)) or "/")
        if fs is None:
            return Place(asked)
        kept = _size(DEFAULT_MAX_BYTES * (1 + DEFAULT_BACKUPS))
        return Place(asked, in_ram=True, note=(
            "the event log %s is on %s (RAM): events are lost at a reboot or power cut, and they hold up "
            "to %s of RAM (%s and %d rotations)" % (asked, fs, kept, _size(DEFAULT_MAX_BYTES), DEFAULT_BACKUPS)))
    fs = in_ram(os.path.dirname(DEFAULT_EVENTS_FILE))
    if fs is None:
        return Place(DEFAULT_EVENTS_FILE)
    if state_dir and in_ram(state_dir) is None:
        path = os.path.join(state_dir, EVENTS_NAME)
        return Place(path, note="%s is on %s (RAM): events go to %s, which survives a reboot" % (
            os.path.dirname(DEFAULT_EVENTS_FILE), fs, path))
    kept = _size(RAM_MAX_BYTES * (1 + RAM_BACKUPS))
    return Place(DEFAULT_EVENTS_FILE, RAM_MAX_BYTES, RAM_BACKUPS, in_ram=True, note=(
        "%s is on %s (RAM) and so is the state directory %s: events stay in RAM, at most %s (%s and %d "
        "rotation), lost at a reboot; --events-file on a data partition keeps them" % (
            os.path.dirname(DEFAULT_EVENTS_FILE), fs, state_dir or "(none)", kept, _size(RAM_MAX_BYTES),
            RAM_BACKUPS)))


def events_place(asked: Optional[str], state_dir: Optional[str], proc_root: str = "/proc") -> Place:
    """choose_place against this system's mounts (<proc>/self/mountinfo). ParseError when that
    file is garbled: the caller says so."""
    mounts = read_mounts(proc_root)
    return choose_place(asked, state_dir, lambda path: fstype_of(path, mounts))


# ----------------------------------------------------------------------------------------
# Reading


def read_events(path: str, with_rotated: bool = False) -> Iterator[Dict[str, Any]]:
    """The records of an event log, oldest first; lines that do not parse (a torn last line
    after a power cut, or its remains) are skipped. `with_rotated` reads path.N .. path.1
    first."""
    for _record in _records(path, with_rotated, None):
        yield _record


def read_events_counted(path: str, with_rotated: bool = False) -> Tuple[List[Dict[str, Any]], int]:
    """(records, number of lines skipped)."""
    skipped = [0]
    records = list(_records(path, with_rotated, skipped))
    return records, skipped[0]


def _records(path: str, with_rotated: bool, skipped: Optional[List[int]]) -> Iterator[Dict[str, Any]]:
    paths = []
    if with_rotated:
        i = 1
        while os.path.exists("%s.%d" % (path, i)):
            paths.append("%s.%d" % (path, i))
            i += 1
        paths.reverse()
    paths.append(path)
    for p in paths:
        try:
            f = open(p, "rb")
        except FileNotFoundError:
            continue
        with f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    if skipped is not None:
                        skipped[0] += 1  # torn: the writer died in mid-line
                    continue
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    record = jsontext.loads(raw.decode("utf-8", "replace"))
                except ValueError:
                    if skipped is not None:
                        skipped[0] += 1
                    continue
                if isinstance(record, dict):
                    yield record
                elif skipped is not None:
                    skipped[0] += 1


# ----------------------------------------------------------------------------------------
# Measuring


def measure_fsync(directory: str, count: int = 50, line_bytes: int = 300) -> Dict[str, float]:
    """Append `count` lines of `line_bytes` to a scratch file in `directory`, fdatasync after
    each, and report the cost in milliseconds (median, p90, max). The file is removed."""
    path = os.path.join(directory, ".guardian-fsync-probe-%s" % os.urandom(6).hex())
    line = b"x" * (line_bytes - 1) + b"\n"
    costs = []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(count):
            os.write(fd, line)
            started = time.perf_counter()
            getattr(os, "fdatasync", os.fsync)(fd)
            costs.append((time.perf_counter() - started) * 1000.0)
    finally:
        os.close(fd)
        os.unlink(path)
    costs.sort()
    return {"count": count, "median_ms": round(costs[len(costs) // 2], 3),
            "p90_ms": round(costs[int(len(costs) * 0.9)], 3), "max_ms": round(costs[-1], 3)}


if __name__ == "__main__":  # python -m guardian.core.eventfiles DIR...: fsync cost where the log would live
    import sys
    for d in sys.argv[1:] or [os.path.dirname(DEFAULT_EVENTS_FILE)]:
        os.makedirs(d, exist_ok=True)
        print(d, measure_fsync(d))
