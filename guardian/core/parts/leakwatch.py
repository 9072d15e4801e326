"""Leak watch: catch the slow leak in a vital daemon before it becomes an outage.

For every [[critical]] entry with leak watch on (and, when the board asks, every other process
above a size) the watcher samples the process's memory at the entry's interval - RSS, anon
and PSS from /proc/PID/smaps_rollup where the kernel has it (4.14+), else VmRSS/RssAnon from
the process table - into a bounded window, and asks guardian/trend.py whether it is growing
and where that leads:

- the identity of a series is the entry's name, so a restarted daemon (new PID) continues the
  same series; the restart starts a new segment, and the estimate never pairs samples across
  it (the drop at a restart is an offset, not a fall);
- when the process crosses its ceiling (leak.max_rss_mib), or it is growing and the projection
  to its ceiling or to the system's terminate line falls inside the horizon: a `leak` event
  with the evidence, and the entry's on_leak action (restart or command argv, or notify),
  at most once per cooldown. The command runs in a thread (guardian/actions/run.py); its outcome is a `leak_action`
  event, and once the process has had time to come back a `leak_result` event says whether
  it did, under which PID, with which oom_score_adj, and how much memory came back;
- while a process grows, /proc/PID/smaps is read now and then and diffed against the read
  taken when the growth was first seen: which mappings grew ([heap], anonymous regions,
  writable segments of shared objects) - where to point heaptrack or valgrind;
- the series survive a guardian restart in <state_dir>/leaks.json, written atomically
  (temp file, fsync, rename, fsync of the directory) at most once per save_interval_s (60 s)
  while something grows, restarts or fires, else once per save_idle_interval_s (10 min): a
  crash then loses at most ten minutes of flat history. A torn or garbled file is ignored
  with a message. Deltas and runs keep the file small (about 600 bytes for three flat
  daemons with full windows), but each save costs about 20 KiB at the block layer on ext4
  (a data block and the journal), so the number of saves is what wears the flash.

`guardian leaks [--json]` (cli_main) shows each watched process from that file and a live read.
"""
import json
import logging
import os
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from guardian import safefile
from guardian.actions.run import run
from guardian.config import MIB, Config, Critical, LeakWatch, Leaks
from guardian.kernel import read_bytes
from guardian.kernel.procs import ProcInfo
from guardian.analysis.trend import EMPTY, MIN_POINTS, Projection, Trend, duration, estimate, judge

log = logging.getLogger("guardian")

__all__ = ["LeakWatcher", "LeakFinding", "Rollup", "read_rollup", "parse_rollup", "read_smaps", "parse_smaps",
           "smaps_growth", "cli_main", "STATE_NAME"]

STATE_NAME = "leaks.json"
FORMAT = 1
KIB = 1024
MAX_STATE_BYTES = 4 * MIB  # a state file bigger than this is not ours
SIZE = "\0size"  # the schedule key of the size watch
RESTARTS_KEPT = 16
GREW_KEPT = 6  # mappings kept in the smaps diff
SUSPECT_P = 0.05  # a rise this likely (before the trend is confirmed) earns a smaps baseline
COMMAND_TIMEOUT_MIN_S = 30.0  # a restart waits for the service to start: longer than a stop

_INF = float("inf")


# ------------------------------------------------------------------------------------------
# Reading a process's memory


@dataclass(frozen=True)
class Rollup:
    """/proc/PID/smaps_rollup, in bytes (None: the kernel does not give that field)."""

    rss: int
    pss: Optional[int]
    anon: Optional[int]
    swap: Optional[int]


_ROLLUP_KEYS = {b"Rss": "rss", b"Pss": "pss", b"Anonymous": "anon", b"Swap": "swap"}


def parse_rollup(data: bytes) -> Optional[Rollup]:
    """The fields of smaps_rollup text; None when it has no Rss line (a zombie reads empty)."""
    got: Dict[str, int] = {}
    for line in data.split(b"\n"):
        i = line.find(b":")
        if i <= 0:
            continue
        name = _ROLLUP_KEYS.get(line[:i])
        if name is not None and name not in got:
            parts = line[i + 1:].split()
            if parts:
                got[name] = int(parts[0]) * KIB
    if "rss" not in got:
        return None
    return Rollup(got["rss"], got.get("pss"), got.get("anon"), got.get("swap"))


def read_rollup(pid: int, proc_root: str = "/proc") -> Optional[Rollup]:
    """None when the process is gone, the kernel is older than 4.14, or we may not read it."""
    try:
        return parse_rollup(read_bytes("%s/%d/smaps_rollup" % (proc_root, pid), bufsize=4096))
    except (OSError, ValueError):
        return None


def parse_smaps(data: bytes) -> Dict[str, int]:
    """Bytes resident or swapped out (Rss + Swap) per mapping group of /proc/PID/smaps:
    "[heap]", "[stack]", "[anon:NAME]" (named anonymous regions), "anon@ADDR" (an anonymous
    region by its start address: malloc arenas of other threads, large allocations), "PATH
    (rw)" (a writable mapping of a file: a shared object's data segment, a shared file).
    Read-only file mappings (code, fonts) are left out: a leak is not there. An anonymous
    region is not pinned on the shared object it happens to follow: mmap places unrelated
    regions right after libraries, so that would point the engineer at the wrong library."""
    out: Dict[str, int] = {}
    key: Optional[str] = None
    for line in data.split(b"\n"):
        if not line:
            continue
        c = line[0]
        if 48 <= c <= 57 or 97 <= c <= 102:  # a hex digit: a mapping's header line
            parts = line.split(None, 5)
            if len(parts) < 5 or b"-" not in parts[0]:
                key = None
                continue
            start = parts[0].split(b"-", 1)[0]
            path = parts[5].strip() if len(parts) > 5 else b""
            if not path:
                key = "anon@%s" % start.decode("ascii", "replace")
            elif path.startswith(b"["):
                if path in (b"[heap]", b"[stack]") or path.startswith(b"[anon:"):
                    key = path.decode("utf-8", "replace")
                else:
                    key = None  # [vdso], [vvar], [vsyscall]
            elif b"w" in parts[1]:
                key = "%s (rw)" % path.decode("utf-8", "replace")
            else:
                key = None
            continue
        if key is None:
            continue
        if line.startswith(b"Rss:") or line.startswith(b"Swap:"):
            fields = line.split()
            if len(fields) >= 2:
                out[key] = out.get(key, 0) + int(fields[1]) * KIB
    return out


def read_smaps(pid: int, proc_root: str = "/proc") -> Optional[Dict[str, int]]:
    """parse_smaps of /proc/PID/smaps; None when gone or not ours to read (needs ptrace access)."""
    try:
        return parse_smaps(read_bytes("%s/%d/smaps" % (proc_root, pid), bufsize=65536))
    except (OSError, ValueError):
        return None


def smaps_growth(before: Mapping[str, int], after: Mapping[str, int], top: int = GREW_KEPT) -> List[Tuple[str, int, int]]:
    """The mappings that grew most: [(mapping, bytes grown, bytes now)], largest growth first,
    with all anonymous regions together as one more row (regions come and go)."""
    rows = []
    for key in set(before) | set(after):
        grown = after.get(key, 0) - before.get(key, 0)
        if grown > 0:
            rows.append((key, grown, after.get(key, 0)))
    anon_before = [v for k, v in before.items() if k.startswith("anon@")]
    anon_after = [v for k, v in after.items() if k.startswith("anon@")]
    if anon_after and len(anon_after) + len(anon_before) > 1:
        grown = sum(anon_after) - sum(anon_before)
        if grown > 0:
            rows.append(("all anonymous regions (%d, were %d)" % (len(anon_after), len(anon_before)), grown,
                         sum(anon_after)))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows[:top]


def _boot_id(proc_root: str) -> str:
    try:
        return read_bytes(proc_root + "/sys/kernel/random/boot_id", bufsize=64).decode("ascii", "replace").strip()
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------
# Running the on_leak command


class _Action:
    """An on_leak command in flight, then the wait for its outcome."""

    def __init__(self, key: str, name: str, what: str, argv: Tuple[str, ...], started: float, pid: int,
                 starttime: int, rss: int, headroom: Optional[int], settle_s: float, deadline_s: float):
        self.key, self.name, self.what, self.argv = key, name, what, argv
        self.started = started
        self.pid, self.starttime, self.rss, self.headroom = pid, starttime, rss, headroom
        self.settle_s, self.deadline_s = settle_s, deadline_s
        self.returncode: Optional[int] = None
        self.problem: Optional[str] = None
        self.seconds = 0.0
        self.done = False  # set by the thread, last
        self.done_at: Optional[float] = None  # when the main loop saw it done
        self.checked = False
        self.thread: Optional[threading.Thread] = None

    def start(self, timeout_s: float) -> None:
        def work() -> None:
            try:
                outcome = run(self.argv, timeout_s, what="command", may_start_service=True)
                self.returncode, self.problem, self.seconds = outcome.returncode, outcome.problem, outcome.seconds
                if outcome.timed_out and outcome.returncode is not None:
                    self.problem += " (killed)"  # the command alone: its group may hold the service
            except Exception as exc:  # never let a thread die silently
                self.problem = "command failed: %s" % exc
            self.done = True

        self.thread = threading.Thread(target=work, name="guardian-leak-%s" % self.name, daemon=True)
        self.thread.start()


# ------------------------------------------------------------------------------------------
# Series


class Series:
    """The samples of one identity (a [[critical]] entry's name, or one big process)."""

    __slots__ = ("key", "name", "kind", "pid", "starttime", "t", "rss", "anon", "pss", "seg", "segment",
                 "restarts", "fired", "baseline", "grew", "grew_span", "last_smaps", "trend", "planned")

    def __init__(self, key: str, name: str, kind: str):
        self.key, self.name, self.kind = key, name, kind
        self.pid: Optional[int] = None
        self.starttime: Optional[int] = None
        self.t = array("d")
        self.rss = array("q")
        self.anon = array("q")
        self.pss = array("q")  # -1: not known
        self.seg = array("l")
        self.segment = 0
        self.restarts: List[Tuple[float, Optional[int], int, bool]] = []  # (time, old pid, new pid, planned)
        self.fired: Optional[float] = None  # the last leak event (cooldown)
        self.baseline: Optional[Tuple[float, int, Dict[str, int]]] = None  # (time, pid, smaps)
        self.grew: List[Tuple[str, int, int]] = []
        self.grew_span: Optional[Tuple[float, float, int]] = None  # (from, to, pid)
        self.last_smaps = -_INF
        self.trend: Trend = EMPTY
        self.planned: Optional[float] = None  # a restart we asked for: the next new PID is planned

    def add(self, now: float, pid: int, starttime: int, rss: int, anon: int, pss: int) -> Optional[Tuple]:
        """Append a sample; returns the restart it marks, if the process is a new one."""
        restart = None
        if (pid, starttime) != (self.pid, self.starttime) and (self.pid is not None or len(self.t)):
            if len(self.t):
                self.segment += 1
            planned = self.planned is not None
            restart = (now, self.pid, pid, planned)
            self.restarts.append(restart)
            del self.restarts[:-RESTARTS_KEPT]
            self.planned = None
            if self.baseline is not None and self.baseline[1] != pid:
                self.baseline = None
        self.pid, self.starttime = pid, starttime
        self.t.append(now)
        self.rss.append(rss)
        self.anon.append(anon)
        self.pss.append(pss)
        self.seg.append(self.segment)
        return restart

    def prune(self, now: float, window_s: float, max_samples: int) -> None:
        cut = 0
        n = len(self.t)
        oldest = now - window_s
        while cut < n and self.t[cut] < oldest:
            cut += 1
        cut = max(cut, n - max_samples)
        if cut > 0:
            for arr in (self.t, self.rss, self.anon, self.pss, self.seg):
                del arr[:cut]

    def current(self, k: int = 3) -> List[int]:
        """The last k RSS values of the current process."""
        out: List[int] = []
        i = len(self.t) - 1
        while i >= 0 and len(out) < k and self.seg[i] == self.segment:
            out.append(self.rss[i])
            i -= 1
        return out


@dataclass(frozen=True)
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

    @property
    def slope_kib_min(self) -> float:
        return self.trend.slope * 60.0 / KIB

    def as_dict(self) -> Dict[str, Any]:
        tr, pr = self.trend, self.projection
        return {
            "name": self.name, "kind": self.kind, "pid": self.pid, "rss_bytes": self.rss, "anon_bytes": self.anon,
            "pss_bytes": self.pss, "slope_kib_min": round(self.slope_kib_min, 2), "confidence": round(tr.confidence, 4),
            "p": tr.p, "tau": round(tr.tau, 3), "agree": round(tr.agree, 3), "steady": tr.steady,
            "samples": tr.n, "span_s": round(tr.span_s, 1), "segments": tr.segments, "growing": tr.growing,
            "why": tr.why, "ceiling_bytes": self.ceiling, "eta_ceiling_s": _round(pr.eta_ceiling_s),
            "eta_terminate_s": _round(pr.eta_terminate_s), "crossed": pr.crossed, "leak": pr.leak,
            "reason": pr.reason, "action": self.action, "restarts": self.restarts,
            "grew": [{"mapping": k, "grew_bytes": g, "now_bytes": n} for k, g, n in self.grew],
        }


def _round(x: Optional[float]) -> Optional[float]:
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


def _mib(b: Optional[float]) -> str:
    return "-" if b is None else "%.1f MiB" % (b / MIB)


# ------------------------------------------------------------------------------------------
# The watcher


class LeakWatcher:
    """Samples watched processes on their schedule, estimates, fires on_leak, persists.

    `now` is time.monotonic() (the state file converts it to ages); the daemon calls
    due(now)/next_due(now) to schedule, sample(...) when due, update_config on SIGHUP and
    close() at exit. sample() saves the state itself when the save interval has passed."""

    def __init__(self, config: Config, proc_root: str = "/proc", state_dir: Optional[str] = "/var/lib/guardian",
                 tell: Any = None, dry_run: bool = False, clock: Optional[Callable[[], float]] = None):
        self.proc_root = proc_root
        self.state_dir = state_dir or None
        self.tell = tell if tell is not None else _LogTell()
        self.dry_run = dry_run
        self.clock = clock or time.monotonic  # the clock `now` is read from (tests give their own)
        self.series: Dict[str, Series] = {}
        self._next: Dict[str, float] = {}
        self._next_min = _INF
        self._actions: List[_Action] = []
        self._last_save = -_INF
        self._dirty = False
        self._busy = False  # something grew, restarted or fired since the last save
        self._save_problem: Optional[str] = None
        self.writes = 0  # state file writes, and their bytes (for the README's flash figure)
        self.bytes_written = 0
        self.config = config
        self.watched: Dict[str, Critical] = {}
        self.update_config(config)
        self.loaded = self._load()

    # -- config ----------------------------------------------------------------------------

    @property
    def leaks(self) -> Leaks:
        return getattr(self.config, "leaks", None) or Leaks()

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

    def sample(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Any],
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

    def _sample(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Any],
                terminate_headroom_bytes: Optional[int], findings: List[LeakFinding]) -> None:
        self._collect_actions(now)
        due = [name for name in self.watched if self._next.get(name, -_INF) <= now]
        present: Dict[str, ProcInfo] = {}
        if due or self._actions:
            index: Dict[str, List[int]] = {}
            for pid, role in roles.items():
                if getattr(role, "kind", None) == "critical":
                    index.setdefault(role.entry.name, []).append(pid)
            wanted = {pid for pids in index.values() for pid in pids}
            by_pid = {p.pid: p for p in procs if p.pid in wanted}
            for name, pids in index.items():
                if name not in self.watched:
                    continue
                cands = [by_pid[pid] for pid in pids if pid in by_pid and not by_pid[pid].kthread and by_pid[pid].rss > 0]
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
        self._check_actions(now, present, terminate_headroom_bytes)
        self._recompute_next()
        self.save(now)

    def _size_watch(self) -> LeakWatch:
        return LeakWatch(interval_s=self.leaks.watch_interval_s, on_leak="notify")

    def _sample_sizes(self, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Any],
                      headroom: Optional[int]) -> List[LeakFinding]:
        lk = self.leaks
        threshold = (lk.watch_above_mib or 0) * MIB
        me = os.getpid()
        watch = self._size_watch()
        known = {(s.pid, s.starttime) for s in self.series.values() if s.kind == "size"}
        big = [p for p in procs
               if not p.kthread and p.pid != me and p.rss > 0
               and getattr(roles.get(p.pid), "kind", None) != "critical"
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
                            "marked" % (name, proc.pid, restart[1], ", restarted by the guardian" if restart[3] else ""),
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
                action = self._fire(now, s, proc, tr, pr, watch, entry, rss, anon, pss, ceiling, headroom)
        return LeakFinding(name, kind, proc.pid, now, rss, anon, pss, tr, pr, ceiling, action, len(s.restarts),
                           tuple(s.grew))

    # -- smaps -----------------------------------------------------------------------------

    def _smaps_step(self, now: float, s: Series, proc: ProcInfo, tr: Trend, watch: LeakWatch,
                    force: bool = False) -> None:
        """A baseline read of smaps as soon as a process looks like it rises (before the trend
        is confirmed, so that a leak event already has two reads to compare), then while it
        grows a diff against that baseline every few minutes, and one at a leak event."""
        rising = tr.slope > 0 and tr.p < SUSPECT_P
        if s.baseline is None or s.baseline[1] != proc.pid:
            if rising or tr.growing or force:
                maps = read_smaps(proc.pid, self.proc_root)
                if maps is not None:
                    s.baseline = (now, proc.pid, maps)
                    s.last_smaps = now
            return
        if not rising and not tr.growing and tr.p > 0.5:
            s.baseline = None  # not rising after all: free the snapshot
            return
        every = max(5 * watch.interval_s, watch.window_s / 6.0)
        if (force and now > s.baseline[0]) or (tr.growing and now - s.last_smaps >= every):
            maps = read_smaps(proc.pid, self.proc_root)
            if maps is None:
                return
            s.last_smaps = now
            s.grew = smaps_growth(s.baseline[2], maps)
            s.grew_span = (s.baseline[0], now, proc.pid)
            self._dirty = True

    # -- acting ----------------------------------------------------------------------------

    def _fire(self, now: float, s: Series, proc: ProcInfo, tr: Trend, pr: Projection, watch: LeakWatch,
              entry: Optional[Critical], rss: int, anon: int, pss: Optional[int], ceiling: Optional[int],
              headroom: Optional[int]) -> str:
        s.fired = now
        if s.baseline is not None:
            self._smaps_step(now, s, proc, tr, watch, force=True)
        anon_tr = estimate(s.t, s.anon, s.seg)
        what = watch.on_leak if s.kind == "critical" else "notify"
        argv = tuple(watch.command)
        note = ""
        if what in ("restart", "command") and not argv:
            note = "; on_leak %s has no command, so notify only" % what
            what = "notify"
        dry = self.dry_run or self.config.actions.dry_run
        action = "dry_run" if dry and what != "notify" else what
        if action == "notify":
            doing = "notify only" + note
        elif action == "dry_run":
            doing = "dry run: would run %s" % list(argv)
        else:
            doing = "%s: running %s" % (what, list(argv))
        grew = ", ".join("%s +%s" % (k, _kib(g)) for k, g, _ in s.grew[:3])
        message = "%s[%d] %s at %+.1f KiB/min (anon %+.1f KiB/min; p %.2g, %.0f%% of pairwise slopes rising, " \
                  "%d samples over %s%s); RSS %s%s; %s%s" % (
                      s.name, proc.pid, "grows" if tr.slope > 0 else "is", tr.slope * 60 / KIB,
                      anon_tr.slope * 60 / KIB, tr.p, tr.agree * 100, tr.n, duration(tr.span_s),
                      ", %d restart(s)" % (tr.segments - 1) if tr.segments > 1 else "", _mib(rss),
                      ", ceiling %s" % _mib(ceiling) if ceiling else "", pr.reason,
                      "; grew most: %s" % grew if grew else "") + "; " + doing
        self.tell.event(
            "leak", message, name=s.name, watched_as=s.kind, pid=proc.pid, rss_bytes=rss, anon_bytes=anon, pss_bytes=pss,
            slope_kib_min=round(tr.slope * 60 / KIB, 2), anon_slope_kib_min=round(anon_tr.slope * 60 / KIB, 2),
            confidence=round(tr.confidence, 4), p=tr.p, tau=round(tr.tau, 3), agree=round(tr.agree, 3),
            steady=tr.steady, samples=tr.n, span_s=round(tr.span_s, 1), window_s=watch.window_s,
            segments=tr.segments, restarts=len(s.restarts), ceiling_bytes=ceiling,
            eta_ceiling_s=_round(pr.eta_ceiling_s), eta_terminate_s=_round(pr.eta_terminate_s),
            terminate_headroom_bytes=headroom, horizon_s=watch.horizon_s, crossed=pr.crossed, action=action,
            dry_run=action == "dry_run",
            command=list(argv) if argv else None,
            grew=[{"mapping": k, "grew_bytes": g, "now_bytes": n} for k, g, n in s.grew])
        self._dirty = True
        # The cooldown is on disk before the command runs: a guardian that dies during the
        # restart must not restart the service again the moment it is back.
        self.save(now, force=True)
        if action in ("restart", "command"):
            settle = max(2 * watch.interval_s, 5.0)
            a = _Action(s.key, s.name, action, argv, now, proc.pid, proc.starttime, rss, headroom, settle,
                        max(60.0, 6 * watch.interval_s))
            if action == "restart":
                s.planned = now
            a.start(max(COMMAND_TIMEOUT_MIN_S, self.config.actions.stop_command_timeout_s))
            self._actions.append(a)
        return action

    def _collect_actions(self, now: float) -> None:
        for a in self._actions:
            if a.done and a.done_at is None:
                a.done_at = now
                ok = a.problem is None
                self.tell.event("leak_action", "%s of %s: %s %s in %.1f s" % (
                    a.what, a.name, list(a.argv), "ok" if ok else a.problem, a.seconds),
                    name=a.name, action=a.what, command=list(a.argv), ok=ok, returncode=a.returncode,
                    error=a.problem, seconds=round(a.seconds, 2))

    def _check_actions(self, now: float, present: Mapping[str, ProcInfo], headroom: Optional[int]) -> None:
        """Once the command is done and the process had time to come back: the outcome."""
        for a in self._actions:
            if a.done_at is None or a.checked or now - a.done_at < a.settle_s:
                continue
            proc = present.get(a.key)
            entry = self.watched.get(a.key)
            new = proc is not None and (proc.pid, proc.starttime) != (a.pid, a.starttime)
            want_adj = entry.oom_score_adj if entry is not None else None
            adj_ok = proc is not None and (want_adj is None or proc.oom_score_adj == want_adj)
            late = now - a.done_at >= a.deadline_s
            if not late and not (new and adj_ok) and not (a.what == "command" and proc is not None):
                continue
            a.checked = True
            parts = []
            fields: Dict[str, Any] = dict(name=a.name, action=a.what, old_pid=a.pid, rss_before_bytes=a.rss,
                                          seconds_after=round(now - a.started, 1))
            if proc is None:
                parts.append("%s is NOT running %.0f s after the %s" % (a.name, now - a.started, a.what))
                fields.update(came_back=False, pid=None)
            else:
                s = self.series.get(a.key)
                rss = s.rss[-1] if s is not None and len(s.rss) and s.pid == proc.pid else proc.rss
                first = rss  # the new process's first sample: what the restart gave back
                if s is not None and new and s.pid == proc.pid:
                    i = len(s.seg) - 1
                    while i > 0 and s.seg[i - 1] == s.segment:
                        i -= 1
                    first = s.rss[i]
                if new:
                    parts.append("%s came back as pid %d (was %d)" % (a.name, proc.pid, a.pid))
                    parts.append("RSS %s before, %s when back (%s given back), %s now" % (
                        _mib(a.rss), _mib(first), _mib(a.rss - first), _mib(rss)))
                else:
                    parts.append("%s is still pid %d: the %s did not restart it" % (a.name, proc.pid, a.what))
                    parts.append("RSS %s -> %s (%s back)" % (_mib(a.rss), _mib(rss), _mib(a.rss - rss)))
                if want_adj is not None:
                    parts.append("oom_score_adj %d%s" % (proc.oom_score_adj, " as configured" if adj_ok else
                                                         ", NOT the configured %d" % want_adj))
                fields.update(came_back=new, pid=proc.pid, rss_after_bytes=rss, rss_back_bytes=first,
                              freed_bytes=a.rss - first,
                              oom_score_adj=proc.oom_score_adj, oom_score_adj_wanted=want_adj, adj_applied=adj_ok)
            if headroom is not None and a.headroom is not None:
                parts.append("headroom above the terminate line %s -> %s" % (_mib(a.headroom), _mib(headroom)))
                fields.update(headroom_before_bytes=a.headroom, headroom_after_bytes=headroom)
            ok = proc is not None and (new or a.what == "command") and adj_ok
            fields["ok"] = ok
            series = self.series.get(a.key)
            if series is not None:
                series.planned = None  # a later change of PID is the daemon's own doing
            self.tell.event("leak_result", "; ".join(parts), **fields)
        self._actions = [a for a in self._actions if not a.checked]

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
            data = self.encode(now)
            write_atomic(path, data)
        except (OSError, ValueError, TypeError, OverflowError) as exc:
            if isinstance(exc, OSError):
                problem = "cannot write %s: %s" % (path, exc.strerror or exc)
            else:  # a value no file could hold: said once, not every save
                problem = "cannot encode the trend state for %s: %s" % (path, _why(exc))
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

    def encode(self, now: float) -> bytes:
        mono = self.clock()
        doc: Dict[str, Any] = {
            "format": FORMAT, "boot_id": _boot_id(self.proc_root), "mono": round(now, 1),
            "wall": round(time.time() - (mono - now), 1), "series": [],
        }
        for s in self.series.values():
            if not len(s.t):
                continue
            ages = [int(round((now - t) * 10)) for t in s.t]  # deciseconds before `now`
            segs = []
            for i, g in enumerate(s.seg):
                if i == 0 or g != s.seg[i - 1]:
                    segs.append([i, g])
            item: Dict[str, Any] = {
                "key": s.key, "name": s.name, "kind": s.kind, "pid": s.pid, "start": s.starttime,
                "segment": s.segment, "age": _pack(ages), "rss": _pack([v // KIB for v in s.rss]),
                # RSS - anon (file-backed and shared pages) hardly moves: it packs to almost nothing
                "file": _pack([(r - a) // KIB for r, a in zip(s.rss, s.anon)]), "seg": segs,
            }
            if s.restarts:
                item["restarts"] = [[round(now - t, 1), old, new, planned] for t, old, new, planned in s.restarts]
            if s.fired is not None:
                item["fired"] = round(now - s.fired, 1)
            if s.grew:
                item["grew"] = [[k, g, n] for k, g, n in s.grew]
                if s.grew_span:
                    item["grew_span"] = [round(now - s.grew_span[0], 1), round(now - s.grew_span[1], 1),
                                         s.grew_span[2]]
            doc["series"].append(item)
        return (json.dumps(doc, separators=(",", ":")) + "\n").encode()

    def _load(self) -> bool:
        path = self.state_path
        if path is None:
            return False
        try:
            # Not blocking on a FIFO, not following a link, not trusting a directory others can
            # write (forged history could fire on_leak): guardian.safefile.
            data = safefile.read_regular(path, MAX_STATE_BYTES)
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.tell.event("leak_state", "cannot read %s: %s; starting without trend history" % (
                path, exc.strerror or exc), ok=False, path=path)
            return False
        try:
            if len(data) > MAX_STATE_BYTES:
                raise ValueError("larger than %d bytes" % MAX_STATE_BYTES)
            series, dropped = self.decode(data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
            self.tell.event("leak_state", "ignored %s (torn or garbled: %s); starting without trend history" % (
                path, _why(exc)), ok=False, path=path)
            return False
        for s in series:
            if (s.kind == "critical" and s.key in self.watched) or (s.kind == "size" and SIZE in self._next):
                self.series[s.key] = s
        self.tell.event("leak_state", "loaded %d series from %s%s" % (
            len(self.series), path, " (%s)" % dropped if dropped else ""), ok=True, path=path)
        return True

    def decode(self, data: bytes) -> Tuple[List[Series], str]:
        """Series from state file bytes, their times moved onto self.clock. Raises ValueError
        (and friends) for anything that is not a whole, well-formed file of ours."""
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not format %d" % FORMAT)
        if not isinstance(doc.get("series"), list) or not all(isinstance(x, dict) for x in doc["series"]):
            raise ValueError("no list of series")
        mono_now = self.clock()
        same_boot = bool(doc.get("boot_id")) and doc["boot_id"] == _boot_id(self.proc_root)
        if same_boot:
            elapsed = mono_now - float(doc["mono"])
        else:
            elapsed = time.time() - float(doc["wall"])
        note = ""
        if not same_boot:
            note = "from an earlier boot"
            if not (-60.0 <= elapsed < 30 * 86400.0):
                # No usable clock across the reboot (no RTC, no NTP yet): the ages mean nothing.
                return [], "from an earlier boot, %s apart by the wall clock: history dropped" % duration(abs(elapsed))
        if elapsed < 0:
            elapsed = 0.0
        base = mono_now - elapsed  # the saving `now` on our clock
        out = []
        for item in doc["series"]:
            s = Series(str(item["key"]), str(item["name"]), str(item["kind"]))
            if s.kind not in ("critical", "size"):
                raise ValueError("series kind %r" % s.kind)
            if s.kind == "size" and not same_boot:
                continue  # its identity is a PID of another boot
            ages = _unpack(item["age"])
            rss = _unpack(item["rss"])
            anon = [r - f for r, f in zip(rss, _unpack(item["file"]))]
            if not (len(ages) == len(rss) == len(anon)):
                raise ValueError("series %s: lengths differ" % s.key)
            segs = item["seg"]
            seg_of = []
            marks = {int(i): int(g) for i, g in segs}
            current = 0
            for i in range(len(ages)):
                current = marks.get(i, current)
                seg_of.append(current)
            for age, r, an, g in zip(ages, rss, anon, seg_of):
                s.t.append(base - age / 10.0)
                s.rss.append(int(r) * KIB)
                s.anon.append(int(an) * KIB)
                s.pss.append(-1)
                s.seg.append(g)
            if any(b < a for a, b in zip(s.t, s.t[1:])):
                raise ValueError("series %s: times out of order" % s.key)
            s.segment = int(item["segment"])
            if same_boot:
                s.pid = None if item["pid"] is None else int(item["pid"])
                s.starttime = None if item["start"] is None else int(item["start"])
            # After a reboot every process is new: the next sample starts a segment.
            for r in item.get("restarts", ()):
                s.restarts.append((base - float(r[0]), r[1], int(r[2]), bool(r[3])))
            if item.get("fired") is not None:
                s.fired = base - float(item["fired"])
            for k, g, n in item.get("grew", ()):
                s.grew.append((str(k), int(g), int(n)))
            span = item.get("grew_span")
            if span:
                s.grew_span = (base - float(span[0]), base - float(span[1]), int(span[2]))
            out.append(s)
        return out, note


def _pack(values: Sequence[int]) -> List[Any]:
    """Deltas (the first against 0), a run of three or more equal deltas as [delta, count]:
    a regular sample interval and a flat process pack to a few numbers."""
    out: List[Any] = []
    prev = 0
    run_value: Optional[int] = None
    run = 0

    def flush() -> None:
        if run >= 3:
            out.append([run_value, run])
        else:
            out.extend([run_value] * run)

    for v in values:
        d = v - prev
        prev = v
        if d == run_value:
            run += 1
            continue
        if run:
            flush()
        run_value, run = d, 1
    if run:
        flush()
    return out


def _unpack(items: Iterable[Any]) -> List[int]:
    out: List[int] = []
    acc = 0
    for item in items:
        if isinstance(item, list):
            if len(item) != 2:
                raise ValueError("bad run %r" % (item,))
            d, count = item
            if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 1000000:
                raise ValueError("bad run length %r" % (count,))
        else:
            d, count = item, 1
        if not isinstance(d, int) or isinstance(d, bool):
            raise ValueError("not an integer: %r" % (d,))
        for _ in range(count):
            acc += d
            out.append(acc)
    return out


def _no_constant(name: str) -> float:
    raise ValueError("%s is not a number this file holds" % name)


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (_INF, -_INF):
        raise ValueError("%s is not a finite number" % text[:40])
    return value


def _why(exc: BaseException) -> str:
    """One line for the log: what was wrong with the state file."""
    if isinstance(exc, KeyError):
        return "field %s missing" % str(exc)[:60]
    if isinstance(exc, RecursionError):
        return "nested too deep"
    if isinstance(exc, (TypeError, AttributeError, IndexError)):
        return "wrong shape: %s" % " ".join(str(exc).split())[:200]
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def write_atomic(path: str, data: bytes) -> None:
    """Temp file beside path (O_EXCL, an unpredictable name, no links followed), fsync, rename
    over path, fsync the directory; in a directory only root can write (guardian.safefile)."""
    safefile.write_atomic(path, data, 0o644, durable=True)


def _kib(b: float) -> str:
    if abs(b) >= 10 * MIB:
        return "%.0f MiB" % (b / MIB)
    if abs(b) >= MIB:
        return "%.1f MiB" % (b / MIB)
    return "%.0f KiB" % (b / KIB)


# ------------------------------------------------------------------------------------------
# guardian leaks


class _Collect:
    def __init__(self) -> None:
        self.messages: List[str] = []

    def event(self, kind: str, message: str, **fields: Any) -> None:
        self.messages.append(message)


def report(watcher: LeakWatcher, now: float, procs: Sequence[ProcInfo], roles: Mapping[int, Any],
           headroom: Optional[int], smaps_wait_s: float = 0.0) -> List[Dict[str, Any]]:
    """Each watched process: its history from the state file plus one live sample, the trend,
    the projection and, where it grows, the mappings that grew. Changes nothing on disk."""
    present: Dict[str, ProcInfo] = {}
    for pid, role in roles.items():
        if getattr(role, "kind", None) == "critical" and role.entry.name in watcher.watched:
            p = next((q for q in procs if q.pid == pid), None)
            if p is None or p.kthread or p.rss <= 0:
                continue
            old = present.get(role.entry.name)
            if old is None or (p.starttime, p.pid) < (old.starttime, old.pid):
                present[role.entry.name] = p
    rows: List[Dict[str, Any]] = []
    items: List[Tuple[str, str, Optional[LeakWatch], Optional[ProcInfo]]] = [
        (name, "critical", entry.leak, present.get(name)) for name, entry in watcher.watched.items()]
    by_pid = {(p.pid, p.starttime): p for p in procs}
    for key, s in watcher.series.items():
        if s.kind == "size":
            items.append((key, "size", watcher._size_watch(), by_pid.get((s.pid, s.starttime))))
    live_maps: Dict[str, Tuple[Dict[str, int], ProcInfo]] = {}
    if smaps_wait_s > 0:
        for key, _, _, proc in items:
            if proc is not None:
                maps = read_smaps(proc.pid, watcher.proc_root)
                if maps is not None:
                    live_maps[key] = (maps, proc)
        if live_maps:
            time.sleep(smaps_wait_s)
    for key, kind, watch, proc in items:
        s = watcher.series.get(key)
        name = s.name if s is not None else key
        row: Dict[str, Any] = {"name": name, "kind": kind, "running": proc is not None,
                               "pid": proc.pid if proc else None}
        if proc is not None:
            roll = read_rollup(proc.pid, watcher.proc_root)
            rss = roll.rss if roll else proc.rss
            anon = roll.anon if roll and roll.anon is not None else proc.rss_anon
            pss = roll.pss if roll else None
            row.update(rss_bytes=rss, anon_bytes=anon, pss_bytes=pss)
            if s is None:
                s = Series(key, name, kind)
            if not len(s.t) or now - s.t[-1] >= 1.0:
                s.add(now, proc.pid, proc.starttime, rss, anon, -1 if pss is None else pss)
        if s is not None:
            s.prune(now, watch.window_s, int(watch.window_s / max(watch.interval_s, 0.01) * 1.5) + 16)
        if s is None or not len(s.t):
            row.update(status="no history", why="no samples yet (is the guardian running? state in %s)" % (
                watcher.state_path or "memory only"))
            rows.append(row)
            continue
        ceiling = int(watch.max_rss_mib * MIB) if watch.max_rss_mib else None
        tr, pr = judge(s.t, s.rss, s.seg, min_span_s(watch), early_span_s(watch), ceiling, headroom,
                       watch.horizon_s, s.current() if proc is not None else ())
        status = "LEAK" if pr.leak else "growing" if tr.growing else "steady" if tr.n >= MIN_POINTS else "learning"
        row.update(
            status=status, slope_kib_min=round(tr.slope * 60 / KIB, 2), confidence=round(tr.confidence, 4),
            p=tr.p, tau=round(tr.tau, 3), agree=round(tr.agree, 3), steady=tr.steady, samples=tr.n,
            span_s=round(tr.span_s, 1), window_s=watch.window_s, growing=tr.growing, why=tr.why,
            ceiling_bytes=ceiling, eta_ceiling_s=_round(pr.eta_ceiling_s), eta_terminate_s=_round(pr.eta_terminate_s),
            leak=pr.leak, reason=pr.reason, horizon_s=watch.horizon_s,
            restarts=[{"ago_s": round(now - t, 1), "old_pid": old, "new_pid": new, "planned": planned}
                      for t, old, new, planned in s.restarts],
            last_leak_ago_s=None if s.fired is None else round(now - s.fired, 1),
            cooldown_left_s=None if s.fired is None else round(max(0.0, watch.cooldown_s - (now - s.fired)), 1))
        if "rss_bytes" not in row:
            row.update(rss_bytes=s.rss[-1], anon_bytes=s.anon[-1], pss_bytes=None)
        grew: List[Tuple[str, int, int]] = list(s.grew)
        span = s.grew_span
        if key in live_maps and proc is not None:
            after = read_smaps(proc.pid, watcher.proc_root)
            if after is not None:
                grew = smaps_growth(live_maps[key][0], after)
                span = (now, now + smaps_wait_s, proc.pid)
        row["grew"] = [{"mapping": k, "grew_bytes": g, "now_bytes": n} for k, g, n in grew]
        row["grew_over_s"] = None if span is None else round(span[1] - span[0], 1)
        row["grew_pid"] = None if span is None else span[2]
        rows.append(row)
    return rows


def _terminate_headroom(config: Config, proc_root: str, sys_root: str) -> Optional[int]:
    try:
        from guardian.core import policy
        from guardian.core.sense import Sensor
        sensor = Sensor(None, proc_root, sys_root)
        try:
            reading = sensor.read(0.0, os.getpid())
        finally:
            sensor.close()
        if reading is None:
            return None
        return reading.available - policy.lines_for(reading, policy.Recent(), config).terminate
    except Exception:  # the headroom is a nicety here; the trends stand without it
        return None


def cli_main(args: Any) -> int:
    """`guardian leaks [--json]`: args has .config, .board, .json, .state_dir, .proc_root
    (and optionally .sys_root, .smaps_wait)."""
    import sys
    from guardian.commands.options import load_config_for
    from guardian.kernel.procs import read_procs
    from guardian.core.match import classify

    try:
        config, why, _ = load_config_for(args)
    except ValueError as exc:
        print("guardian: %s" % exc, file=sys.stderr)
        return 2
    proc_root = getattr(args, "proc_root", None) or "/proc"
    sys_root = getattr(args, "sys_root", None) or "/sys"
    state_dir = getattr(args, "state_dir", None)
    if state_dir is None:
        state_dir = config.leaks.state_dir if hasattr(config, "leaks") else Leaks().state_dir
    tell = _Collect()
    watcher = LeakWatcher(config, proc_root, state_dir, tell=tell)
    now = watcher.clock()
    procs = read_procs(proc_root)
    roles = classify(procs, config, proc_root)
    headroom = _terminate_headroom(config, proc_root, sys_root)
    rows = report(watcher, now, procs, roles, headroom, float(getattr(args, "smaps_wait", 0) or 0))
    saved_age = None
    if watcher.state_path:
        try:
            saved_age = max(0.0, time.time() - os.stat(watcher.state_path).st_mtime)
        except OSError:
            pass
    if getattr(args, "json", False):
        print(json.dumps({"board": config.board, "config": config.source, "state_file": watcher.state_path,
                          "state_age_s": None if saved_age is None else round(saved_age, 1),
                          "terminate_headroom_bytes": headroom, "messages": tell.messages, "watched": rows},
                         indent=2, sort_keys=True, default=str))
        return 0
    print("guardian leaks  board %s (%s)" % (config.board, why))
    print("state       %s%s" % (watcher.state_path or "none (memory only)",
                                "" if saved_age is None else ", saved %s ago" % duration(saved_age)))
    for message in tell.messages:
        print("            %s" % message)
    if headroom is not None:
        print("headroom    %s above the terminate line" % _mib(headroom))
    if not rows:
        print("no process is watched: no [[critical]] entry has leak watch on%s" % (
            "" if config.critical else " (the config has no [[critical]] entries)"))
        return 0
    print("%-16s %7s %10s %16s %6s %9s %10s %10s" % ("NAME", "PID", "RSS", "SLOPE", "CONF", "STATUS",
                                                     "CEILING IN", "LINE IN"))
    for r in rows:
        pid = str(r["pid"]) if r["pid"] else "-"
        if "slope_kib_min" not in r:
            print("%-16s %7s %10s  %s" % (r["name"][:16], pid, _mib(r.get("rss_bytes")) if r["running"] else
                                          "not running", r["why"]))
            continue
        print("%-16s %7s %10s %+9.1f KiB/min %5.1f%% %9s %10s %10s" % (
            r["name"][:16], pid, _mib(r["rss_bytes"]) if r["running"] else "gone", r["slope_kib_min"],
            100 * r["confidence"], r["status"], duration(r["eta_ceiling_s"]), duration(r["eta_terminate_s"])))
        detail = "%d samples over %s of %s; %.0f%% of pairwise slopes agree; %s" % (
            r["samples"], duration(r["span_s"]), duration(r["window_s"]), 100 * r["agree"], r["reason"])
        print("    %s" % detail)
        if r["restarts"]:
            last = r["restarts"][-1]
            print("    %d restart(s), the last %s ago: pid %s -> %s%s" % (
                len(r["restarts"]), duration(last["ago_s"]), last["old_pid"], last["new_pid"],
                " (by the guardian)" if last["planned"] else ""))
        if r["last_leak_ago_s"] is not None:
            print("    last leak event %s ago; on_leak again in %s at the earliest" % (
                duration(r["last_leak_ago_s"]), duration(r["cooldown_left_s"])))
        if r["grew"]:
            print("    grew most over %s (pid %s), per /proc/PID/smaps:" % (duration(r["grew_over_s"]), r["grew_pid"]))
            for g in r["grew"]:
                print("      %10s  %-50s now %s" % ("+" + _kib(g["grew_bytes"]), g["mapping"], _kib(g["now_bytes"])))
    return 0
