"""Leak watch: catch the slow leak in a vital daemon before it becomes an outage.

For every [[critical]] entry with leak watch on (and, when the board asks, every other process
above a size) the watcher samples the process's memory at the entry's interval - RSS, anon
and PSS from /proc/PID/smaps_rollup where the kernel has it (4.14+; guardian/kernel/smaps.py),
else VmRSS/RssAnon from the process table - into a bounded window (a leakstate.Series), and
asks guardian/analysis/trend.py whether it is growing and where that leads:

- the identity of a series is the entry's name, so a restarted daemon (new PID) continues the
  same series; the restart starts a new segment, and the estimate never pairs samples across
  it (the drop at a restart is an offset, not a fall);
- when the process crosses its ceiling (leak.max_rss_mib), or it is growing and the projection
  to its ceiling or to the system's terminate line falls inside the horizon: a `leak` event
  with the evidence, and the entry's on_leak action (restart or command argv, or notify),
  at most once per cooldown. The command runs in a thread (guardian/actions/run.py); its
  outcome is a `leak_action` event, and once the process has had time to come back a
  `leak_result` event says whether it did, under which PID, with which oom_score_adj, and how
  much memory came back;
- while a process grows, /proc/PID/smaps is read now and then and diffed against the read
  taken when the growth was first seen: which mappings grew ([heap], anonymous regions,
  writable segments of shared objects) - where to point heaptrack or valgrind;
- the series survive a guardian restart in <state_dir>/leaks.json (leakstate.py: the format,
  and how often it is written), saved atomically whenever the save interval has passed.

`guardian leaks [--json]` (guardian/commands/leaks.py) shows each watched process from that
file and a live read. What follows a rise (the smaps evidence, the leak event, on_leak and its
outcome) is guardian/core/parts/leakact.py, loaded the first time a process rises or crosses its
ceiling: a daemon whose watched processes stay flat never holds it.
"""
from __future__ import annotations

import os
import time

from guardian import safefile
from guardian.analysis.trend import MIN_POINTS, Projection, Trend, judge
from guardian.config import MIB, Config, Critical, LeakWatch, Leaks
from guardian.core.match import Role
from guardian.core.parts import Part, Tick, leakstate
from guardian.core.parts.leakstate import STATE_NAME, Series
from guardian.kernel.procs import ProcInfo, read_proc
from guardian.kernel.smaps import read_rollup
from guardian.record import record
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

    from guardian.core.parts import Tell
    from guardian.core.parts.leakact import Action


__all__ = ["LeakWatcher", "LeakFinding", "min_span_s", "early_span_s", "tenths", "mib_text", "size_text"]

KIB = 1024
SIZE = "\0size"  # the schedule key of the size watch
SUSPECT_P = 0.05  # a rise this likely (before the trend is confirmed) earns a smaps baseline
COMMAND_TIMEOUT_MIN_S = 30.0  # a restart waits for the service to start: longer than a stop

_INF = float("inf")


# ------------------------------------------------------------------------------------------
# Findings


@record
class LeakFinding:
    """One process's state after a sample: the trend, the projection, what was done."""

    name: str  # the identity: the [[critical]] entry's name, or "comm[pid]" for a big process
    kind: str  # "critical" or "size"
    pid: int
    time: float
    rss: int
    anon: int
    pss: Optional[int]
    trend: Trend
    projection: Projection
    ceiling: Optional[int]  # bytes
    action: str = ""  # "", "notify", "restart", "command", "dry_run", "cooldown"
    restarts: int = 0
    grew: Tuple[Tuple[str, int, int], ...] = ()

    @property
    def leak(self) -> bool:
        return self.projection.leak


def tenths(x: Optional[float]) -> Optional[float]:
    """Seconds to a tenth, for events and reports (None stays None)."""
    return None if x is None else round(x, 1)


class _LogTell:
    def event(self, kind: str, message: str, **fields: Any) -> None:
        log.info("%s: %s", kind, message)


def min_span_s(watch: LeakWatch) -> float:
    """A trend needs samples over a quarter of the window (and MIN_POINTS intervals)..."""
    return max(MIN_POINTS * watch.interval_s, watch.window_s / 4.0)


def early_span_s(watch: LeakWatch) -> float:
    """...or over a twelfth of it when a line is closer than that quarter (trend.judge)."""
    return max(MIN_POINTS * watch.interval_s, watch.window_s / 12.0)


def rising(tr: Trend) -> bool:
    """A rise likely enough (SUSPECT_P) to earn a smaps baseline, before the trend is confirmed."""
    return tr.slope > 0 and tr.p < SUSPECT_P


def mib_text(b: Optional[float]) -> str:
    """Bytes as "12.3 MiB" ("-" for None)."""
    return "-" if b is None else "%.1f MiB" % (b / MIB)


def size_text(b: float) -> str:
    """Bytes in KiB, or in MiB from 1 MiB on."""
    if abs(b) >= 10 * MIB:
        return "%.0f MiB" % (b / MIB)
    if abs(b) >= MIB:
        return "%.1f MiB" % (b / MIB)
    return "%.0f KiB" % (b / KIB)


# ------------------------------------------------------------------------------------------
# The watcher


class LeakWatcher(Part):
    """Samples watched processes on their schedule, estimates, fires on_leak, persists.

    `now` is time.monotonic() (the state file converts it to ages). As the daemon's part it
    asks for a full tick when a sample is due (needs_tick, next_due), samples in on_tick,
    takes a new config on reload and saves at close. sample() saves the state itself when
    the save interval has passed."""

    name = "leak watch"

    def __init__(self, config: Config, proc_root: str = "/proc", state_dir: Optional[str] = "/var/lib/guardian",
                 tell: Optional[Tell] = None, dry_run: bool = False, clock: Optional[Callable[[], float]] = None,
                 preread: Optional[Sequence[Any]] = None):
        self.proc_root = proc_root
        self.state_dir = state_dir or None
        self.tell: Tell = tell if tell is not None else _LogTell()
        self.dry_run = dry_run
        self.clock = clock or time.monotonic  # the clock `now` is read from (tests give their own)
        self.series: Dict[str, Series] = {}
        self._next: Dict[str, float] = {}
        self._next_min = _INF
        self._actions: List[Action] = []  # on_leak commands (leakact.Action)
        self._last_save = -_INF
        self._dirty = False
        self._busy = False  # something grew, restarted or fired since the last save
        self._save_problem: Optional[str] = None
        self.writes = 0  # state file writes, and their bytes (for the README's flash figure)
        self.bytes_written = 0
        self.config = config
        self.watched: Dict[str, Critical] = {}
        # The critical daemons of the last full table: pid -> (starttime, role)
        self._critical: Optional[Dict[int, Tuple[int, Role]]] = None
        self.update_config(config)
        # The state file as the start child read it (leakstate.preread): the daemon keeps no parser.
        self.loaded = self._load(preread)

    # -- config ----------------------------------------------------------------------------

    @property
    def leaks(self) -> Leaks:
        return self.config.leaks

    def update_config(self, config: Config) -> None:
        """SIGHUP: new entries are watched from now on; series of entries still watched are
        kept (identity is the name), those of entries gone or switched off are dropped."""
        self.config = config
        self.watched = {c.name: c for c in config.critical if c.leak.enabled}
        for key in [k for k, s in self.series.items() if s.kind == "critical" and k not in self.watched]:
            del self.series[key]
        for key in [k for k in self._next if k not in self.watched and k != SIZE]:
            del self._next[key]
        for name in self.watched:
            self._next.setdefault(name, -_INF)
        if self.leaks.watch_above_mib is None:
            self._next.pop(SIZE, None)
            for key in [k for k, s in self.series.items() if s.kind == "size"]:
                del self.series[key]
        else:
            self._next.setdefault(SIZE, -_INF)
        self._recompute_next()

    def _recompute_next(self) -> None:
        self._next_min = min(self._next.values()) if self._next else _INF

    # -- schedule --------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return now >= self._next_min

    def next_due(self, now: float) -> float:
        """Seconds until the next sample is due (0.0: now; inf: nothing is watched)."""
        return max(0.0, self._next_min - now)

    # -- sampling --------------------------------------------------------------------------

    # -- the daemon's part -------------------------------------------------------------------

    def needs_tick(self, now: float) -> bool:
        return self.due(now)

    def on_tick(self, tick: Tick) -> None:
        procs: Optional[Sequence[ProcInfo]] = tick.reading.procs
        roles = tick.roles
        if procs is not None:
            self._remember_critical(procs, roles)
        if not self.due(tick.now):
            return
        if procs is None:
            procs, roles = self._critical_procs(tick)
        self.sample(tick.now, procs, roles, tick.reading.available - tick.plan.lines.terminate)

    def reload(self, config: Config) -> None:
        self._critical = None
        self.update_config(config)

    def _critical_procs(self, tick: Tick) -> Tuple[Sequence[ProcInfo], Mapping[int, Role]]:
        """The critical daemons for a sample, cheaply: re-read only the PIDs the last full
        table named, and read the whole table only when one of them is gone (a restart) or
        the board also watches every process above a size."""
        if self._critical is not None and not self.leaks.watch_above_mib:
            procs = []
            for pid, (starttime, _role) in self._critical.items():
                p = read_proc(pid, self.proc_root)
                if p is None or p.starttime != starttime or p.rss <= 0:  # gone, reused, or a zombie
                    break
                procs.append(p)
            else:
                return tuple(procs), {pid: role for pid, (_st, role) in self._critical.items()}
        table = tick.read_table()
        roles = tick.classify(table)
        self._remember_critical(table, roles)
        return table, roles

    def _remember_critical(self, procs: Sequence[ProcInfo], roles: Mapping[int, Role]) -> None:
        self._critical = {p.pid: (p.starttime, roles[p.pid]) for p in procs
                          if p.pid in roles and roles[p.pid].kind == "critical"}

    # -- sampling --------------------------------------------------------------------------

    def sample(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Role],
               terminate_headroom_bytes: Optional[int]) -> List[LeakFinding]:
        """Sample whatever is due, estimate, fire on_leak where called for; the findings of the
        processes sampled now. A watched process that is absent is skipped (its series waits).
        Never raises: a surprise is logged and the rest of the daemon's tick goes on."""
        findings: List[LeakFinding] = []
        try:
            self._sample(now, procs, roles, terminate_headroom_bytes, findings)
        except Exception as exc:  # a leak watch bug must not cost the guardian its tick
            log.exception("leak watch: %s", exc)
            for name, t in self._next.items():
                if t <= now:
                    self._next[name] = now + 10.0
            self._recompute_next()
        return findings

    def _sample(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Role],
                terminate_headroom_bytes: Optional[int], findings: List[LeakFinding]) -> None:
        if self._actions:  # commands only leakact starts
            from guardian.core.parts import leakact
            leakact.collect_actions(self, now)
        due = [name for name in self.watched if self._next.get(name, -_INF) <= now]
        present: Dict[str, ProcInfo] = {}
        if due or self._actions:
            index: Dict[str, List[int]] = {}
            for pid, role in roles.items():
                if role is not None and role.kind == "critical":
                    index.setdefault(role.entry.name, []).append(pid)
            wanted = {pid for pids in index.values() for pid in pids}
            by_pid = {p.pid: p for p in procs if p.pid in wanted}
            for name, pids in index.items():
                if name not in self.watched:
                    continue
                cands = [by_pid[pid] for pid in pids
                         if pid in by_pid and not by_pid[pid].kthread and by_pid[pid].rss > 0]
                if cands:
                    present[name] = min(cands, key=lambda p: (p.starttime, p.pid))  # the oldest: the daemon itself
        for name in due:
            entry = self.watched[name]
            self._next[name] = now + entry.leak.interval_s
            proc = present.get(name)
            if proc is None:
                continue
            findings.append(self._sample_one(now, name, name, "critical", proc, entry.leak, terminate_headroom_bytes,
                                             entry))
        if SIZE in self._next and self._next[SIZE] <= now:
            self._next[SIZE] = now + self.leaks.watch_interval_s
            findings.extend(self._sample_sizes(now, procs, roles, terminate_headroom_bytes))
        if self._actions:
            from guardian.core.parts import leakact
            leakact.check_actions(self, now, present, terminate_headroom_bytes)
        self._recompute_next()
        self.save(now)

    def size_watch(self) -> LeakWatch:
        """How processes watched by size are watched: the [leaks] interval, notify only."""
        return LeakWatch(interval_s=self.leaks.watch_interval_s, on_leak="notify")

    def _sample_sizes(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Role],
                      headroom: Optional[int]) -> List[LeakFinding]:
        lk = self.leaks
        threshold = (lk.watch_above_mib or 0) * MIB
        me = os.getpid()
        watch = self.size_watch()
        known = {(s.pid, s.starttime) for s in self.series.values() if s.kind == "size"}
        big = [p for p in procs
               if not p.kthread and p.pid != me and p.rss > 0
               and (p.pid not in roles or roles[p.pid].kind != "critical")
               and (p.rss >= threshold or (p.pid, p.starttime) in known)]
        big.sort(key=lambda p: -p.rss)
        out = []
        alive = set()
        for p in big[:max(0, lk.watch_max)]:
            key = "pid:%d:%d" % (p.pid, p.starttime)
            alive.add(key)
            out.append(self._sample_one(now, key, "%s[%d]" % (p.comm, p.pid), "size", p, watch, headroom, None))
        # Processes gone (or pushed out by bigger ones) are forgotten.
        for key in [k for k, s in self.series.items() if s.kind == "size" and k not in alive]:
            del self.series[key]
            self._dirty = True
        return out

    def _sample_one(self, now: float, key: str, name: str, kind: str, proc: ProcInfo, watch: LeakWatch,
                    headroom: Optional[int], entry: Optional[Critical]) -> LeakFinding:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key, name, kind)
        roll = read_rollup(proc.pid, self.proc_root)
        if roll is not None:
            rss = roll.rss
            anon = roll.anon if roll.anon is not None else proc.rss_anon
            pss = roll.pss
        else:
            rss, anon, pss = proc.rss, proc.rss_anon, None
        restart = s.add(now, proc.pid, proc.starttime, rss, anon, -1 if pss is None else pss)
        if restart is not None:
            self._busy = True
        if restart is not None and restart[1] is not None:
            self.tell.event("leak_restart", "%s came back as pid %d (was %s)%s: its series continues, the restart "
                            "marked" % (name, proc.pid, restart[1],
                                        ", restarted by the guardian" if restart[3] else ""),
                            name=name, pid=proc.pid, old_pid=restart[1], planned=restart[3])
        max_samples = int(watch.window_s / max(watch.interval_s, 0.01) * 1.5) + 16
        s.prune(now, watch.window_s, max_samples)
        self._dirty = True
        ceiling = int(watch.max_rss_mib * MIB) if watch.max_rss_mib else None
        tr, pr = judge(s.t, s.rss, s.seg, min_span_s(watch), early_span_s(watch), ceiling, headroom,
                       watch.horizon_s, s.current())
        s.trend = tr
        if tr.growing or pr.leak:
            self._busy = True
        self._smaps_step(now, s, proc, tr, watch)
        action = ""
        if pr.leak:
            if (s.fired is not None and now - s.fired < watch.cooldown_s) or any(a.key == key for a in self._actions):
                action = "cooldown"
            else:
                from guardian.core.parts import leakact
                action = leakact.fire(self, now, s, proc, tr, pr, watch, entry, rss, anon, pss, ceiling, headroom)
        return LeakFinding(name, kind, proc.pid, now, rss, anon, pss, tr, pr, ceiling, action, len(s.restarts),
                           tuple(s.grew))

    # -- past a rise: guardian/core/parts/leakact.py, loaded at the first need -------------

    def _smaps_step(self, now: float, s: Series, proc: ProcInfo, tr: Trend, watch: LeakWatch) -> None:
        """The smaps evidence of a rise (leakact.smaps_step); nothing to do, and nothing to
        load, while a process without a baseline is flat."""
        if s.baseline is None and not tr.growing and not rising(tr):
            return
        from guardian.core.parts import leakact
        leakact.smaps_step(self, now, s, proc, tr, watch)

    def pending_actions(self) -> int:
        return len(self._actions)

    def close(self) -> None:
        """At exit: the last samples to disk. A command in flight runs on in its own session;
        its outcome is not waited for."""
        self.save(self.clock(), force=True)

    # -- persistence -----------------------------------------------------------------------

    @property
    def state_path(self) -> Optional[str]:
        return os.path.join(self.state_dir, STATE_NAME) if self.state_dir else None

    def save(self, now: float, force: bool = False) -> bool:
        """Write the state file if something changed and the save interval has passed (or
        force). Atomic: a crash leaves the old file or the new one, never half of one."""
        path = self.state_path
        if path is None or not self._dirty:
            return False
        lk = self.leaks
        interval = lk.save_interval_s if self._busy else max(lk.save_interval_s, lk.save_idle_interval_s)
        if not force and now - self._last_save < interval:
            return False
        self._last_save = now
        try:
            data = leakstate.encode(self.series.values(), now, self.clock(), leakstate.read_boot_id(self.proc_root))
            safefile.write_atomic(path, data, 0o644, durable=True)
        except (OSError, ValueError, TypeError, OverflowError) as exc:
            if isinstance(exc, OSError):
                problem = "cannot write %s: %s" % (path, exc.strerror or exc)
            else:  # a value no file could hold: said once, not every save
                problem = "cannot encode the trend state for %s: %s" % (path, leakstate.why(exc))
            if problem != self._save_problem:
                self._save_problem = problem
                self.tell.event("leak_state", problem + "; trend state is kept in memory only", ok=False, path=path)
            return False
        if self._save_problem is not None:
            self.tell.event("leak_state", "writing %s works again" % path, ok=True, path=path)
            self._save_problem = None
        self._dirty = False
        self._busy = False
        self.writes += 1
        self.bytes_written += len(data)
        return True

    def _load(self, preread: Optional[Sequence[Any]] = None) -> bool:
        path = self.state_path
        if path is None:
            return False
        if preread is not None and preread[0] != path:
            preread = None  # read for another directory: read it here
        if preread is None:
            preread = leakstate.preread(self.state_dir)
            if preread is None:
                return False
        _path, what, doc = preread
        if what == "unreadable":
            self.tell.event("leak_state", "cannot read %s: %s; starting without trend history" % (
                path, doc), ok=False, path=path)
            return False
        try:
            if what != "doc":
                raise ValueError(doc)
            series, dropped = leakstate.decode_doc(doc, self.clock(), leakstate.read_boot_id(self.proc_root))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
            self.tell.event("leak_state", "ignored %s (torn or garbled: %s); starting without trend history" % (
                path, doc if what != "doc" else leakstate.why(exc)), ok=False, path=path)
            return False
        for s in series:
            if (s.kind == "critical" and s.key in self.watched) or (s.kind == "size" and SIZE in self._next):
                self.series[s.key] = s
        self.tell.event("leak_state", "loaded %d series from %s%s" % (
            len(self.series), path, " (%s)" % dropped if dropped else ""), ok=True, path=path)
        return True
