"""The daemon's optional parts, and the one small interface the loop drives them through.

A part is whatever a board turns on beside the ladder: the adj keeper (adj.py), leak watch
(leakwatch.py), the kernel OOM watcher (oomwatch.py), hotplug (hotplug.py), metrics
(metrics.py). The loop knows them only as Parts: what each waits on (fileno), when it is
next due (next_due), what it does when its descriptor is readable, after every wake, with
each full process table, with each full tick, on a reload and at the end. Every call goes
through one guard in the loop (guarded): a part that fails is logged under its name and the
guardian goes on without it for that call.
"""
from __future__ import annotations

from guardian.config import Config
from guardian.core.match import Role
from guardian.core.policy import Plan, PolicyState
from guardian.core.reading import Reading
from guardian.kernel.procs import ProcInfo
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional, Protocol, Tuple

    # for the type checker only: a Protocol would import typing at run time (the parts
    # import Tell under TYPE_CHECKING too)
    class Tell(Protocol):
        """Where a part's events go: the daemon's Telemetry (a log-only stand-in in tests)."""

        def event(self, kind: str, message: str, **fields: Any) -> None: ...

NEVER = float("inf")


@record
class Tick:
    """What one full tick hands to every part: the reading it judged, the plan it made, the
    state after its act, the roles of the table (if one was read), and how to read and
    classify a table when a part needs one."""

    now: float
    reading: Reading
    plan: Plan
    state: PolicyState  # after the tick's act
    roles: Mapping[int, Role]
    kernel_oom_kills: Optional[int]  # the kernel OOM killer's count as last read
    wait_mode: str
    read_table: Callable[[], Tuple[ProcInfo, ...]]
    classify: Callable[[Tuple[ProcInfo, ...]], Mapping[int, Role]]


class Part:
    """The loop's view of an optional part. Every method has a do-nothing default."""

    name = "part"  # in log lines: "<name>: <error>"

    def fileno(self) -> Optional[int]:
        """A descriptor the loop waits on with the rest; on_readable() when it is readable."""
        return None

    def on_readable(self) -> None:
        pass

    def next_due(self, now: float) -> float:
        """Seconds from now by which the loop must wake for this part (NEVER: no need)."""
        return NEVER

    def needs_tick(self, now: float) -> bool:
        """Whether a full tick is due for this part now (a quiet glance at MemAvailable
        would skip it)."""
        return False

    def on_wake(self, now: float) -> None:
        """After every wake of the loop, full tick or not: cheap work of the part's own."""

    def on_table(self, procs: Tuple[ProcInfo, ...]) -> None:
        """A full process table was read."""

    def on_tick(self, tick: Tick) -> None:
        """A full tick was judged and acted on."""

    def reload(self, config: Config) -> None:
        """SIGHUP brought a new, valid config."""

    def close(self) -> None:
        pass
