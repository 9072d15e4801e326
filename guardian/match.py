"""Which running processes the board's [[critical]] and [[low_priority]] entries name.

Every field a Match gives must fit:
- comm: the kernel's process name, exactly (the kernel keeps 15 characters, so a longer
  name is compared by its first 15);
- cmdline: a regex searched (re.search) in the arguments joined by spaces;
- exe: the program /proc/PID/exe points to (" (deleted)" of a replaced binary ignored);
- unit: a systemd unit, found as a component of the process's cgroup path;
- cgroup: a cgroup path, matching itself and everything below it.
Kernel threads never match. An entry's order in the file decides ties: the first critical
entry that fits wins, and critical entries win over low-priority ones.
"""
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
# A cmdline regex runs on at most this many characters of the arguments (any user chooses them;
# the patterns that could backtrack exponentially are refused when the config is loaded).
MAX_MATCH_CHARS = 512


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


def _cgroup_under(prefix: str, cgroup: str) -> bool:
    """The cgroup is prefix or below it ("/system.slice/a" is not under "/system.slice/a.b")."""
    prefix = prefix.rstrip("/")
    return not prefix or cgroup == prefix or cgroup.startswith(prefix + "/")


def _unit_in_cgroup(unit: str, cgroup: str) -> bool:
    return ("/" + unit + "/") in (cgroup + "/") or cgroup.endswith("/" + unit)


def matches(match: Match, proc: ProcInfo, proc_root: str = "/proc") -> bool:
    """True when every field the match gives fits the process. Kernel threads never match."""
    if proc.kthread:
        return False
    # Cheapest first; exe costs a readlink.
    if match.comm is not None and proc.comm != match.comm[:15]:
        return False
    if match.cgroup is not None and not _cgroup_under(match.cgroup, proc.cgroup):
        return False
    if match.unit is not None and not _unit_in_cgroup(match.unit, proc.cgroup):
        return False
    if match.cmdline is not None and not _regex(match.cmdline).search(" ".join(proc.cmdline)[:MAX_MATCH_CHARS]):
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
