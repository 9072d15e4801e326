"""Board configs: TOML files loaded, validated and merged into a guardian.config.Config.

A board file maps 1:1 onto the dataclasses of guardian/config.py (tables are dataclasses,
arrays become tuples). Loading is strict, because a typo must not silently disable
protection: unknown keys are errors (with the nearest valid key), values are type- and
range-checked, regexes are compiled, and every message names the file, the line when it can
be found, the key path, the value and what was expected.

Includes: ``[board] include = ["generic"]`` (board names, or paths relative to the file).
Included files are merged first, in order, then the including file on top:
- tables merge key by key, recursively (a later ``thresholds.kill.percent`` overrides only
  that value); scalars and plain arrays (``stop``, ``ignore_names``) are replaced whole;
- ``[[critical]]`` and ``[[low_priority]]`` entries are matched by ``name``: an entry whose
  name is new is appended, one with a known name replaces the earlier entry whole (in its
  place), and ``{name = "x", remove = true}`` deletes the inherited entry;
- ``[board]`` is never inherited: name, description, ram_mib and match are the top file's.

Trust: the config can make the guardian run commands as root, so every file read (and the
directories holding it) must be writable by root (or the user running the guardian) only.
"""
import dataclasses
import math
import os
import re
import stat
import sys
import typing
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from guardian.board import sysctl as _sysctl
from guardian.config import Board, BoardMatch, Config, Critical, LeakWatch, Line, LowPriority, Match

try:  # Python >= 3.11
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.9/3.10
    import tomli as _toml  # type: ignore[no-redef]

LOCAL_BOARDS_DIRS = ("/etc/guardian/boards",)
GENERIC = "generic"
_BOARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNIT_SUFFIXES = (".service", ".scope", ".slice", ".socket", ".mount", ".timer", ".target", ".swap", ".path")

Path = Tuple[Any, ...]  # a key path: ("critical", 1, "match", "comm")


class ConfigError(ValueError):
    """A config that cannot be used. The message names the file, line, key path, value and
    what was expected; the parts are also attributes for programs."""

    def __init__(self, file: str, key: str = "", value: Any = None, expected: str = "",
                 line: Optional[int] = None, column: Optional[int] = None, hint: str = "",
                 has_value: bool = True):
        self.file = file
        self.key = key
        self.value = value
        self.expected = expected
        self.line = line
        self.column = column
        self.hint = hint
        where = file
        if line is not None:
            where += ":%d" % line
            if column is not None:
                where += ":%d" % column
        parts = [where]
        if key:
            parts.append(key + (" = " + _show(value) if has_value and value is not None else ""))
        if expected:
            parts.append(expected)
        message = ": ".join(parts)
        if hint:
            message += "; " + hint
        super().__init__(message)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    why: str  # which board, and why it was picked
    files: Tuple[str, ...]  # every file read, includes first
    notes: Tuple[str, ...] = ()  # things worth a log line that are not errors


def _show(value: Any) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    elif isinstance(value, dict):
        text = "{" + ", ".join("%s = %s" % (k, _show(v)) for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _render(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + (part if re.match(r"^[A-Za-z0-9_-]+$", part) else '"%s"' % part)
    return out


def _suggest(key: str, valid: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if close:
        return "did you mean '%s'?" % close[0]
    return "valid keys: " + ", ".join(sorted(valid))


# --------------------------------------------------------------------------- locating keys

def _unquoted(text: str) -> Iterator[Tuple[int, str]]:
    """(index, character) of each character of a TOML line outside quoted strings, up to a
    comment."""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            return
        else:
            yield i, c
        i += 1


def _scan(text: str, stop_at: str) -> int:
    """Index of the first stop_at character outside quotes, or -1."""
    return next((i for i, c in _unquoted(text) if c in stop_at), -1)


def _split_key(text: str) -> List[str]:
    parts, cur, quote = [], "", None
    for c in text:
        if quote:
            if c == quote:
                quote = None
            else:
                cur += c
        elif c in "\"'":
            quote = c
        elif c == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    parts.append(cur.strip())
    return parts


def _bracket_balance(text: str) -> int:
    return sum(1 if c in "[{" else -1 for _i, c in _unquoted(text) if c in "[]{}")


def locate(text: str, target: Path) -> Optional[int]:
    """Best-effort 1-based line of the key path in the TOML text (the line of the longest
    prefix of the path that is spelled out: an inline table's key, a [[table]] header)."""
    arrays: Dict[Path, int] = {}
    header: Path = ()
    best_len, best_line = 0, None
    depth = 0

    def resolve(keys: List[str]) -> Path:
        out: Path = ()
        for k in keys:
            out = out + (k,)
            if out in arrays:
                out = out + (arrays[out],)
        return out

    for lineno, raw in enumerate(text.splitlines(), 1):
        if depth > 0:  # inside a multi-line array
            depth += _bracket_balance(raw)
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[["):
            end = s.find("]]")
            keys = _split_key(s[2:end])
            base = resolve(keys[:-1]) + (keys[-1],)
            arrays[base] = arrays.get(base, -1) + 1
            cand = header = base + (arrays[base],)
        elif s.startswith("["):
            end = _scan(s[1:], "]")
            cand = header = resolve(_split_key(s[1:end + 1 if end >= 0 else len(s)]))
        else:
            eq = _scan(s, "=")
            if eq < 0:
                continue
            cand = header + tuple(_split_key(s[:eq]))
            depth = max(0, _bracket_balance(s[eq + 1:]))
        n = min(len(cand), len(target))
        if n > best_len and tuple(target[:n]) == cand[:n]:  # one is a prefix of the other
            best_len, best_line = n, lineno
    return best_line


# --------------------------------------------------------------------------- file trust

# A board config is a few KiB; anything far larger is no config.
MAX_CONFIG_BYTES = 1 << 20


def read_trusted(path: str, check_owner: bool = True) -> str:
    """Open the config once and judge the file that was opened (fstat), not the path: no
    window between the check and the read. Refused: a file someone other than root (or the
    user running the guardian) could change - group/other-writable or owned by another user
    -, a symlink owned by another user, anything but a regular file (a FIFO would block), and
    a file under a directory (of the path as given or as resolved) that is other-writable
    (sticky excepted) or owned by another user. Returns the text."""
    euid = os.geteuid()
    why = "the config can make the guardian run commands as root, so only root may be able to change it"
    try:
        lst = os.lstat(path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise ConfigError(path, expected="cannot read: %s" % (e.strerror or e))
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(lst.st_mode) and check_owner and lst.st_uid not in (0, euid):
            raise ConfigError(path, expected="refused: a symlink owned by uid %d (%s), not root"
                              % (lst.st_uid, _user(lst.st_uid)), hint="%s; its owner chose what it points to" % why)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, expected="refused: not a regular file")
        if st.st_mode & 0o022:
            who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit)
            raise ConfigError(path, expected="refused: writable by %s (mode %04o)" % (who, st.st_mode & 0o7777),
                              hint="%s; fix with: chmod go-w %s" % (why, path))
        if check_owner and st.st_uid not in (0, euid):
            raise ConfigError(path, expected="refused: owned by uid %d (%s), not root" % (st.st_uid, _user(st.st_uid)),
                              hint="%s; fix with: chown root %s" % (why, path))
        try:
            opened = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            opened = os.path.realpath(path)
        _check_dirs(path, (os.path.dirname(os.path.abspath(path)), os.path.dirname(opened)), check_owner, why)
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(path, expected="refused: larger than %d bytes" % MAX_CONFIG_BYTES)
            chunks.append(chunk)
    except OSError as e:
        raise ConfigError(path, expected="cannot read: %s" % (e.strerror or e))
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, expected="not UTF-8 text", line=data[:e.start].count(b"\n") + 1)


def _check_dirs(path: str, starts: Sequence[str], check_owner: bool, why: str) -> None:
    """The directories above the file (as named, and as opened): whoever can write one of them
    can put another file in its place."""
    euid = os.geteuid()
    seen = set()
    for start in starts:
        d = start
        while d not in seen:
            seen.add(d)
            try:
                ds = os.stat(d)
            except OSError:
                break
            if ds.st_mode & 0o002 and not ds.st_mode & 0o1000:
                raise ConfigError(path, expected="refused: directory %s is writable by others (mode %04o)"
                                  % (d, ds.st_mode & 0o7777), hint="%s; anyone could replace the file" % why)
            if check_owner and ds.st_uid not in (0, euid):
                raise ConfigError(path, expected="refused: directory %s is owned by uid %d (%s), not root"
                                  % (d, ds.st_uid, _user(ds.st_uid)),
                                  hint="%s; its owner could replace the file" % why)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return "no such user"


# --------------------------------------------------------------------------- parsing

def parse_toml(path: str, text: Optional[str] = None) -> Tuple[Dict[str, Any], str]:
    if text is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError(path, expected="cannot read: %s" % (e.strerror or e))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise ConfigError(path, expected="not UTF-8 text", line=line)
    try:
        doc = _toml.loads(text)
        _check_depth(doc, path)
        return doc, text
    except RecursionError:
        raise ConfigError(path, expected="refused: arrays or tables nested too deep to be a board config")
    except _toml.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
        line = col = None
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = msg[:m.start()] + msg[m.end():]
        raise ConfigError(path, expected="TOML syntax error: " + msg.strip(), line=line, column=col)


# No board config nests deeper than a few levels; the checks that follow walk values recursively.
MAX_DEPTH = 16


def _check_depth(doc: Any, path: str) -> None:
    stack = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(path, expected="refused: arrays or tables nested deeper than %d levels" % MAX_DEPTH)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


class _Ctx:
    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.notes: List[str] = []

    def error(self, path: Path, value: Any, expected: str, hint: str = "", has_value: bool = True) -> ConfigError:
        return ConfigError(self.file, _render(path), value, expected, line=locate(self.text, path),
                           hint=hint, has_value=has_value)

    def unknown(self, path: Path, valid: Sequence[str], extra: str = "") -> ConfigError:
        hint = extra or _suggest(str(path[-1]), valid)
        return ConfigError(self.file, _render(path), None, "unknown key", line=locate(self.text, path),
                           hint=hint, has_value=False)


# --------------------------------------------------------------------------- schema checks

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_of(tp: Any) -> Optional[Any]:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _is_str_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple and typing.get_args(tp) == (str, Ellipsis)


def _check_scalar(tp: Any, value: Any, path: Path, ctx: _Ctx) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.error(path, value, "expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(path, value, "expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ctx.error(path, value, "expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ctx.error(path, value, "expected a string")
        return value
    if _is_str_tuple(tp):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ctx.error(path, value, "expected a list of strings")
        return tuple(value)
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ctx.error(path, value, "expected %s" % _TYPE_WORDS.get(tp, tp.__name__))
        return value
    return value  # a type this loader does not know: taken as TOML gives it


def _range(lo: Optional[float], hi: Optional[float], what: str = "a number"):
    def check(v: Any) -> Optional[str]:
        if v is None:
            return None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            if hi is None:
                return "expected %s >= %s" % (what, _num(lo))
            if lo is None:
                return "expected %s <= %s" % (what, _num(hi))
            return "expected %s from %s to %s" % (what, _num(lo), _num(hi))
        return None

    return check


def _num(x: Optional[float]) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def _positive(v: Any) -> Optional[str]:
    return None if v is None or v > 0 else "expected a number > 0"


def _choice(*options: Any):
    def check(v: Any) -> Optional[str]:
        if v in options:
            return None
        return "expected one of " + ", ".join(_show(o) for o in options)

    return check


_ADJ = _range(-1000, 1000, "an integer")
# Intervals have floors: 0 or 1e-300 turned the loop (or a thread) into a busy loop that burnt
# 40-100 % of a core. Sizes have ceilings no board reaches (1 TiB), so no line overflows.
_CONSTRAINTS: Dict[str, Any] = {
    "Line.percent": _range(0, 100),
    "Line.min_mib": _range(0, 1 << 20, "a size in MiB"),
    "Line.floor_max_percent": _range(0, 100),
    "Thresholds.reaction_time_s": _range(0, 60),
    "Wait.psi_window_us": _range(500000, 10000000, "an integer (microseconds)"),
    "Wait.psi_stall_us": _range(1, 10000000, "an integer (microseconds)"),
    "Wait.min_timeout_s": _range(0.01, 60, "seconds"),
    "Wait.max_timeout_s": _range(0.1, 3600, "seconds"),
    "Wait.max_timeout_poll_s": _range(0.05, 3600, "seconds"),
    "Wait.proc_sample_interval_s": _range(1, 86400, "seconds"),
    "Wait.assumed_fill_rate_mib_s": _range(1, 1 << 20, "MiB/s"),
    "Actions.drop_caches_level": _choice(0, 1, 2, 3),
    "Actions.grace_s": _range(0, 3600, "seconds"),
    "Actions.stop_command_timeout_s": _range(0.1, 3600, "seconds"),
    "Actions.reclaim_interval_s": _range(1, 86400, "seconds"),
    "Actions.settle_s": _range(0, 10, "seconds"),
    "Victims.culprit_share": _range(0, 1),
    "Victims.culprit_min_percent": _range(0, 100),
    "Victims.growth_window_s": _range(1, 86400, "seconds"),
    "Victims.role_max_uid": _range(0, 2 ** 32 - 1, "a uid"),
    "Match.uid": _range(0, 2 ** 32 - 1, "a uid"),
    "Leaks.save_interval_s": _range(10, 86400, "seconds"),
    "Leaks.save_idle_interval_s": _range(10, 86400, "seconds"),
    "Leaks.watch_interval_s": _range(1, 86400, "seconds"),
    "LeakWatch.on_leak": _choice("restart", "notify", "command"),
    "LeakWatch.interval_s": _range(0.5, 86400, "seconds"),
    "LeakWatch.window_s": _range(10, 30 * 86400, "seconds"),
    "LeakWatch.horizon_s": _positive,
    "LeakWatch.cooldown_s": _range(10, 30 * 86400, "seconds"),
    "LeakWatch.max_rss_mib": _positive,
    "Critical.oom_score_adj": _ADJ,
    "LowPriority.oom_score_adj": _ADJ,
    "LowPriority.order": lambda v: None,
    "Board.ram_mib": _range(16, None, "an integer (MiB)"),
}


def _constraint(cls: type, name: str):
    key = "%s.%s" % (cls.__name__, name)
    if key in _CONSTRAINTS:
        return _CONSTRAINTS[key]
    if name.endswith("percent") or name.startswith("psi_some") or name.startswith("psi_full"):
        return _range(0, 100)
    hint = _hints(cls).get(name)
    if (_optional_of(hint) or hint) in (int, float):
        return _range(0, None)  # every other number in the schema is a size, time or count
    return None


def _check_table(cls: type, raw: Any, path: Path, ctx: _Ctx, skip: Sequence[str] = (),
                 also_valid: Sequence[str] = ()) -> Dict[str, Any]:
    """Validate a (partial) table against a dataclass; returns normalized values. Fields in
    skip are the caller's to check (they are not in raw); also_valid only feeds suggestions."""
    if not isinstance(raw, dict):
        raise ctx.error(path, raw, "expected a table")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    out: Dict[str, Any] = {}
    for key, value in raw.items():
        kpath = path + (key,)
        if key not in names:
            raise ctx.unknown(kpath, names + list(skip) + list(also_valid))
        tp = hints[key]
        inner = _optional_of(tp)
        if inner is not None:
            if value is False and inner is not bool:
                out[key] = None  # `false` switches an optional setting off
                continue
            if value is True and inner is not bool:
                raise ctx.error(kpath, value, "expected %s, or false to switch it off"
                                % _TYPE_WORDS.get(inner, "a value"))
            tp = inner
        if dataclasses.is_dataclass(tp):
            out[key] = _check_table(tp, value, kpath, ctx)
            continue
        value = _check_scalar(tp, value, kpath, ctx)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            check = _constraint(cls, key)
            problem = check(value) if check is not None else None
            if problem:
                raise ctx.error(kpath, value, problem)
        out[key] = value
    return out


def _compile(pattern: str, path: Path, ctx: _Ctx) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ctx.error(path, pattern, "not a valid regular expression: %s" % e)
    risk = backtracking_risk(pattern)
    if risk:
        raise ctx.error(path, pattern, "a pattern that can backtrack catastrophically (%s): the guardian matches "
                        "it against command lines any user chooses, on every process table" % risk,
                        hint="write it without a repeated group that itself repeats or alternates, "
                             "e.g. '^(\\w+ ?)+$' as '^[\\w ]+$'")


MAX_UNBOUNDED_REPEATS = 2


def backtracking_risk(pattern: str) -> str:
    """Why Python's backtracking engine could take exponential time on this pattern, or "".
    Refused: a repeated group (max > 1) containing another repeat or an alternation - the
    shapes of (a+)+, (\\w+\\s?)+ and (a|aa)* - and more than MAX_UNBOUNDED_REPEATS unbounded
    repeats. Matching also runs on at most guardian.core.match.MAX_MATCH_CHARS characters, which
    bounds what the polynomial shapes left cost."""
    sre_parse = getattr(re, "_parser", None) or getattr(re, "sre_parse")  # 3.11+ / older
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}

    def walk(items: Any, inside_repeat: bool) -> str:
        for op, av in items:
            if op in repeats:
                lo, hi, sub = av
                if inside_repeat and hi != 1 and lo != hi:
                    return "a repeat inside a repeated group"
                found = walk(sub, inside_repeat or hi > 1)
                if found:
                    return found
            elif op == sre_parse.BRANCH:
                if inside_repeat:
                    return "an alternation inside a repeated group"
                for branch in av[1]:
                    found = walk(branch, inside_repeat)
                    if found:
                        return found
            elif op == sre_parse.SUBPATTERN:
                found = walk(av[-1], inside_repeat)
                if found:
                    return found
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                found = walk(av[1], inside_repeat)
                if found:
                    return found
        return ""

    parsed = sre_parse.parse(pattern)
    found = walk(parsed, False)
    if found:
        return found
    # Each unbounded repeat multiplies the work of a search by the length of the text: three
    # on a 512-character command line took seconds here.
    unbounded = [0]

    def count(items: Any) -> None:
        for op, av in items:
            if op in repeats:
                if av[1] == sre_parse.MAXREPEAT:
                    unbounded[0] += 1
                count(av[2])
            elif op == sre_parse.BRANCH:
                for branch in av[1]:
                    count(branch)
            elif op == sre_parse.SUBPATTERN:
                count(av[-1])
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                count(av[1])

    count(parsed)
    if unbounded[0] > MAX_UNBOUNDED_REPEATS:
        return "%d unbounded repeats (*, +, {n,}); at most %d" % (unbounded[0], MAX_UNBOUNDED_REPEATS)
    return ""


def _check_match(raw: Any, path: Path, ctx: _Ctx) -> Dict[str, Any]:
    m = _check_table(Match, raw, path, ctx)
    naming = [f.name for f in dataclasses.fields(Match) if f.name not in ("user", "uid")]
    if not any(m.get(k) for k in naming):
        raise ctx.error(path, raw, "expected at least one of: " + ", ".join(naming)
                        + " (user and uid only narrow a match down)")
    if m.get("uid") is not None and not 0 <= m["uid"] < 2 ** 32:
        raise ctx.error(path + ("uid",), m["uid"], "expected a uid from 0 to 4294967295")
    if m.get("user") is not None and m.get("uid") is not None:
        raise ctx.error(path + ("user",), m["user"], "expected user or uid, not both")
    for key, value in m.items():
        if value == "":
            raise ctx.error(path + (key,), value, "expected a non-empty string")
    if m.get("cmdline") is not None:
        _compile(m["cmdline"], path + ("cmdline",), ctx)
    if m.get("exe") is not None and not m["exe"].startswith("/"):
        raise ctx.error(path + ("exe",), m["exe"], "expected an absolute path (what /proc/PID/exe points to)")
    if m.get("cgroup") is not None and not m["cgroup"].startswith("/"):
        raise ctx.error(path + ("cgroup",), m["cgroup"], "expected a cgroup path starting with /")
    if m.get("comm") is not None and len(m["comm"]) > 15:
        ctx.notes.append("%s: %s = %s: the kernel keeps 15 characters of a process name; matching %s"
                         % (ctx.file, _render(path + ("comm",)), _show(m["comm"]), _show(m["comm"][:15])))
    unit = m.get("unit")
    if unit is not None:
        if "/" in unit:
            raise ctx.error(path + ("unit",), unit, "expected a unit name such as \"mosquitto.service\", not a path")
        if not unit.endswith(_UNIT_SUFFIXES):
            m["unit"] = unit + ".service"
    return m


_ENTRY_KEYS = {
    "critical": (Critical, ("name", "match", "oom_score_adj", "leak", "optional", "remove")),
    "low_priority": (LowPriority, ("name", "match", "order", "stop", "oom_score_adj", "optional", "remove")),
}


def _check_entries(section: str, raw: Any, ctx: _Ctx) -> List[Dict[str, Any]]:
    cls, _ = _ENTRY_KEYS[section]
    if isinstance(raw, dict):
        raise ctx.error((section,), None, "expected an array of tables: write [[%s]], not [%s]" % (section, section),
                        has_value=False)
    if not isinstance(raw, list):
        raise ctx.error((section,), raw, "expected an array of tables ([[%s]])" % section)
    entries: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for i, item in enumerate(raw):
        path: Path = (section, i)
        if not isinstance(item, dict):
            raise ctx.error(path, item, "expected a table")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ctx.error(path + ("name",), name, "expected a non-empty string naming the entry"
                            if name is not None else "missing: every [[%s]] needs a name" % section,
                            has_value=name is not None)
        if name in seen:
            raise ctx.error(path + ("name",), name, "duplicate: [[%s]] %d has the same name (names are how "
                            "later files replace entries, so they must be unique within a file)"
                            % (section, seen[name]))
        seen[name] = i
        remove = item.get("remove", False)
        if not isinstance(remove, bool):
            raise ctx.error(path + ("remove",), remove, "expected true or false")
        if remove:
            extra = [k for k in item if k not in ("name", "remove")]
            if extra:
                raise ctx.error(path + (extra[0],), item[extra[0]],
                                "an entry with remove = true takes only its name")
            entries.append({"name": name, "remove": True})
            continue
        body = {k: v for k, v in item.items() if k not in ("match", "leak", "remove")}
        out = _check_table(cls, body, path, ctx, skip=("match", "leak") if section == "critical" else ("match",),
                           also_valid=("remove",))
        if "match" not in item:
            raise ctx.error(path + ("match",), None, "missing: how to recognise %s's process, e.g. "
                            "match = {comm = \"%s\"}" % (name, name[:15]), has_value=False)
        out["match"] = _check_match(item["match"], path + ("match",), ctx)
        if "leak" in item:
            if section != "critical":
                raise ctx.unknown(path + ("leak",), [f.name for f in dataclasses.fields(cls)] + ["remove"],
                                  "leak watching is for [[critical]] entries; a low-priority service "
                                  "that grows is simply the first to go")
            leak = _check_table(LeakWatch, item["leak"], path + ("leak",), ctx)
            if leak.get("on_leak") in ("restart", "command") and not leak.get("command"):
                unit = out["match"].get("unit")
                if leak["on_leak"] == "restart" and unit:
                    leak["command"] = ("systemctl", "restart", unit)
                else:
                    raise ctx.error(path + ("leak", "on_leak"), leak["on_leak"],
                                    "needs leak.command = [argv...], e.g. [\"/etc/init.d/S50%s\", \"restart\"]"
                                    " (or a match.unit, which restarts through systemctl)" % name)
            for k in ("command",):
                if k in leak and leak[k] and not leak[k][0]:
                    raise ctx.error(path + ("leak", k), list(leak[k]), "expected a program as the first element")
            out["leak"] = leak
        if "stop" in out and out["stop"] and not out["stop"][0]:
            raise ctx.error(path + ("stop",), list(out["stop"]), "expected a program as the first element")
        entries.append(out)
    return entries


def _check_board(raw: Any, ctx: _Ctx) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        raise ctx.error(("board",), raw, "expected a table")
    body = {k: v for k, v in raw.items() if k not in ("match", "include")}
    out = _check_table(Board, body, ("board",), ctx, skip=("match", "include"))
    if "name" in out and not _BOARD_NAME.match(out["name"]):
        raise ctx.error(("board", "name"), out["name"], "expected letters, digits, '.', '_' or '-'")
    if "include" in raw:
        inc = raw["include"]
        if isinstance(inc, str):
            inc = [inc]
        if not isinstance(inc, list) or not all(isinstance(i, str) and i for i in inc):
            raise ctx.error(("board", "include"), raw["include"], "expected a board name or file, or a list of them")
        out["include"] = tuple(inc)
    if "match" in raw:
        m = raw["match"]
        items = [m] if isinstance(m, dict) else m
        if not isinstance(items, list) or not items:
            raise ctx.error(("board", "match"), m, "expected a table or an array of tables")
        matches = []
        for i, item in enumerate(items):
            path: Path = ("board", "match") + ((i,) if isinstance(m, list) else ())
            bm = _check_table(BoardMatch, item, path, ctx)
            if not any(bm.values()):
                raise ctx.error(path, item, "expected at least one of: " +
                                ", ".join(f.name for f in dataclasses.fields(BoardMatch)))
            for key, value in bm.items():
                if value is not None and key != "device_tree_compatible":
                    _compile(value, path + (key,), ctx)
            matches.append(bm)
        out["match"] = matches
    return out


def _check_sysctl(raw: Any, ctx: _Ctx) -> Dict[str, str]:
    if not isinstance(raw, dict):
        raise ctx.error(("sysctl",), raw, "expected a table of \"vm.key\" = value")
    out: Dict[str, str] = {}
    flat: List[Tuple[Path, str, Any]] = []

    def walk(prefix: Path, table: Dict[str, Any]) -> None:  # vm.swappiness = 1 unquoted is a nested table
        for k, v in table.items():
            if isinstance(v, dict):
                walk(prefix + (k,), v)
            else:
                flat.append((prefix + (k,), ".".join(prefix + (k,)), v))

    walk((), raw)
    for kpath, dotted, value in flat:
        path = ("sysctl",) + kpath
        key = _sysctl.normalize_key(dotted)
        if key not in _sysctl.EXPLAIN:
            raise ConfigError(ctx.file, "sysctl." + (dotted if len(kpath) == 1 else dotted), None,
                              "unknown kernel memory setting", line=locate(ctx.text, path),
                              hint=_suggest(key, _sysctl.known_keys()), has_value=False)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ctx.error(path, value, "expected an integer or a string")
        text = str(value)
        problem = _sysctl.check_setting(key, text)
        if problem:
            raise ctx.error(path, value, problem + " (%s)" % _sysctl.EXPLAIN[key])
        out[key] = text
    return out


def _sections() -> Dict[str, type]:
    """Every table of Config that is a plain dataclass ([thresholds], [wait], [actions],
    [victims], and whatever is added to config.py later): one TOML table each."""
    hints = _hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)
            if dataclasses.is_dataclass(hints[f.name]) and f.name != "board_info"}


_SECTIONS = _sections()
_TOP_KEYS = tuple(["board"] + list(_SECTIONS) + ["critical", "low_priority", "sysctl"])


def check_document(doc: Dict[str, Any], ctx: _Ctx) -> Dict[str, Any]:
    """Validate one parsed file on its own; returns its normalized content."""
    out: Dict[str, Any] = {}
    for key, value in doc.items():
        if key in _SECTIONS:
            out[key] = _check_table(_SECTIONS[key], value, (key,), ctx)
        elif key in _ENTRY_KEYS:
            out[key] = _check_entries(key, value, ctx)
        elif key == "board":
            out[key] = _check_board(value, ctx)
        elif key == "sysctl":
            out[key] = _check_sysctl(value, ctx)
        else:
            extra = ""
            if key in ("include", "name", "description", "match"):
                extra = "%s belongs in the [board] table" % key
            elif key in _sysctl.EXPLAIN or key in ("vm", "kernel"):
                extra = "kernel settings belong in the [sysctl] table, e.g. [sysctl] \"vm.swappiness\" = 10"
            raise ctx.unknown((key,), _TOP_KEYS, extra)
    return out


# --------------------------------------------------------------------------- merging

def merge(base: Dict[str, Any], top: Dict[str, Any]) -> Dict[str, Any]:
    """Deep-merge two normalized documents (see the module docstring for the rules)."""
    out = dict(base)
    for key, value in top.items():
        if key in _ENTRY_KEYS:
            entries = list(out.get(key, ()))
            for entry in value:
                names = [e["name"] for e in entries]
                if entry.get("remove"):
                    if entry["name"] in names:
                        del entries[names.index(entry["name"])]
                elif entry["name"] in names:
                    entries[names.index(entry["name"])] = entry
                else:
                    entries.append(entry)
            out[key] = entries
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- building

def _build(cls: type, raw: Dict[str, Any], default: Any) -> Any:
    hints = _hints(cls)
    changes = {}
    if cls is Line and "min_mib" in raw and "floor_max_percent" not in raw:
        changes["floor_max_percent"] = 100.0  # a floor the board wrote is meant as written
    for key, value in raw.items():
        tp = _optional_of(hints[key]) or hints[key]
        if value is not None and dataclasses.is_dataclass(tp):
            value = _build(tp, value, getattr(default, key) or tp())
        changes[key] = value
    return dataclasses.replace(default, **changes)


def _build_entry(cls: type, raw: Dict[str, Any]) -> Any:
    kwargs = dict(raw)
    kwargs["match"] = Match(**raw["match"])
    if "leak" in raw:
        kwargs["leak"] = _build(LeakWatch, raw["leak"], LeakWatch())
    return cls(**kwargs)


def build_config(doc: Dict[str, Any], source: str, files: Tuple[str, ...], board_name: str) -> Config:
    kwargs: Dict[str, Any] = {}
    defaults = Config()
    for key, cls in _SECTIONS.items():
        if key in doc:
            kwargs[key] = _build(cls, doc[key], getattr(defaults, key))
    kwargs["critical"] = tuple(_build_entry(Critical, e) for e in doc.get("critical", ()))
    kwargs["low_priority"] = tuple(_build_entry(LowPriority, e) for e in doc.get("low_priority", ()))
    kwargs["sysctl"] = dict(doc.get("sysctl", {}))
    b = dict(doc.get("board", {}))
    b["match"] = tuple(BoardMatch(**m) for m in b.get("match", ()))
    b["name"] = board_name
    kwargs["board_info"] = Board(**b)
    kwargs["board"] = board_name
    kwargs["source"] = source
    kwargs["files"] = files
    return Config(**kwargs)


def _cross_check(config: Config, ctx: _Ctx, files: Tuple[str, ...]) -> None:
    """Checks across keys, once the includes are merged."""
    after = " (after merging %s)" % ", ".join(os.path.basename(f) for f in files) if len(files) > 1 else ""
    t = config.thresholds
    for attr in ("percent", "min_mib"):
        r, te, k = (getattr(getattr(t, n), attr) for n in ("reclaim", "terminate", "kill"))
        if not r >= te >= k:
            raise ctx.error(("thresholds",), None, "the lines must descend, reclaim >= terminate >= kill, "
                            "but %s are %s, %s, %s%s" % (attr, _num(r), _num(te), _num(k), after), has_value=False)
    if t.kill.percent == 0 and t.kill.min_mib == 0:
        raise ctx.error(("thresholds", "kill"), None, "a kill line of 0 %% and 0 MiB never fires: the kernel's OOM "
                        "killer would always come first%s" % after, has_value=False)
    if t.swap_terminate_percent < t.swap_kill_percent:
        raise ctx.error(("thresholds", "swap_kill_percent"), t.swap_kill_percent,
                        "expected <= swap_terminate_percent (%s)%s" % (_num(t.swap_terminate_percent), after))
    if t.commit_terminate_percent > t.commit_kill_percent:
        raise ctx.error(("thresholds", "commit_kill_percent"), t.commit_kill_percent,
                        "expected >= commit_terminate_percent (%s)%s" % (_num(t.commit_terminate_percent), after))
    w = config.wait
    if w.psi_stall_us > w.psi_window_us:
        raise ctx.error(("wait", "psi_stall_us"), w.psi_stall_us,
                        "expected <= psi_window_us (%d)%s" % (w.psi_window_us, after))
    if w.min_timeout_s > min(w.max_timeout_s, w.max_timeout_poll_s):
        raise ctx.error(("wait", "min_timeout_s"), w.min_timeout_s,
                        "expected <= max_timeout_s and max_timeout_poll_s%s" % after)
    names = {c.name for c in config.critical}
    both = names & {low.name for low in config.low_priority}
    if both:
        raise ctx.error(("low_priority",), None, "%s is both [[critical]] and [[low_priority]]%s"
                        % (", ".join(sorted(both)), after), has_value=False)


# --------------------------------------------------------------------------- board files

def shipped_dir() -> Optional[str]:
    """Where the shipped board files are: the installed package data guardian.board_configs,
    a PyInstaller bundle, or board-configs/ of a source checkout."""
    candidates: List[str] = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # PyInstaller: datas=[("board-configs/*.toml", "guardian/board_configs")]
        candidates += [os.path.join(meipass, "guardian", "board_configs"), os.path.join(meipass, "board-configs")]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the guardian package
    # Installed: package data guardian.board_configs; source checkout: ../board-configs.
    candidates += [os.path.join(here, "board_configs"), os.path.join(os.path.dirname(here), "board-configs")]
    for d in candidates:
        if os.path.isfile(os.path.join(d, GENERIC + ".toml")):
            return d
    return None


def _boards_in(directory: Optional[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if not directory:
        return out
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for n in names:
        if n.endswith(".toml") and not n.startswith("."):
            out[n[:-5]] = os.path.join(directory, n)
    return out


def shipped_boards() -> Dict[str, str]:
    """name -> path of every board file shipped with the guardian."""
    return _boards_in(shipped_dir())


def available_boards(boards_dirs: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Shipped boards, overlaid by the local ones (/etc/guardian/boards/NAME.toml), which win."""
    out = shipped_boards()
    for d in (LOCAL_BOARDS_DIRS if boards_dirs is None else boards_dirs):
        out.update(_boards_in(d))
    return out


@dataclass(frozen=True)
class Identity:
    """What the board says it is."""

    device_tree_model: Optional[str] = None
    device_tree_compatible: Tuple[str, ...] = ()
    dmi_product_name: Optional[str] = None
    dmi_sys_vendor: Optional[str] = None
    dmi_board_name: Optional[str] = None
    sources: Tuple[Tuple[str, str], ...] = ()  # (field, file read)

    def describe(self) -> str:
        parts = []
        if self.device_tree_model is not None:
            parts.append("device-tree model %s" % _show(self.device_tree_model))
        if self.dmi_product_name is not None:
            parts.append("DMI product %s" % _show(self.dmi_product_name))
        if self.dmi_sys_vendor is not None:
            parts.append("DMI vendor %s" % _show(self.dmi_sys_vendor))
        return ", ".join(parts) if parts else "no device-tree model and no DMI data"


def _read_first(paths: Sequence[str]) -> Tuple[Optional[bytes], Optional[str]]:
    for p in paths:
        try:
            with open(p, "rb") as f:
                return f.read(4096), p
        except OSError:
            continue
    return None, None


def read_identity(proc_root: str = "/proc", sys_root: str = "/sys") -> Identity:
    sources = []
    dt = [os.path.join(proc_root, "device-tree"), os.path.join(sys_root, "firmware", "devicetree", "base")]
    model_raw, p = _read_first([os.path.join(d, "model") for d in dt])
    model = model_raw.split(b"\0")[0].decode("utf-8", "replace").strip() if model_raw is not None else None
    if p:
        sources.append(("device_tree_model", p))
    compat_raw, p = _read_first([os.path.join(d, "compatible") for d in dt])
    compat = tuple(c.decode("utf-8", "replace") for c in (compat_raw or b"").split(b"\0") if c)
    if p:
        sources.append(("device_tree_compatible", p))
    dmi = {}
    for key, fname in (("dmi_product_name", "product_name"), ("dmi_sys_vendor", "sys_vendor"),
                       ("dmi_board_name", "board_name")):
        raw, p = _read_first([os.path.join(sys_root, "class", "dmi", "id", fname)])
        dmi[key] = raw.decode("utf-8", "replace").strip() if raw is not None else None
        if p:
            sources.append((key, p))
    return Identity(model, compat, sources=tuple(sources), **dmi)


def board_match(board: Board, ident: Identity) -> Optional[Tuple[int, str]]:
    """(specificity, reason) when one of the board's match tables fits, else None."""
    best: Optional[Tuple[int, str]] = None
    src = dict(ident.sources)
    for m in board.match:
        reasons = []
        ok = True
        for f in dataclasses.fields(BoardMatch):
            want = getattr(m, f.name)
            if want is None:
                continue
            if f.name == "device_tree_compatible":
                if want not in ident.device_tree_compatible:
                    ok = False
                    break
                reasons.append("device-tree compatible %s (%s)" % (_show(want), src.get(f.name, "?")))
                continue
            have = getattr(ident, f.name)
            if have is None or not re.search(want, have):
                ok = False
                break
            label = {"device_tree_model": "device-tree model", "dmi_product_name": "DMI product",
                     "dmi_sys_vendor": "DMI vendor", "dmi_board_name": "DMI board"}[f.name]
            reasons.append("%s %s matched '%s' (%s)" % (label, _show(have), want, src.get(f.name, "?")))
        if ok and reasons and (best is None or len(reasons) > best[0]):
            best = (len(reasons), " and ".join(reasons))
    return best


# --------------------------------------------------------------------------- loading

class _Loader:
    def __init__(self, boards: Dict[str, str], check_owner: bool):
        self.boards = boards
        self.check_owner = check_owner
        self.cache: Dict[str, Tuple[Dict[str, Any], _Ctx]] = {}
        self.notes: List[str] = []

    def read(self, path: str) -> Tuple[Dict[str, Any], _Ctx]:
        real = os.path.realpath(path)
        if real not in self.cache:
            doc, text = parse_toml(path, read_trusted(path, self.check_owner))
            ctx = _Ctx(path, text)
            self.cache[real] = (check_document(doc, ctx), ctx)
            self.notes.extend(ctx.notes)
        return self.cache[real]

    def resolve(self, name: str, including: str, ctx: _Ctx) -> str:
        here = os.path.dirname(os.path.abspath(including))
        tried = []
        if "/" in name or name.endswith(".toml"):
            p = os.path.join(here, name)
            if os.path.isfile(p):
                return p
            tried.append(p)
        else:
            p = os.path.join(here, name + ".toml")
            if os.path.isfile(p):
                return p
            tried.append(p)
            if name in self.boards:
                return self.boards[name]
            tried.append("the board files (%s)" % ", ".join(sorted(self.boards)) if self.boards
                         else "no board files found")
        hint = "looked for " + "; ".join(tried)
        stem = os.path.basename(name)[:-5] if name.endswith(".toml") else name
        close = _suggest(stem, list(self.boards)) if self.boards else ""
        if close.startswith("did you"):
            hint += "; " + close
        raise ctx.error(("board", "include"), name, "no such board or file", hint=hint)

    def load(self, path: str, stack: Tuple[str, ...] = ()) -> Tuple[Dict[str, Any], List[str]]:
        """The merged document of path and its includes, and every file read (includes first)."""
        doc, ctx = self.read(path)
        merged: Dict[str, Any] = {}
        files: List[str] = []
        chain = stack + (os.path.realpath(path),)
        for name in doc.get("board", {}).get("include", ()):
            inc = self.resolve(name, path, ctx)
            if os.path.realpath(inc) in chain:
                loop = [os.path.basename(p) for p in chain[chain.index(os.path.realpath(inc)):]]
                raise ctx.error(("board", "include"), name, "include cycle: %s -> %s"
                                % (" -> ".join(loop), os.path.basename(inc)))
            sub, sub_files = self.load(inc, chain)
            sub.pop("board", None)
            merged = merge(merged, sub)
            files += [f for f in sub_files if f not in files]
        merged = merge(merged, doc)
        files.append(path)
        return merged, files


def load_file(path: str, boards: Optional[Dict[str, str]] = None, check_owner: bool = True
              ) -> Tuple[Config, Tuple[str, ...], Tuple[str, ...]]:
    """Load, validate and merge one board file with its includes: (config, files, notes)."""
    loader = _Loader(available_boards() if boards is None else boards, check_owner)
    merged, files = loader.load(path)
    name = merged.get("board", {}).get("name") or os.path.basename(path).rsplit(".toml", 1)[0]
    config = build_config(merged, path, tuple(files), name)
    _cross_check(config, loader.read(path)[1], tuple(files))
    return config, tuple(files), tuple(loader.notes)


def board_of(path: str, check_owner: bool = True) -> Board:
    """The [board] table of one file alone (no includes), validated."""
    loader = _Loader({}, check_owner)
    doc, _ = loader.read(path)
    b = dict(doc.get("board", {}))
    b["match"] = tuple(BoardMatch(**m) for m in b.get("match", ()))
    b.setdefault("name", os.path.basename(path).rsplit(".toml", 1)[0])
    return Board(**b)


def detect_board(boards: Dict[str, str], proc_root: str = "/proc", sys_root: str = "/sys",
                 check_owner: bool = True) -> Tuple[str, str]:
    """(name, why) of the board whose [board.match] fits this machine best, else generic."""
    ident = read_identity(proc_root, sys_root)
    found: List[Tuple[int, str, str]] = []
    for name, path in sorted(boards.items()):
        hit = board_match(board_of(path, check_owner), ident)
        if hit:
            found.append((hit[0], name, hit[1]))
    if not found:
        return GENERIC, "board %s: no board file matched this machine (%s), so the generic default" % (
            _show(GENERIC), ident.describe())
    found.sort(key=lambda f: (-f[0], f[1]))
    score, name, reason = found[0]
    why = "board %s detected: %s" % (_show(name), reason)
    others = [f[1] for f in found[1:]]
    if others:
        why += " (also matched: %s; picked the most specific, then by name)" % ", ".join(others)
    return name, why


def load_config(path: Optional[str] = None, board: Optional[str] = None, proc_root: str = "/proc",
                sys_root: str = "/sys", boards_dirs: Optional[Sequence[str]] = None,
                check_owner: bool = True) -> LoadedConfig:
    """The config to run with: --config PATH, else --board NAME, else the board file that
    matches this machine (device tree, then DMI), else generic. Raises ConfigError."""
    if path is not None and board is not None:
        raise ConfigError("<command line>", expected="give --config PATH or --board NAME, not both")
    boards = available_boards(boards_dirs)
    if path is not None:
        config, files, notes = load_file(path, boards, check_owner)
        why = "config %s given by --config (board %s)" % (path, _show(config.board))
        return LoadedConfig(config, why, files, notes)
    if board is not None:
        if board not in boards:
            hint = _suggest(board, list(boards)) if boards else "no board files were found"
            if not hint.startswith("did you"):
                hint = "known boards: " + ", ".join(sorted(boards))
            raise ConfigError("<command line>", "--board", board, "no such board", hint=hint)
        config, files, notes = load_file(boards[board], boards, check_owner)
        return LoadedConfig(config, "board %s given by --board (%s)" % (_show(board), boards[board]), files, notes)
    name, why = detect_board(boards, proc_root, sys_root, check_owner)
    if name not in boards:
        return LoadedConfig(Config(), why + "; no generic board file was found, so built-in defaults", (), ())
    config, files, notes = load_file(boards[name], boards, check_owner)
    return LoadedConfig(config, why + " (%s)" % boards[name], files, notes)
