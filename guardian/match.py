"""Which running processes the board's [[critical]] and [[low_priority]] entries name."""
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Union

from guardian.config import Config, Critical, LowPriority, Match
from guardian.kernel.procs import ProcInfo


@dataclass(frozen=True)
class Role:
    kind: str  # "critical" or "low_priority"
    entry: Union[Critical, LowPriority]


_regex_cache: Dict[str, "re.Pattern[str]"] = {}


def _regex(pattern: str) -> "re.Pattern[str]":
    compiled = _regex_cache.get(pattern)
    if compiled is None:
        compiled = _regex_cache[pattern] = re.compile(pattern)
    return compiled


def read_exe(pid: int, proc_root: str = "/proc") -> Optional[str]:
    try:
        exe = os.readlink("%s/%d/exe" % (proc_root, pid))
    except OSError:
        return None
    # A replaced binary reads as "/usr/sbin/foo (deleted)": still the same program.
    return exe[:-10] if exe.endswith(" (deleted)") else exe


def _unit_in_cgroup(unit: str, cgroup: str) -> bool:
    return ("/" + unit + "/") in (cgroup + "/") or cgroup.endswith("/" + unit)


def matches(match: Match, proc: ProcInfo, proc_root: str = "/proc") -> bool:
    """True when every field the match gives fits the process. Kernel threads never match."""
    if proc.kthread:
        return False
    if match.comm is not None and proc.comm != match.comm[:15]:
        return False
    if match.cmdline is not None and not _regex(match.cmdline).search(" ".join(proc.cmdline)):
        return False
    if match.cgroup is not None and not proc.cgroup.startswith(match.cgroup):
        return False
    if match.unit is not None and not _unit_in_cgroup(match.unit, proc.cgroup):
        return False
    if match.exe is not None and read_exe(proc.pid, proc_root) != match.exe:
        return False
    return True


def classify(procs: Iterable[ProcInfo], config: Config, proc_root: str = "/proc") -> Dict[int, Role]:
    """The role of each process that a board entry names; critical wins over low priority."""
    roles: Dict[int, Role] = {}
    if not config.critical and not config.low_priority:
        return roles
    for proc in procs:
        for crit in config.critical:
            if matches(crit.match, proc, proc_root):
                roles[proc.pid] = Role("critical", crit)
                break
        else:
            for low in config.low_priority:
                if matches(low.match, proc, proc_root):
                    roles[proc.pid] = Role("low_priority", low)
                    break
    return roles
