"""/proc/PID/smaps_rollup and /proc/PID/smaps: a process's memory, whole and per mapping.

smaps_rollup (4.14+) gives RSS, PSS and anon in one cheap read: the leak watch's sample.
smaps lists every mapping; read now and then while a process grows, and diffed against an
earlier read (smaps_growth), it says where the growth is: the heap, anonymous regions, the
writable segment of a shared object. It is the costly one (needs ptrace access, one stanza
per mapping), so it is read only while something grows.
"""
from __future__ import annotations

from guardian.kernel import read_bytes
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Mapping, Optional, Tuple

KIB = 1024  # the files count in kB
GREW_KEPT = 6  # mappings kept in the smaps diff


@record
class Rollup:
    """/proc/PID/smaps_rollup, in bytes (None: the kernel does not give that field)."""

    rss: int
    pss: Optional[int]
    anon: Optional[int]
    swap: Optional[int]


_ROLLUP_KEYS = {b"Rss": "rss", b"Pss": "pss", b"Anonymous": "anon", b"Swap": "swap"}


def parse_rollup(data: bytes) -> Optional[Rollup]:
    """The fields of smaps_rollup text; None when it has no Rss line (a zombie reads empty)."""
    got: Dict[str, int] = {}
    for line in data.split(b"\n"):
        i = line.find(b":")
        if i <= 0:
            continue
        name = _ROLLUP_KEYS.get(line[:i])
        if name is not None and name not in got:
            parts = line[i + 1:].split()
            if parts:
                got[name] = int(parts[0]) * KIB
    if "rss" not in got:
        return None
    return Rollup(got["rss"], got.get("pss"), got.get("anon"), got.get("swap"))


def read_rollup(pid: int, proc_root: str = "/proc") -> Optional[Rollup]:
    """None when the process is gone, the kernel is older than 4.14, or we may not read it."""
    try:
        return parse_rollup(read_bytes("%s/%d/smaps_rollup" % (proc_root, pid), bufsize=4096))
    except (OSError, ValueError):
        return None


def parse_smaps(data: bytes) -> Dict[str, int]:
    """Bytes resident or swapped out (Rss + Swap) per mapping group of /proc/PID/smaps:
    "[heap]", "[stack]", "[anon:NAME]" (named anonymous regions), "anon@ADDR" (an anonymous
    region by its start address: malloc arenas of other threads, large allocations), "PATH
    (rw)" (a writable mapping of a file: a shared object's data segment, a shared file).
    Read-only file mappings (code, fonts) are left out: a leak is not there. An anonymous
    region is not pinned on the shared object it happens to follow: mmap places unrelated
    regions right after libraries, so that would point the engineer at the wrong library."""
    out: Dict[str, int] = {}
    key: Optional[str] = None
    for line in data.split(b"\n"):
        if not line:
            continue
        c = line[0]
        if 48 <= c <= 57 or 97 <= c <= 102:  # a hex digit: a mapping's header line
            parts = line.split(None, 5)
            if len(parts) < 5 or b"-" not in parts[0]:
                key = None
                continue
            start = parts[0].split(b"-", 1)[0]
            path = parts[5].strip() if len(parts) > 5 else b""
            if not path:
                key = "anon@%s" % start.decode("ascii", "replace")
            elif path.startswith(b"["):
                if path in (b"[heap]", b"[stack]") or path.startswith(b"[anon:"):
                    key = path.decode("utf-8", "replace")
                else:
                    key = None  # [vdso], [vvar], [vsyscall]
            elif b"w" in parts[1]:
                key = "%s (rw)" % path.decode("utf-8", "replace")
            else:
                key = None
            continue
        if key is None:
            continue
        if line.startswith(b"Rss:") or line.startswith(b"Swap:"):
            fields = line.split()
            if len(fields) >= 2:
                out[key] = out.get(key, 0) + int(fields[1]) * KIB
    return out


def read_smaps(pid: int, proc_root: str = "/proc") -> Optional[Dict[str, int]]:
    """parse_smaps of /proc/PID/smaps; None when gone or not ours to read (needs ptrace access)."""
    try:
        return parse_smaps(read_bytes("%s/%d/smaps" % (proc_root, pid), bufsize=65536))
    except (OSError, ValueError):
        return None


def smaps_growth(before: Mapping[str, int], after: Mapping[str, int],
                 top: int = GREW_KEPT) -> List[Tuple[str, int, int]]:
    """The mappings that grew most: [(mapping, bytes grown, bytes now)], largest growth first,
    with all anonymous regions together as one more row (regions come and go)."""
    rows = []
    for key in set(before) | set(after):
        grown = after.get(key, 0) - before.get(key, 0)
        if grown > 0:
            rows.append((key, grown, after.get(key, 0)))
    anon_before = [v for k, v in before.items() if k.startswith("anon@")]
    anon_after = [v for k, v in after.items() if k.startswith("anon@")]
    if anon_after and len(anon_after) + len(anon_before) > 1:
        grown = sum(anon_after) - sum(anon_before)
        if grown > 0:
            rows.append(("all anonymous regions (%d, were %d)" % (len(anon_after), len(anon_before)), grown,
                         sum(anon_after)))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows[:top]
