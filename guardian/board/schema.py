"""A parsed board config checked against the records of guardian/config.py.

A board file maps 1:1 onto those records (tables are records, arrays become tuples),
and the check is strict because a typo must not silently disable protection: unknown keys are
errors (with the nearest valid key), values are type- and range-checked, regexes are compiled
and refused where they could backtrack catastrophically, and every message names the file,
the line when it can be found, the key path, the value and what was expected. Each file is
checked on its own, before includes are merged (guardian.board.load); the result is the
normalized document: the same tables, values converted and defaults left out.
"""
from __future__ import annotations

import math
import re
import typing

from guardian.board import sysctl as _sysctl
from guardian.board.errors import ConfigError, render_path, show_number, show_value, suggest
from guardian.board.toml import locate
from guardian.config import Board, BoardMatch, Config, Critical, LeakWatch, LowPriority, Match
from guardian.record import fields, is_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    from guardian.board.errors import KeyPath

_BOARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNIT_SUFFIXES = (".service", ".scope", ".slice", ".socket", ".mount", ".timer", ".target", ".swap", ".path")


class FileContext:
    """One file being checked: its name and text (so that an error names the line of the key),
    and the notes gathered on it (worth a log line, not errors)."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.notes: List[str] = []

    def error(self, path: KeyPath, value: Any, expected: str, hint: str = "", has_value: bool = True) -> ConfigError:
        return ConfigError(self.file, render_path(path), value, expected, line=locate(self.text, path),
                           hint=hint, has_value=has_value)

    def unknown(self, path: KeyPath, valid: Sequence[str], extra: str = "") -> ConfigError:
        hint = extra or suggest(str(path[-1]), valid)
        return ConfigError(self.file, render_path(path), None, "unknown key", line=locate(self.text, path),
                           hint=hint, has_value=False)



_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


# config.py imports typing's names for the type checker only, so its annotations are strings
# naming them: resolved in these (then in the class's module). Chosen names, not all of
# typing's, which has a Match of its own.
_TYPING_NAMES = {name: getattr(typing, name) for name in (
    "Any", "Callable", "Dict", "FrozenSet", "List", "Mapping", "Optional", "Sequence", "Set", "Tuple", "Union")}


def field_types(cls: type) -> Dict[str, Any]:
    """Field name -> type of a record, resolved."""
    return typing.get_type_hints(cls, localns=_TYPING_NAMES)


def optional_of(tp: Any) -> Optional[Any]:
    """X of Optional[X], else None."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _is_str_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple and typing.get_args(tp) == (str, Ellipsis)


def _check_scalar(tp: Any, value: Any, path: KeyPath, ctx: FileContext) -> Any:
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
                return "expected %s >= %s" % (what, show_number(lo))
            if lo is None:
                return "expected %s <= %s" % (what, show_number(hi))
            return "expected %s from %s to %s" % (what, show_number(lo), show_number(hi))
        return None

    return check


def _positive(v: Any) -> Optional[str]:
    return None if v is None or v > 0 else "expected a number > 0"


def _choice(*options: Any):
    def check(v: Any) -> Optional[str]:
        if v in options:
            return None
        return "expected one of " + ", ".join(show_value(o) for o in options)

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
    hint = field_types(cls).get(name)
    if (optional_of(hint) or hint) in (int, float):
        return _range(0, None)  # every other number in the schema is a size, time or count
    return None


def _check_table(cls: type, raw: Any, path: KeyPath, ctx: FileContext, skip: Sequence[str] = (),
                 also_valid: Sequence[str] = ()) -> Dict[str, Any]:
    """Validate a (partial) table against a record; returns normalized values. Fields in
    skip are the caller's to check (they are not in raw); also_valid only feeds suggestions."""
    if not isinstance(raw, dict):
        raise ctx.error(path, raw, "expected a table")
    hints = field_types(cls)
    names = [name for name in fields(cls) if name not in skip]
    out: Dict[str, Any] = {}
    for key, value in raw.items():
        kpath = path + (key,)
        if key not in names:
            raise ctx.unknown(kpath, names + list(skip) + list(also_valid))
        tp = hints[key]
        inner = optional_of(tp)
        if inner is not None:
            if value is False and inner is not bool:
                out[key] = None  # `false` switches an optional setting off
                continue
            if value is True and inner is not bool:
                raise ctx.error(kpath, value, "expected %s, or false to switch it off"
                                % _TYPE_WORDS.get(inner, "a value"))
            tp = inner
        if is_record(tp):
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


def _compile(pattern: str, path: KeyPath, ctx: FileContext) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ctx.error(path, pattern, "not a valid regular expression: %s" % e) from None
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
    sre_parse = getattr(re, "_parser", None) or re.sre_parse  # type: ignore[attr-defined]  # 3.11+ / older
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


def _check_match(raw: Any, path: KeyPath, ctx: FileContext) -> Dict[str, Any]:
    m = _check_table(Match, raw, path, ctx)
    naming = [name for name in fields(Match) if name not in ("user", "uid")]
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
                         % (ctx.file, render_path(path + ("comm",)), show_value(m["comm"]), show_value(m["comm"][:15])))
    unit = m.get("unit")
    if unit is not None:
        if "/" in unit:
            raise ctx.error(path + ("unit",), unit, "expected a unit name such as \"mosquitto.service\", not a path")
        if not unit.endswith(_UNIT_SUFFIXES):
            m["unit"] = unit + ".service"
    return m


# The arrays of tables, merged entry by entry (by name) across includes.
ENTRY_TABLES = {"critical": Critical, "low_priority": LowPriority}


def _check_entries(section: str, raw: Any, ctx: FileContext) -> List[Dict[str, Any]]:
    cls = ENTRY_TABLES[section]
    if isinstance(raw, dict):
        raise ctx.error((section,), None, "expected an array of tables: write [[%s]], not [%s]" % (section, section),
                        has_value=False)
    if not isinstance(raw, list):
        raise ctx.error((section,), raw, "expected an array of tables ([[%s]])" % section)
    entries: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for i, item in enumerate(raw):
        path: KeyPath = (section, i)
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
                raise ctx.unknown(path + ("leak",), list(fields(cls)) + ["remove"],
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


def _check_board(raw: Any, ctx: FileContext) -> Dict[str, Any]:
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
            path: KeyPath = ("board", "match") + ((i,) if isinstance(m, list) else ())
            bm = _check_table(BoardMatch, item, path, ctx)
            if not any(bm.values()):
                raise ctx.error(path, item, "expected at least one of: " +
                                ", ".join(fields(BoardMatch)))
            for key, value in bm.items():
                if value is not None and key != "device_tree_compatible":
                    _compile(value, path + (key,), ctx)
            matches.append(bm)
        out["match"] = matches
    return out


def _check_sysctl(raw: Any, ctx: FileContext) -> Dict[str, str]:
    if not isinstance(raw, dict):
        raise ctx.error(("sysctl",), raw, "expected a table of \"vm.key\" = value")
    out: Dict[str, str] = {}
    flat: List[Tuple[KeyPath, str, Any]] = []

    def walk(prefix: KeyPath, table: Dict[str, Any]) -> None:  # vm.swappiness = 1 unquoted is a nested table
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
            raise ConfigError(ctx.file, "sysctl." + dotted, None,
                              "unknown kernel memory setting", line=locate(ctx.text, path),
                              hint=suggest(key, _sysctl.known_keys()), has_value=False)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ctx.error(path, value, "expected an integer or a string")
        text = str(value)
        problem = _sysctl.check_setting(key, text)
        if problem:
            raise ctx.error(path, value, problem + " (%s)" % _sysctl.EXPLAIN[key])
        out[key] = text
    return out


def _sections() -> Dict[str, type]:
    """Every table of Config that is a plain record ([thresholds], [wait], [actions],
    [victims], and whatever is added to config.py later): one TOML table each."""
    hints = field_types(Config)
    return {name: hints[name] for name in fields(Config)
            if is_record(hints[name]) and name != "board_info"}


SECTIONS = _sections()
_TOP_KEYS = tuple(["board"] + list(SECTIONS) + ["critical", "low_priority", "sysctl"])


def check_document(doc: Dict[str, Any], ctx: FileContext) -> Dict[str, Any]:
    """Validate one parsed file on its own; returns its normalized content."""
    out: Dict[str, Any] = {}
    for key, value in doc.items():
        if key in SECTIONS:
            out[key] = _check_table(SECTIONS[key], value, (key,), ctx)
        elif key in ENTRY_TABLES:
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
