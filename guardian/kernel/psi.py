"""/proc/pressure/<resource> and cgroup v2 <resource>.pressure files."""
from __future__ import annotations

import os

from guardian.kernel import NOT_SUPPORTED, ParseError, read_text
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


@record
class PsiLine:
    avg10: float
    avg60: float
    avg300: float
    total: int  # microseconds of stall since boot


@record
class Psi:
    some: PsiLine
    full: Optional[PsiLine]  # cpu pressure on old kernels has no "full" line


def _parse_line(kind: str, tokens, path: str) -> PsiLine:
    values = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            raise ParseError(path, kind, "expected key=value, got %r" % token)
        values[key] = value
    try:
        return PsiLine(
            avg10=float(values["avg10"]),
            avg60=float(values["avg60"]),
            avg300=float(values["avg300"]),
            total=int(values["total"]),
        )
    except KeyError as e:
        raise ParseError(path, "%s %s" % (kind, e.args[0]), "missing") from None
    except ValueError:
        raise ParseError(path, kind, "expected avg10=F avg60=F avg300=F total=N, got %r" % " ".join(tokens)) from None


def parse_psi(text: str, path: str = "/proc/pressure/memory") -> Psi:
    """Raises ParseError when the "some" line is missing or a line is garbled. Lines of
    unknown kinds are ignored (room for future kernels)."""
    lines = {}
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        kind = tokens[0]
        if kind in ("some", "full"):
            lines[kind] = _parse_line(kind, tokens[1:], path)
    if "some" not in lines:
        raise ParseError(path, "some", "missing (file empty or truncated?)")
    return Psi(some=lines["some"], full=lines.get("full"))


def read_psi_file(path: str) -> Optional[Psi]:
    """A pressure file anywhere (procfs or cgroup v2), or None when it is absent or PSI is
    disabled (EOPNOTSUPP)."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in NOT_SUPPORTED:
            return None
        raise
    return parse_psi(text, path)


def read_psi(proc_root: str = "/proc", resource: str = "memory") -> Optional[Psi]:
    """None when PSI is absent (no file) or disabled (reading fails with EOPNOTSUPP)."""
    return read_psi_file(os.path.join(proc_root, "pressure", resource))
