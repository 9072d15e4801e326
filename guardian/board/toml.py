"""A board config's TOML text: parsed into a document, and keys located back to their line.

Parsing is tomllib's (tomli before Python 3.11), with its syntax errors turned into a
ConfigError at the line and column, and documents nested deeper than any board config
refused before the checks that walk them recursively. locate() finds the line a key path is
written on, so that a message about a value names file:line.
"""
from __future__ import annotations

import re

from guardian.board.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

    from guardian.board.errors import KeyPath

try:  # Python >= 3.11
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.9/3.10
    import tomli as _toml  # type: ignore[no-redef]


def parse_toml(path: str, text: str) -> Dict[str, Any]:
    """The document of the text read from path."""
    try:
        doc = _toml.loads(text)
        _check_depth(doc, path)
        return doc
    except RecursionError:
        raise ConfigError(path, expected="refused: arrays or tables nested too deep to be a board config") from None
    except _toml.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)", msg)
        line = col = None
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = msg[:m.start()] + msg[m.end():]
        raise ConfigError(path, expected="TOML syntax error: " + msg.strip(), line=line, column=col) from None


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


def locate(text: str, target: KeyPath) -> Optional[int]:
    """Best-effort 1-based line of the key path in the TOML text (the line of the longest
    prefix of the path that is spelled out: an inline table's key, a [[table]] header)."""
    arrays: Dict[KeyPath, int] = {}
    header: KeyPath = ()
    best_len, best_line = 0, None
    depth = 0

    def resolve(keys: List[str]) -> KeyPath:
        out: KeyPath = ()
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
