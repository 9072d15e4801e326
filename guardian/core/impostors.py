"""Impostors: processes named like a board entry whose identity does not fit it (guardian.core.match
tells why). For `check`, `audit` and `status`, never for the loop: the daemon does not hold this.
"""
from __future__ import annotations

from guardian.config import Config, Critical, LowPriority
from guardian.core.match import _named, classify, identity_problem, read_exe
from guardian.kernel.procs import ProcInfo
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Union


@record
class Impostor:
    proc: ProcInfo
    kind: str  # the role its name asks for
    entry: Union[Critical, LowPriority]
    why: str
    exe: Optional[str]


def impostors(procs: Iterable[ProcInfo], config: Config, proc_root: str = "/proc") -> List[Impostor]:
    """Processes named like a board entry whose identity does not fit it (and that hold no
    role): for `check` and `status`, never for the loop."""
    procs = tuple(procs)
    roles = classify(procs, config, proc_root)
    out = []
    for proc in procs:
        if proc.pid in roles:
            continue
        for kind, entries in (("critical", config.critical), ("low_priority", config.low_priority)):
            entry = next((e for e in entries if _named(e.match, proc, proc_root)), None)
            if entry is not None:
                why = identity_problem(entry.match, proc, config.victims.role_max_uid, proc_root) or "?"
                out.append(Impostor(proc, kind, entry, why, read_exe(proc.pid, proc_root)))
                break
    return out
