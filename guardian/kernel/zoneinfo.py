"""/proc/zoneinfo: the watermarks that place the kill line."""
from __future__ import annotations

import os

from guardian.kernel import ParseError, read_optional_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Set


@record
class Watermarks:
    min: int  # bytes, summed over zones
    low: int
    high: int


_MARKS = ("min", "low", "high")


def parse_zoneinfo(text: str, path: str = "/proc/zoneinfo", page_size: int = 4096) -> Watermarks:
    """Sum the "min", "low" and "high" page counts of every "Node N, zone NAME" section
    (the per-cpu "high:" lines and the "protection:" lines are not watermarks). Raises
    ParseError when there is no zone, a zone lacks a watermark (truncated file) or a value
    is not a number."""
    sums = {"min": 0, "low": 0, "high": 0}
    zone = None  # name of the current zone
    seen: Set[str] = set()
    zones = 0

    def close_zone():
        missing = [m for m in _MARKS if m not in seen]
        if missing:
            raise ParseError(path, "%s %s" % (zone, missing[0]), "missing in the zone (file truncated?)")

    for line in text.splitlines():
        if line.startswith("Node "):
            if zone is not None:
                close_zone()
            parts = line.split()
            zone = " ".join(parts[:4]) if len(parts) >= 4 else line.strip()
            seen = set()
            zones += 1
            continue
        if zone is None:
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0] in sums and parts[0] not in seen:
            try:
                value = int(parts[1])
            except ValueError:
                raise ParseError(path, "%s %s" % (zone, parts[0]), "expected a page count, got %r" % parts[1]) from None
            sums[parts[0]] += value
            seen.add(parts[0])
    if zone is None:
        raise ParseError(path, "Node", "no 'Node N, zone NAME' section (file empty or garbled?)")
    close_zone()
    return Watermarks(min=sums["min"] * page_size, low=sums["low"] * page_size, high=sums["high"] * page_size)


def page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def read_watermarks(proc_root: str = "/proc") -> Optional[Watermarks]:
    path = os.path.join(proc_root, "zoneinfo")
    text = read_optional_text(path, bufsize=65536)
    return None if text is None else parse_zoneinfo(text, path, page_size())

