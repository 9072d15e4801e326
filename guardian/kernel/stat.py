"""/proc/stat: the one line the guardian reads, "processes" (forks since boot), which tells the
adj keeper how many processes appear per second."""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def parse_fork_count(data: bytes) -> Optional[int]:
    """The "processes" counter of /proc/stat, or None where it is missing or garbled."""
    i = data.find(b"\nprocesses ")
    if i < 0:
        return None
    end = data.find(b"\n", i + 11)
    try:
        return int(data[i + 11:end if end >= 0 else len(data)])
    except ValueError:
        return None


def read_fork_count(proc_root: str = "/proc") -> Optional[int]:
    try:
        with open(os.path.join(proc_root, "stat"), "rb") as f:
            return parse_fork_count(f.read())
    except OSError:
        return None
