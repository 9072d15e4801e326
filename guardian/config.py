"""The settings the daemon runs with, and their defaults.

These records are the one place defaults live; the README's table mirrors them. Loading
them from TOML (boards, includes, validation) lives in guardian/board/.
"""
from __future__ import annotations

from guardian.record import field, fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

MIB = 1024 * 1024


@record
class Line:
    """A MemAvailable line: percent of the total, with an absolute floor. The larger wins.

    The floor itself asks for at most floor_max_percent of the total: the default floors fit
    a 256 MiB board and would stop services at rest on a 128 MiB one. A board that writes its
    own min_mib gets it as written (the loader sets floor_max_percent to 100 then).
    """

    percent: float
    min_mib: float
    floor_max_percent: float = 100.0

    def bytes_for(self, total: int) -> int:
        floor = min(self.min_mib * MIB, total * self.floor_max_percent / 100.0)
        return int(max(total * self.percent / 100.0, floor))


@record
class Thresholds:
    # MemAvailable lines, highest first.
    # The floors shrink on boards under 160 MiB: on 80 MiB MemTotal they are 16/12/10 MiB.
    reclaim: Line = Line(15.0, 32.0, floor_max_percent=20.0)
    terminate: Line = Line(10.0, 24.0, floor_max_percent=15.0)
    kill: Line = Line(5.0, 16.0, floor_max_percent=12.5)
    # A rung is left only once available is this much (percent of total) above its line.
    hysteresis_percent: float = 3.0
    # The kill line also covers what arrives while the guardian reacts at the fill rate seen.
    reaction_time_s: float = 0.25
    # Swap free (percent of SwapTotal), used only where swap exists.
    swap_terminate_percent: float = 10.0
    swap_kill_percent: float = 5.0
    # PSI avg10 (percent of wall time stalled). None disables that signal.
    psi_some_reclaim: Optional[float] = 10.0
    psi_full_terminate: Optional[float] = 40.0
    # Commit charge (Committed_AS / CommitLimit, percent), used only when vm.overcommit_memory=2.
    commit_terminate_percent: float = 95.0
    commit_kill_percent: float = 98.0


@record
class Wait:
    # PSI trigger: a stall of psi_stall_us within psi_window_us wakes the guardian.
    psi_stall_us: int = 100000
    psi_window_us: int = 500000  # widened to a 2 s multiple where the kernel refuses it
    use_psi: bool = True
    # Adaptive timeout between events: headroom to the kill line / fill rate, clamped.
    min_timeout_s: float = 0.1
    # With PSI triggers armed; also how often a full tick comes at rest. PSI's avg10 is a 10 s
    # average: read every 10 s it still shows every rise, and the trigger wakes for stalls.
    max_timeout_s: float = 10.0
    max_timeout_poll_s: float = 1.0  # without them
    # The rate assumed for a burst before any has been seen on this device.
    assumed_fill_rate_mib_s: float = 100.0
    # Sample the process table this often at ease (growth history, adj safety net), and every
    # tick near the reclaim line; each sample costs ~2 ms per 100 processes on a small core.
    proc_sample_interval_s: float = 60.0


@record
class Actions:
    grace_s: float = 5.0  # after a graceful stop, before a kill
    stop_command_timeout_s: float = 10.0
    kill_process_group: bool = False
    mrelease: bool = True
    reclaim_interval_s: float = 30.0  # at most one reclaim pass this often
    drop_caches_level: int = 1  # 1 page cache, 3 also slab; 0 disables
    compact: bool = True
    # Compact when free memory in blocks of order >= 4 is below this percent of free memory.
    compact_high_order_percent: float = 10.0
    # Wait this long after a victim's exit before judging again. Its memory is back at its exit
    # (process_mrelease, exit seen on the pidfd): a longer wait is time a respawn grows in.
    settle_s: float = 0.05
    dry_run: bool = False


@record
class Victims:
    # A process that grew by at least culprit_share of the scope's total growth over the
    # growth window, and by at least culprit_min_mib (or culprit_min_percent of the scope's
    # total where that is less: a runaway on an 80 MiB board crosses the lines after a few
    # MiB), is the culprit and goes first.
    culprit_share: float = 0.5
    culprit_min_mib: float = 8.0
    culprit_min_percent: float = 5.0
    growth_window_s: float = 30.0
    # Processes of these names are never candidates (besides PID 1, kernel threads, ourselves,
    # oom_score_adj -1000 and [[critical]] entries).
    ignore_names: Tuple[str, ...] = ()
    # Ending a process that holds less than this frees nothing worth a service.
    min_rss_mib: float = 1.0
    # A process takes a board role (critical, low priority, their adj, a stop command) only if
    # its owner fits: the entry's user/uid, or else a uid up to this (root and system accounts;
    # Debian's SYS_UID_MAX). Names are chosen by whoever starts a process; owners are not.
    role_max_uid: int = 999


@record
class Match:
    """How a board entry recognises its process. Every field given must match."""

    comm: Optional[str] = None
    exe: Optional[str] = None
    cmdline: Optional[str] = None  # regex, searched in the NUL-joined-by-space cmdline
    unit: Optional[str] = None  # systemd unit name, matched against the cgroup path
    cgroup: Optional[str] = None  # cgroup path prefix
    # The owner, which no unprivileged user can forge: a user name or a uid. Without either,
    # a process qualifies only when its uid is at most victims.role_max_uid (root and system
    # accounts).
    user: Optional[str] = None
    uid: Optional[int] = None


@record
class LeakWatch:
    enabled: bool = True
    interval_s: float = 10.0
    window_s: float = 1800.0
    horizon_s: float = 1800.0
    max_rss_mib: Optional[float] = None
    on_leak: str = "notify"  # "restart", "notify" or "command"
    command: Tuple[str, ...] = ()  # argv for restart/command
    cooldown_s: float = 3600.0


@record
class Leaks:
    """The [leaks] table: what leak watching shares across entries (guardian/core/parts/leakwatch.py)."""

    # Trend state survives a guardian restart in <state_dir>/leaks.json; "" keeps it in RAM only.
    state_dir: str = "/var/lib/guardian"
    save_interval_s: float = 60.0  # at most one write this often (flash wear)...
    save_idle_interval_s: float = 600.0  # ...and this often while nothing grows, restarts or fires
    # Also watch (notify only) every other process whose RSS is above this; None: off.
    watch_above_mib: Optional[float] = None
    watch_interval_s: float = 30.0
    watch_max: int = 8  # the largest this many, to bound memory and work


@record
class Critical:
    name: str
    match: Match
    oom_score_adj: int = -900
    leak: LeakWatch = LeakWatch()
    # Not running is normal (alternatives in a shared file): reported as info, not a warning.
    optional: bool = False


@record
class LowPriority:
    name: str
    match: Match
    order: int = 0
    stop: Tuple[str, ...] = ()  # argv; empty means SIGTERM
    # Given to its processes so that the kernel's OOM killer, should it ever fire, also
    # picks them first. None leaves their oom_score_adj alone.
    oom_score_adj: Optional[int] = None
    optional: bool = False


@record
class BoardMatch:
    """One way to recognise a board. Every field given must match; a board matches when any
    of its BoardMatch entries does. Regexes are searched (re.search) in the value read."""

    device_tree_model: Optional[str] = None  # regex on /proc/device-tree/model
    device_tree_compatible: Optional[str] = None  # exact entry of /proc/device-tree/compatible
    dmi_product_name: Optional[str] = None  # regex on /sys/class/dmi/id/product_name
    dmi_sys_vendor: Optional[str] = None  # regex on /sys/class/dmi/id/sys_vendor
    dmi_board_name: Optional[str] = None  # regex on /sys/class/dmi/id/board_name


@record
class Board:
    """The [board] table of the top file (never inherited through include)."""

    name: str = "generic"
    description: str = ""
    ram_mib: Optional[int] = None
    match: Tuple[BoardMatch, ...] = ()
    include: Tuple[str, ...] = ()


@record
class Config:
    thresholds: Thresholds = Thresholds()
    wait: Wait = Wait()
    actions: Actions = Actions()
    victims: Victims = Victims()
    critical: Tuple[Critical, ...] = ()
    leaks: Leaks = Leaks()
    low_priority: Tuple[LowPriority, ...] = ()
    sysctl: Dict[str, str] = field(default_factory=dict)
    board: str = "generic"
    source: str = "<defaults>"  # the file the config came from, for messages
    board_info: Board = Board()
    files: Tuple[str, ...] = ()  # every file read, includes first


# ------------------------------------------------------------------------------------------
# Plain data: a Config as builtins only (dicts, tuples, str, numbers, None), which marshal
# carries from the loader's short-lived child to the daemon without importing the loader.

_TAG = "__class__"  # an object of one of the classes below: its name and its fields
_DICT = "__dict__"  # a dict of the config's own (sysctl), wrapped so no key is taken for a tag
_CLASSES = {cls.__name__: cls for cls in (Line, Thresholds, Wait, Actions, Victims, Match, LeakWatch, Leaks,
                                           Critical, LowPriority, BoardMatch, Board, Config)}


def field_names(cls: type) -> Tuple[str, ...]:
    """The one place that enumerates a config class's fields."""
    return fields(cls)


def to_plain(value: Any) -> Any:
    """`value` (a Config or any part of one) as plain data for marshal."""
    cls = type(value)
    if _CLASSES.get(cls.__name__) is cls:
        out = {name: to_plain(getattr(value, name)) for name in field_names(cls)}
        out[_TAG] = cls.__name__
        return out
    if isinstance(value, dict):
        return {_DICT: {k: to_plain(v) for k, v in value.items()}}
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError("%s is not part of a config" % cls.__name__)


def from_plain(plain: Any) -> Any:
    """The object to_plain made `plain` from; ValueError on anything it could not have made."""
    if isinstance(plain, dict):
        if set(plain) == {_DICT} and isinstance(plain[_DICT], dict):
            return {k: from_plain(v) for k, v in plain[_DICT].items()}
        cls = _CLASSES.get(plain.get(_TAG))  # type: ignore[arg-type]
        if cls is None:
            raise ValueError("not a config object: %.60r" % (plain,))
        names = field_names(cls)
        unknown = set(plain) - set(names) - {_TAG}
        if unknown:
            raise ValueError("%s has no field %s" % (cls.__name__, ", ".join(sorted(map(str, unknown)))))
        return cls(**{name: from_plain(plain[name]) for name in names if name in plain})
    if isinstance(plain, tuple):
        return tuple(from_plain(v) for v in plain)
    if plain is None or isinstance(plain, (str, int, float)):
        return plain
    raise ValueError("not config data: %s" % type(plain).__name__)
