"""ConfigError, the one exception of board config loading, and how its messages spell things.

A config problem is told in one line that names the file, the line of the key when it can be
found (guardian.board.toml.locate), the key path, the value as TOML would spell it and what
was expected, with a hint (often the nearest valid key). Reading, parsing, validating and
loading all raise it, so it sits below them all.
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence, Tuple

    KeyPath = Tuple[Any, ...]  # a key path: ("critical", 1, "match", "comm")


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
            parts.append(key + (" = " + show_value(value) if has_value and value is not None else ""))
        if expected:
            parts.append(expected)
        message = ": ".join(parts)
        if hint:
            message += "; " + hint
        super().__init__(message)


def show_value(value: Any) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    elif isinstance(value, dict):
        text = "{" + ", ".join("%s = %s" % (k, show_value(v)) for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show_value(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def show_number(x: Optional[float]) -> str:
    """A number without a needless ".0"."""
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def render_path(path: KeyPath) -> str:
    """A key path as TOML spells it: critical[1].match.comm."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + (part if re.match(r"^[A-Za-z0-9_-]+$", part) else '"%s"' % part)
    return out


def suggest(key: str, valid: Sequence[str]) -> str:
    """The valid key nearest a misspelt one, else the list of valid keys."""
    import difflib

    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if close:
        return "did you mean '%s'?" % close[0]
    return "valid keys: " + ", ".join(sorted(valid))
