"""/proc/meminfo."""
from __future__ import annotations

import os

from _operator import methodcaller  # operator.py's own C module

from guardian.kernel import ParseError, read_optional_text, read_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple


@record
class MemInfo:
    """All sizes in bytes. Optional fields are None when the kernel does not report them."""

    total: int
    free: int
    available: int  # MemAvailable, or an estimate (see available_estimated)
    available_estimated: bool  # True on kernels without MemAvailable (< 3.14)
    cached: int
    anon: Optional[int]  # AnonPages
    swap_total: int  # 0 when absent
    swap_free: int  # 0 when absent
    committed_as: Optional[int]
    commit_limit: Optional[int]
    sunreclaim: Optional[int]


_UNITS = {"kB": 1024, "KB": 1024, "B": 1}
# The keys the guardian reads; the other ~45 lines are checked for shape only (this parse runs on
# every wake-up, and converting every line was half its cost).
WANTED = frozenset(("MemTotal", "MemFree", "MemAvailable", "Cached", "Buffers", "AnonPages", "SwapTotal",
                    "SwapFree", "Committed_AS", "CommitLimit", "SUnreclaim", "Active(file)", "Inactive(file)"))


def _parse_fields(text: str, path: str, wanted: Optional[frozenset] = None, in_kib: bool = False) -> Dict[str, int]:
    """Every "Key:   123 kB" line (of `wanted`, or all) as {Key: bytes}, or KiB (`in_kib`).
    Unit-less lines (HugePages_Total: 0) are counts and kept as they are."""
    fields = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            if not line.strip():
                continue
            raise ParseError(path, line.strip()[:40], "expected 'Key: value [kB]'")
        key = key.strip()
        if not key:
            raise ParseError(path, line.strip()[:40], "expected 'Key: value [kB]'")
        if wanted is not None and key not in wanted:
            continue
        parts = rest.split()
        if not parts or len(parts) > 2:
            raise ParseError(path, key, "expected a number with an optional kB unit, got %r" % rest.strip())
        try:
            value = int(parts[0])
        except ValueError:
            raise ParseError(path, key, "expected a number, got %r" % parts[0]) from None
        if len(parts) == 2:
            scale = _UNITS.get(parts[1])
            if scale is None:
                raise ParseError(path, key, "expected unit kB, got %r" % parts[1])
            value *= scale
            if in_kib:
                value //= 1024
        fields[key] = value
    return fields


def glance_meminfo(data: bytes) -> Optional[Tuple[int, int]]:
    """(MemTotal, MemAvailable) in bytes from the raw file, or None when either is missing or
    not a number. The quiet wake-up's read: a full parse costs four times the read itself."""
    if not data.startswith(b"MemTotal:"):
        return None
    at = data.find(b"\nMemAvailable:", 9)
    if at < 0:
        return None
    try:
        return int(data[9:data.index(b"kB", 9)]) * 1024, int(data[at + 14:data.index(b"kB", at)]) * 1024
    except ValueError:
        return None


_SPLIT_KEY = methodcaller("split", ":", 1)


def _wanted_fields(text: str) -> Optional[Dict[str, int]]:
    """The WANTED lines in bytes, read from a dict of every line: a full tick's parse, where
    the line-by-line one was two thirds of the tick's Python calls. None when anything is off
    (a line without its colon, a wanted value that is not "N kB" or "N", a truncated last
    line): _parse_fields then says which line and what was expected."""
    if not text.endswith("\n"):
        return None
    try:
        lines = dict(map(_SPLIT_KEY, text[:-1].split("\n")))  # no Python frame per line
    except ValueError:
        return None
    fields = {}
    for key in WANTED.intersection(lines):
        parts = lines[key].split()
        if len(parts) == 2 and parts[1] == "kB":
            scale = 1024
        elif len(parts) == 1:
            scale = 1
        else:
            return None
        try:
            fields[key] = int(parts[0]) * scale
        except ValueError:
            return None
    return fields


def parse_meminfo(text: str, path: str = "/proc/meminfo") -> MemInfo:
    """Parse the text of /proc/meminfo. Raises ParseError if MemTotal/MemFree are missing or
    a value is not a number. Without MemAvailable (kernel < 3.14), estimates
    MemFree + Active(file) + Inactive(file), or MemFree + Cached + Buffers when the file LRU
    lines are missing too, and sets available_estimated."""
    f = _wanted_fields(text)
    if f is None:
        f = _parse_fields(text, path, WANTED)
    for key in ("MemTotal", "MemFree"):
        if key not in f:
            raise ParseError(path, key, "missing (file empty or truncated?)")
    total = f["MemTotal"]
    free = f["MemFree"]
    cached = f.get("Cached", 0)
    if "MemAvailable" in f:
        available = f["MemAvailable"]
        estimated = False
    else:
        if "Active(file)" in f and "Inactive(file)" in f:
            available = free + f["Active(file)"] + f["Inactive(file)"]
        else:
            available = free + cached + f.get("Buffers", 0)
        available = min(available, total)
        estimated = True
    return MemInfo(
        total=total,
        free=free,
        available=available,
        available_estimated=estimated,
        cached=cached,
        anon=f.get("AnonPages"),
        swap_total=f.get("SwapTotal", 0),
        swap_free=f.get("SwapFree", 0),
        committed_as=f.get("Committed_AS"),
        commit_limit=f.get("CommitLimit"),
        sunreclaim=f.get("SUnreclaim"),
    )


def read_meminfo(proc_root: str = "/proc") -> MemInfo:
    """Raises FileNotFoundError when <proc>/meminfo does not exist (no procfs: nothing in
    the guardian can work without it) and ParseError when it is garbled."""
    path = os.path.join(proc_root, "meminfo")
    return parse_meminfo(read_text(path), path)


def parse_meminfo_kib(text: str, path: str = "/proc/meminfo") -> Dict[str, int]:
    """Every field of /proc/meminfo in KiB, as the kernel prints them (unit-less lines such as
    HugePages_Total are counts): for callers that want fields MemInfo leaves out (Hugetlb) or
    sizes in KiB. Raises ParseError on a garbled line, as parse_meminfo does."""
    return _parse_fields(text, path, None, in_kib=True)


def read_meminfo_kib(proc_root: str = "/proc") -> Optional[Dict[str, int]]:
    """parse_meminfo_kib of <proc>/meminfo; None when the file does not exist."""
    path = os.path.join(proc_root, "meminfo")
    text = read_optional_text(path)
    return None if text is None else parse_meminfo_kib(text, path)


def read_meminfo_kib_or_empty(proc_root: str = "/proc") -> Dict[str, int]:
    """read_meminfo_kib, or {} when the file is missing, unreadable or garbled: for reports and
    safety checks that leave out what needs it rather than fail."""
    try:
        return read_meminfo_kib(proc_root) or {}
    except (OSError, ParseError):
        return {}
