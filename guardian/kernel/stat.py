"""How processes appear, for the adj keeper: /proc/stat's "processes" (forks since boot), which
tells how many appear per second, and /proc/loadavg's last PID, which tells whether any did
since the last look (a 30-byte file, where listing /proc reads an entry per process)."""
from __future__ import annotations

from guardian.kernel import read_bytes

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
        return parse_fork_count(read_bytes(proc_root + "/stat"))
    except OSError:
        return None


def parse_last_pid(data: bytes) -> Optional[int]:
    """The last field of /proc/loadavg: the PID most recently given out (in the reader's PID
    namespace), or None where it is missing or garbled."""
    fields = data.split()
    if len(fields) != 5:
        return None
    try:
        return int(fields[4])
    except ValueError:
        return None


def read_last_pid(proc_root: str = "/proc") -> Optional[int]:
    try:
        return parse_last_pid(read_bytes(proc_root + "/loadavg"))
    except OSError:
        return None
