"""Swap on zram: /proc/swaps and /sys/block/zramN/mm_stat.

Swap on a zram device is RAM: every page swapped there still costs its compressed size. What
zram can still take in gives back only (1 - 1/ratio) of itself, at the compression ratio seen
so far (orig_data_size / mem_used_total of mm_stat; 2:1 assumed before it holds anything), and
no more than its mem_limit allows.
"""
from __future__ import annotations

import os

from guardian.kernel import ParseError, read_optional_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

# Before a device holds anything its ratio is unknown; lzo/lz4 give about this on typical data.
ASSUMED_RATIO = 2.0
# Below this much data the pool's own overhead makes the measured ratio meaningless (a fresh
# device holding a few pages reads under 1:1).
MIN_DATA_FOR_RATIO = 4 << 20


@record
class SwapArea:
    path: str  # /dev/zram0, /swapfile, ...
    size: int  # bytes
    used: int  # bytes


@record
class ZramStat:
    orig_data_size: int  # bytes of data stored, uncompressed
    mem_used_total: int  # bytes of RAM the device takes
    mem_limit: int  # bytes; 0 means none


@record
class ZramSwap:
    """The zram part of swap, and what swapping into its free space would still give back."""

    total: int
    free: int
    ram_used: int  # RAM its pools take now
    relief: int


def parse_swaps(text: str, path: str = "/proc/swaps") -> Tuple[SwapArea, ...]:
    areas: List[SwapArea] = []
    for number, line in enumerate(text.splitlines()[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise ParseError(path, "line %d" % number, "expected Filename Type Size Used Priority, got %r" % line)
        try:
            areas.append(SwapArea(fields[0], int(fields[2]) * 1024, int(fields[3]) * 1024))
        except ValueError:
            raise ParseError(path, "line %d" % number, "Size and Used must be integers (KiB), got %r" % line) from None
    return tuple(areas)


def parse_mm_stat(text: str, path: str) -> ZramStat:
    fields = text.split()
    if len(fields) < 4:
        raise ParseError(path, "mm_stat", "expected at least 4 numbers, got %r" % text.strip())
    try:
        orig, _compr, used, limit = (int(f) for f in fields[:4])
    except ValueError:
        raise ParseError(path, "mm_stat", "expected integers, got %r" % text.strip()) from None
    return ZramStat(orig, used, limit)


def relief(free: int, stat: Optional[ZramStat]) -> int:
    """RAM that swapping `free` more bytes into this device would give back."""
    if free <= 0:
        return 0
    ratio = ASSUMED_RATIO
    if stat is not None and stat.orig_data_size >= MIN_DATA_FOR_RATIO and stat.mem_used_total > 0:
        ratio = max(1.0, stat.orig_data_size / stat.mem_used_total)
    if stat is not None and stat.mem_limit > 0:
        free = min(free, int(max(0, stat.mem_limit - stat.mem_used_total) * ratio))
    return int(free * (1.0 - 1.0 / ratio))


def read_zram_swap(proc_root: str = "/proc", sys_root: str = "/sys") -> Optional[ZramSwap]:
    """The zram swap areas summed, or None when no swap is on zram (or /proc/swaps is absent)."""
    path = proc_root + "/swaps"
    text = read_optional_text(path)
    if text is None:
        return None
    total = free = used_ram = rel = 0
    found = False
    for area in parse_swaps(text, path):
        name = os.path.basename(area.path)
        if not name.startswith("zram"):
            continue
        found = True
        stat_path = "%s/block/%s/mm_stat" % (sys_root, name)
        try:
            stat_text = read_optional_text(stat_path)
        except OSError:
            stat_text = None
        stat = parse_mm_stat(stat_text, stat_path) if stat_text else None
        area_free = max(0, area.size - area.used)
        total += area.size
        free += area_free
        used_ram += stat.mem_used_total if stat else 0
        rel += relief(area_free, stat)
    return ZramSwap(total, free, used_ram, rel) if found else None
