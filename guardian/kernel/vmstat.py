"""/proc/vmstat counters."""
from __future__ import annotations

import os

from guardian.kernel import ParseError, read_optional_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional


def parse_vmstat(text: str, path: str = "/proc/vmstat") -> Dict[str, int]:
    """All counters by name. Garbled lines raise ParseError naming the line."""
    counters = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(path, "line %d" % number, "expected 'name value', got %r" % line)
        try:
            counters[parts[0]] = int(parts[1])
        except ValueError:
            raise ParseError(path, "line %d (%s)" % (number, parts[0]),
                             "expected an integer, got %r" % parts[1]) from None
    return counters


def read_vmstat(proc_root: str = "/proc") -> Optional[Dict[str, int]]:
    path = os.path.join(proc_root, "vmstat")
    text = read_optional_text(path, bufsize=16384)
    return None if text is None else parse_vmstat(text, path)
