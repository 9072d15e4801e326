"""/proc/buddyinfo: free blocks per order per zone."""
from __future__ import annotations

import os

from guardian.kernel import ParseError, read_optional_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple


@record
class BuddyZone:
    node: int
    zone: str
    free_blocks: Tuple[int, ...]  # index = order


def parse_buddyinfo(text: str, path: str = "/proc/buddyinfo") -> Tuple[BuddyZone, ...]:
    """One BuddyZone per "Node 0, zone   Normal   1  2  3 ..." line. Raises ParseError for
    a line of another shape; an empty file gives ()."""
    zones = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        field = "line %d" % number
        if len(parts) < 5 or parts[0] != "Node" or not parts[1].endswith(",") or parts[2] != "zone":
            raise ParseError(path, field, "expected 'Node N, zone NAME count...', got %r" % line.strip())
        try:
            node = int(parts[1][:-1])
            counts = tuple(int(p) for p in parts[4:])
        except ValueError:
            raise ParseError(path, "%s (zone %s)" % (field, parts[3]),
                             "expected integers, got %r" % line.strip()) from None
        zones.append(BuddyZone(node=node, zone=parts[3], free_blocks=counts))
    return tuple(zones)


def read_buddyinfo(proc_root: str = "/proc") -> Optional[Tuple[BuddyZone, ...]]:
    path = os.path.join(proc_root, "buddyinfo")
    text = read_optional_text(path)
    return None if text is None else parse_buddyinfo(text, path)


def high_order_free_bytes(zones, min_order: int = 4, page_size: int = 4096) -> int:
    """Bytes free in blocks of order >= min_order, summed over zones (fragmentation gauge)."""
    total = 0
    for zone in zones:
        for order in range(max(min_order, 0), len(zone.free_blocks)):
            total += zone.free_blocks[order] << order
    return total * page_size
