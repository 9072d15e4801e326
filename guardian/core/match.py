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

Names are not identities: comm, cmdline and argv[0] are chosen by whoever starts a process. A
process takes a role only if its identity fits too: its owner (the entry's user/uid, or else a
uid up to victims.role_max_uid: root and system accounts) and, where the entry names exe, an
executable that is a root-owned file nobody else can write. A process whose name fits and whose
identity does not is an impostor: no role, an ordinary candidate; guardian.core.impostors lists
them for `check` and `status` (the daemon never holds it).
"""
from __future__ import annotations

import os

from guardian.config import Config, Critical, LowPriority, Match
from guardian.kernel.procs import ProcInfo
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Union


@record
class Role:
    kind: str  # "critical" or "low_priority"
    entry: Union[Critical, LowPriority]


_regex_cache: dict = {}  # pattern -> re.Pattern (re is imported only for a pattern)
# A cmdline regex runs on at most this many characters of the arguments (any user chooses them;
# the patterns that could backtrack exponentially are refused when the config is loaded).
MAX_MATCH_CHARS = 512


def regex(pattern: str):  # -> re.Pattern[str]
    """The pattern compiled (an re.Pattern), once: every match of a process table reuses it.
    The daemon has its config's patterns already (adopt(), from what its loader child compiled);
    any other pattern imports re (~0.9 MiB resident with enum and functools), compiled by
    precompile() when a config is set, never by a classification under memory pressure."""
    compiled = _regex_cache.get(pattern)
    if compiled is None:
        import re

        compiled = _regex_cache[pattern] = re.compile(pattern)
    return compiled


def precompile(config: Config) -> None:
    """Compile the config's cmdline patterns now (and import re only if one is not adopted)."""
    for pattern in _patterns(config):
        regex(pattern)


def _patterns(config: Config) -> List[str]:
    return [entry.match.cmdline for entry in tuple(config.critical) + tuple(config.low_priority)
            if entry.match.cmdline is not None]


def programs(config: Config) -> Dict[str, tuple]:
    """In a loader child (the daemon's start-up or a reload, which imports re anyway): each of
    the config's cmdline patterns as re compiled it, the arguments re gave _sre.compile (the
    regex engine's program, as plain lists, dicts, tuples and ints), for marshal to carry to the
    daemon, which builds the very same compiled patterns from them (adopt) without importing re.
    A pattern whose program cannot go through marshal or does not build the same pattern again
    is left out: the daemon compiles it."""
    import marshal
    import re

    import _sre

    out: Dict[str, tuple] = {}
    real = _sre.compile

    def spy(*args: Any) -> Any:
        compiled = real(*args)
        if args and isinstance(args[0], str):
            out[args[0]] = (compiled, _plain(args[1:]))
        return compiled

    _sre.compile = spy
    try:
        for pattern in _patterns(config):
            re.purge()  # so that re compiles it now, not from its cache
            re.compile(pattern)
    finally:
        _sre.compile = real
    found: Dict[str, tuple] = {}
    for pattern, (compiled, program) in out.items():
        try:
            marshal.dumps(program)
            if real(pattern, *program) != compiled:  # the same flags, pattern and program
                continue
        except Exception:
            continue
        found[pattern] = program
    return found


def _plain(value: Any) -> Any:
    """re's program with its named opcodes (int subclasses, which marshal refuses) as ints."""
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def adopt(programs: Optional[Dict[str, tuple]]) -> None:
    """In the daemon: the compiled patterns, from the programs its loader child sent (programs()).
    One that does not build (never expected: the child is this same interpreter) is left to
    regex(), which compiles it with re."""
    if not programs:
        return
    import _sre

    for pattern, program in programs.items():
        if pattern in _regex_cache:
            continue
        try:
            compiled = _sre.compile(pattern, *program)
        except Exception:
            continue
        _regex_cache[pattern] = compiled


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


_uid_cache: Dict[str, Optional[int]] = {}


def uid_of(user: str) -> Optional[int]:
    """The uid of a user name (looked up once), None when there is no such user here."""
    if user not in _uid_cache:
        try:
            import pwd
            _uid_cache[user] = pwd.getpwnam(user).pw_uid
        except (KeyError, ImportError):
            _uid_cache[user] = None
    return _uid_cache[user]


def identity_problem(match: Match, proc: ProcInfo, max_uid: int, proc_root: str = "/proc") -> Optional[str]:
    """Why the process is not who its name says, or None when its identity fits the entry."""
    if match.uid is not None or match.user is not None:
        want = match.uid if match.uid is not None else uid_of(match.user or "")
        if want is None:
            return "no user %r on this system" % match.user
        if proc.uid != want:
            return "owned by uid %d, the entry names %s" % (proc.uid, match.user or "uid %d" % want)
    elif proc.uid > max_uid:
        return "owned by uid %d, not root or a system account (role_max_uid %d)" % (proc.uid, max_uid)
    if match.exe is not None:
        try:
            st = os.stat("%s/%d/exe" % (proc_root, proc.pid))
        except OSError:
            return "its executable cannot be checked"
        if st.st_uid != 0 or st.st_mode & 0o022:
            return "its executable is not a root-owned file only root can write (uid %d, mode %04o)" % (
                st.st_uid, st.st_mode & 0o7777)
    return None


def matches(match: Match, proc: ProcInfo, proc_root: str = "/proc", max_uid: Optional[int] = None) -> bool:
    """True when every field the match gives fits the process, its identity included (with
    max_uid None: the name alone, for callers that judge identity themselves). Kernel threads
    never match."""
    if not _named(match, proc, proc_root):
        return False
    return max_uid is None or identity_problem(match, proc, max_uid, proc_root) is None


def _named(match: Match, proc: ProcInfo, proc_root: str) -> bool:
    if proc.kthread:
        return False
    # Cheapest first; exe costs a readlink.
    if match.comm is not None and proc.comm != match.comm[:15]:
        return False
    if match.cgroup is not None and not _cgroup_under(match.cgroup, proc.cgroup):
        return False
    if match.unit is not None and not _unit_in_cgroup(match.unit, proc.cgroup):
        return False
    if match.cmdline is not None and not regex(match.cmdline).search(" ".join(proc.cmdline)[:MAX_MATCH_CHARS]):
        return False
    if match.exe is not None and read_exe(proc.pid, proc_root) != match.exe:
        return False
    return True


def classify(procs: Iterable[ProcInfo], config: Config, proc_root: str = "/proc") -> Dict[int, Role]:
    """The role of each process that a board entry names and whose identity fits; critical
    wins over low priority."""
    roles: Dict[int, Role] = {}
    if not config.critical and not config.low_priority:
        return roles
    max_uid = config.victims.role_max_uid
    for proc in procs:
        for crit in config.critical:
            if matches(crit.match, proc, proc_root, max_uid):
                roles[proc.pid] = Role("critical", crit)
                break
        else:
            for low in config.low_priority:
                if matches(low.match, proc, proc_root, max_uid):
                    roles[proc.pid] = Role("low_priority", low)
                    break
    return roles
