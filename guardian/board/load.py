"""Board configs: TOML files loaded, validated and merged into a guardian.config.Config.

Which file: --config PATH, else --board NAME, else the board file whose [board.match] fits
this machine (guardian.board.identity), else generic (guardian.board.boards says where the
board files are). Each file is read only if root alone can change it (guardian.board.trust),
parsed (guardian.board.toml) and checked on its own (guardian.board.schema); this module
follows its includes, merges them, builds the Config and checks it across keys.

Includes: ``[board] include = ["generic"]`` (board names, or paths relative to the file).
Included files are merged first, in order, then the including file on top:
- tables merge key by key, recursively (a later ``thresholds.kill.percent`` overrides only
  that value); scalars and plain arrays (``stop``, ``ignore_names``) are replaced whole;
- ``[[critical]]`` and ``[[low_priority]]`` entries are matched by ``name``: an entry whose
  name is new is appended, one with a known name replaces the earlier entry whole (in its
  place), and ``{name = "x", remove = true}`` deletes the inherited entry;
- ``[board]`` is never inherited: name, description, ram_mib and match are the top file's.
"""
from __future__ import annotations

import os

from guardian.board.boards import GENERIC, available_boards
from guardian.board.errors import ConfigError, show_number, show_value, suggest
from guardian.board.identity import board_match, read_identity
from guardian.board.schema import ENTRY_TABLES, SECTIONS, FileContext, check_document, field_types, optional_of
from guardian.board.toml import parse_toml
from guardian.board.trust import read_trusted
from guardian.config import Board, BoardMatch, Config, Critical, LeakWatch, Line, LowPriority, Match
from guardian.record import is_record, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple


@record
class LoadedConfig:
    """The config to run with, and where it came from."""

    config: Config
    why: str  # which board, and why it was picked
    files: Tuple[str, ...]  # every file read, includes first
    notes: Tuple[str, ...] = ()  # things worth a log line that are not errors


# --------------------------------------------------------------------------- merging

def merge(base: Dict[str, Any], top: Dict[str, Any]) -> Dict[str, Any]:
    """Deep-merge two normalized documents (see the module docstring for the rules)."""
    out = dict(base)
    for key, value in top.items():
        if key in ENTRY_TABLES:
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
    hints = field_types(cls)
    changes = {}
    if cls is Line and "min_mib" in raw and "floor_max_percent" not in raw:
        changes["floor_max_percent"] = 100.0  # a floor the board wrote is meant as written
    for key, value in raw.items():
        tp = optional_of(hints[key]) or hints[key]
        if value is not None and is_record(tp):
            value = _build(tp, value, getattr(default, key) or tp())
        changes[key] = value
    return replace(default, **changes)


def _build_entry(cls: type, raw: Dict[str, Any]) -> Any:
    kwargs = dict(raw)
    kwargs["match"] = Match(**raw["match"])
    if "leak" in raw:
        kwargs["leak"] = _build(LeakWatch, raw["leak"], LeakWatch())
    return cls(**kwargs)


def build_config(doc: Dict[str, Any], source: str, files: Tuple[str, ...], board_name: str) -> Config:
    kwargs: Dict[str, Any] = {}
    defaults = Config()
    for key, cls in SECTIONS.items():
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


def _cross_check(config: Config, ctx: FileContext, files: Tuple[str, ...]) -> None:
    """Checks across keys, once the includes are merged."""
    after = " (after merging %s)" % ", ".join(os.path.basename(f) for f in files) if len(files) > 1 else ""
    t = config.thresholds
    for attr in ("percent", "min_mib"):
        r, te, k = (getattr(getattr(t, n), attr) for n in ("reclaim", "terminate", "kill"))
        if not r >= te >= k:
            raise ctx.error(("thresholds",), None, "the lines must descend, reclaim >= terminate >= kill, "
                            "but %s are %s, %s, %s%s" % (attr, show_number(r), show_number(te), show_number(k), after),
                            has_value=False)
    if t.kill.percent == 0 and t.kill.min_mib == 0:
        raise ctx.error(("thresholds", "kill"), None, "a kill line of 0 %% and 0 MiB never fires: the kernel's OOM "
                        "killer would always come first%s" % after, has_value=False)
    if t.swap_terminate_percent < t.swap_kill_percent:
        raise ctx.error(("thresholds", "swap_kill_percent"), t.swap_kill_percent,
                        "expected <= swap_terminate_percent (%s)%s" % (show_number(t.swap_terminate_percent), after))
    if t.commit_terminate_percent > t.commit_kill_percent:
        raise ctx.error(("thresholds", "commit_kill_percent"), t.commit_kill_percent,
                        "expected >= commit_terminate_percent (%s)%s"
                        % (show_number(t.commit_terminate_percent), after))
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


# --------------------------------------------------------------------------- loading

class _Loader:
    """Reads each file once, checked on its own, and follows its includes: names of board
    files, or paths relative to the including file."""

    def __init__(self, boards: Dict[str, str], check_owner: bool):
        self.boards = boards
        self.check_owner = check_owner
        self.cache: Dict[str, Tuple[Dict[str, Any], FileContext]] = {}
        self.notes: List[str] = []

    def read(self, path: str) -> Tuple[Dict[str, Any], FileContext]:
        real = os.path.realpath(path)
        if real not in self.cache:
            text = read_trusted(path, self.check_owner)
            doc = parse_toml(path, text)
            ctx = FileContext(path, text)
            self.cache[real] = (check_document(doc, ctx), ctx)
            self.notes.extend(ctx.notes)
        return self.cache[real]

    def resolve(self, name: str, including: str, ctx: FileContext) -> str:
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
        close = suggest(stem, list(self.boards)) if self.boards else ""
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
            show_value(GENERIC), ident.describe())
    found.sort(key=lambda f: (-f[0], f[1]))
    score, name, reason = found[0]
    why = "board %s detected: %s" % (show_value(name), reason)
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
        why = "config %s given by --config (board %s)" % (path, show_value(config.board))
        return LoadedConfig(config, why, files, notes)
    if board is not None:
        if board not in boards:
            hint = suggest(board, list(boards)) if boards else "no board files were found"
            if not hint.startswith("did you"):
                hint = "known boards: " + ", ".join(sorted(boards))
            raise ConfigError("<command line>", "--board", board, "no such board", hint=hint)
        config, files, notes = load_file(boards[board], boards, check_owner)
        return LoadedConfig(config, "board %s given by --board (%s)" % (show_value(board), boards[board]), files, notes)
    name, why = detect_board(boards, proc_root, sys_root, check_owner)
    if name not in boards:
        return LoadedConfig(Config(), why + "; no generic board file was found, so built-in defaults", (), ())
    config, files, notes = load_file(boards[name], boards, check_owner)
    return LoadedConfig(config, why + " (%s)" % boards[name], files, notes)
