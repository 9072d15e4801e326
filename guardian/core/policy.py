"""Decide: from what was sensed, what was remembered and the config, the next step and why.

Pure: no I/O and no clock. Every input is data (the daemon passes the time in), every output
is data (a Plan and the next PolicyState), so each policy question is a fast unit test.

The ladder: normal -> reclaim -> terminate -> kill. The rung is chosen afresh from each new
reading; hysteresis only governs when an episode of shortage is over (for reporting and for
"reclaim once per episode"), never makes the guardian act on a stale reading: after every
terminate or kill, the next act needs a reading taken after the victim is gone.
"""
from __future__ import annotations

from guardian.config import MIB, Config, LowPriority
from guardian.core.match import Role
from guardian.core.reading import Reading
from guardian.kernel.procs import ProcInfo
from guardian.record import field, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Collection, List, Mapping, Optional, Sequence, Tuple, Union

    Pids = Union[int, Collection[int]]

NORMAL, RECLAIM, TERMINATE, KILL = 0, 1, 2, 3
RUNG_NAMES = ("normal", "reclaim", "terminate", "kill")
# Reclaim only while the kill line is at least this far away at the fill rate seen (or twice
# what the last reclaim pass took, when that is longer).
RECLAIM_MIN_TIME_S = 1.0
# Full stalls (PSI) above the reclaim line call for reclaim first; still there this long after
# a reclaim pass (the span of avg10), they call for terminate.
PSI_FULL_AFTER_RECLAIM_S = 10.0
# At the terminate rung with the kill line closer than this at the fill seen, a victim without a
# stop command is killed (SIGTERM first) rather than given a grace.
GRACE_MIN_TIME_S = 0.25
# A kill asks with SIGTERM first for at most this long, and only for half the time the fill
# needs to reach the lower half of the kill line; under TERM_FIRST_MIN_S it is SIGKILL at once.
TERM_FIRST_MAX_S = 0.1
TERM_FIRST_MIN_S = 0.02


@record
class Ended:
    """A process the guardian or the kernel ended lately: what a respawn of it looks like."""

    pid: int
    starttime: int
    comm: str
    ppid: int
    uid: int
    cgroup: str
    time: float  # when it was ended (the daemon's clock)
    by: str  # "guardian" or "kernel"
    # The least starttime a respawn can have (clock ticks after boot, the clock of starttime): the
    # guardian's end, or for the kernel's the table before it, where the process was still alive.
    # A sibling forked in the same tick shares its starttime, and is no respawn of it. 0: unknown.
    born_after: int = 0


@record
class Recent:
    """What history says: the fill rate seen, who grew over the growth window, who was ended."""

    fill_rate: float = 0.0  # bytes/s: the peak of the last few seconds (decays fast)
    fill_now: float = 0.0  # bytes/s over the last second of readings (history.FillRate.recent)
    # bytes/s: the fastest fill of the last minutes (kept across kills): how little time there
    # may be, when a respawn or a second runaway starts at the same pace
    fill_rate_long: float = 0.0
    growth: Mapping[int, int] = field(default_factory=dict)  # pid -> bytes
    growth_span_s: float = 0.0
    growth_rate: float = 0.0  # bytes/s the processes grow at together (history.Growth.rate)
    ended: Tuple[Ended, ...] = ()  # the last minute's, oldest first


@record
class Lines:
    reclaim: int
    terminate: int
    kill: int
    hysteresis: int

    @property
    def reclaim_exit(self) -> int:
        """Available memory above which the system is at ease: the reclaim line plus hysteresis."""
        return self.reclaim + self.hysteresis


@record
class Victim:
    pid: int
    starttime: int
    pgid: int
    name: str
    rss: int
    oom_score: int
    growth: int
    score: float
    why: str  # why this one, with numbers
    runner_up: str  # why the next best was spared, or "" when it was the only one
    stop: Tuple[str, ...] = ()  # graceful stop argv from the board; empty means SIGTERM
    low_priority: bool = False
    ppid: int = 0
    uid: int = -1
    cgroup: str = ""
    respawns: int = 0  # how often a process like it was ended in the last minute


@record
class Pending:
    """A graceful stop in progress: the victim, and when its grace ends."""

    pid: int
    starttime: int
    name: str
    since: float
    deadline: float
    respawns: int = 0  # the victim was a respawn of a process ended lately


@record
class PolicyState:
    rung: int = NORMAL  # the sticky rung of the current episode (with hysteresis)
    pending: Optional[Pending] = None
    last_act_time: float = float("-inf")  # when the last terminate/kill completed
    last_reclaim_time: float = float("-inf")
    reclaimed_this_episode: bool = False
    # step name -> bytes it freed last time; a step that freed nothing is skipped next time.
    reclaim_freed: Tuple[Tuple[str, int], ...] = ()
    reclaim_cost_s: float = 0.0  # how long the last reclaim pass blocked the loop
    kills: int = 0
    terminations: int = 0
    kernel_oom_kills: Optional[int] = None  # the kernel's count at the last reading that had it


@record
class Plan:
    rung: int  # the rung the reading calls for now
    action: str  # "none", "wait", "reclaim", "terminate", "kill"
    reason: str
    lines: Lines
    victim: Optional[Victim] = None
    reclaim_steps: Tuple[str, ...] = ()
    needs_procs: bool = False  # the decision wanted a process table this reading lacked
    # The kernel OOM killer fired since the last reading: decide again on a reading taken once
    # its victim's memory is back (Reading.oom_settled).
    needs_settle: bool = False
    # A kill first sends SIGTERM and waits this long for the exit before SIGKILL, where the
    # fill leaves time (0: SIGKILL at once). A load generator ends a worker that is asked to
    # and restarts one that is SIGKILLed, as the kernel's victims are.
    term_first_s: float = 0.0
    state: PolicyState = PolicyState()


def lines_for(reading: Reading, recent: Recent, config: Config) -> Lines:
    """The MemAvailable lines in bytes for this scope and the fill rate seen.

    The kill line covers what can arrive during one reaction at the observed fill rate, so a
    fast grower is caught before the kernel's own reserves are touched.
    """
    return lines_at(reading.total, recent.fill_rate, config)


# The board's own lines for one total: (thresholds, total, (reclaim, terminate, kill, hysteresis)).
# A quiet wake-up asks for the lines several times a second, for the same total.
_base_lines: Tuple[Any, int, Tuple[int, int, int, int]] = (None, -1, (0, 0, 0, 0))


def lines_at(total: int, fill_rate: float, config: Config) -> Lines:
    """lines_for, from the total and the fill rate alone."""
    global _base_lines
    th = config.thresholds
    if _base_lines[0] is not th or _base_lines[1] != total:
        _base_lines = (th, total, (th.reclaim.bytes_for(total), th.terminate.bytes_for(total),
                                   th.kill.bytes_for(total), int(total * th.hysteresis_percent / 100.0)))
    reclaim_base, terminate_base, kill_base, hysteresis = _base_lines[2]
    # All three lines move up together, so a fast fill still meets terminate before kill. The
    # lower half of the kill line is slack the board's own lines already hold: a fill that one
    # reaction cannot carry past it raises nothing. Lines raised by a moderate fill would end
    # a second process of a diffuse growth whose end state fits (one too many).
    slack = kill_base // 2
    margin = int(max(0.0, max(0.0, fill_rate) * th.reaction_time_s - slack))
    # Caps keep a wild rate, or floors meant for a bigger board, from acting on an idle scope.
    kill = min(kill_base + margin, total // 2)
    terminate = max(min(terminate_base + margin, total * 6 // 10), kill)
    reclaim = max(min(reclaim_base + margin, total * 7 // 10), terminate)
    return Lines(reclaim, terminate, kill, hysteresis)


def rung_for(reading: Reading, lines: Lines, config: Config) -> Tuple[int, str]:
    """The rung the reading calls for, with the signal that called for it."""
    th = config.thresholds
    avail = reading.headroom
    mib = avail / MIB
    rung, why = NORMAL, "available %.0f MiB above the reclaim line %.0f MiB" % (mib, lines.reclaim / MIB)

    def raise_to(new: int, reason: str) -> None:
        nonlocal rung, why
        if new > rung:
            rung, why = new, reason

    if avail < lines.kill:
        mem_rung, line_name, line = KILL, "kill", lines.kill
    elif avail < lines.terminate:
        mem_rung, line_name, line = TERMINATE, "terminate", lines.terminate
    elif avail < lines.reclaim:
        mem_rung, line_name, line = RECLAIM, "reclaim", lines.reclaim
    else:
        mem_rung, line_name, line = NORMAL, "", 0
    if mem_rung > NORMAL:
        reason = "available %.1f MiB below the %s line %.1f MiB" % (mib, line_name, line / MIB)
        if reading.zram_relief:
            reason += " (MemAvailable %.1f MiB + %.1f MiB zram can still take in)" % (
                reading.available / MIB, reading.zram_relief / MIB)
        disk_total = reading.swap_total - reading.zram_swap_total
        if mem_rung > RECLAIM and disk_total > 0:
            # With swap on a disk, memory is short only when swap is short too (as earlyoom
            # does). Swap on zram is RAM: it is counted in the headroom, never as a reprieve.
            swap_pct = 100.0 * max(0, reading.swap_free - reading.zram_swap_free) / disk_total
            limit = th.swap_kill_percent if mem_rung == KILL else th.swap_terminate_percent
            if swap_pct >= limit:
                mem_rung = RECLAIM
                reason += ", but swap %.0f%% free (line %.0f%%)" % (swap_pct, limit)
            else:
                reason += " and swap %.0f%% free below %.0f%%" % (swap_pct, limit)
        raise_to(mem_rung, reason)

    if th.psi_full_terminate is not None and reading.psi_full_avg10 is not None:
        if reading.psi_full_avg10 >= th.psi_full_terminate:
            # Stalls with memory above the reclaim line are page cache churning (refaults),
            # which reclaim can answer: ending a process for them ends one that fits.
            full_rung = TERMINATE if avail < lines.reclaim else RECLAIM
            raise_to(full_rung, "PSI full avg10 %.1f%% >= %.1f%%%s" % (
                reading.psi_full_avg10, th.psi_full_terminate,
                "" if full_rung == TERMINATE else " with %.0f MiB available (reclaim first)" % mib))
    if th.psi_some_reclaim is not None and reading.psi_some_avg10 is not None:
        if reading.psi_some_avg10 >= th.psi_some_reclaim:
            raise_to(RECLAIM, "PSI some avg10 %.1f%% >= %.1f%%" % (reading.psi_some_avg10, th.psi_some_reclaim))

    if reading.overcommit_mode == 2 and reading.commit_limit and reading.committed_as is not None:
        pct = 100.0 * reading.committed_as / reading.commit_limit
        if pct >= th.commit_kill_percent:
            raise_to(KILL, "commit charge %.1f%% of CommitLimit >= %.1f%%" % (pct, th.commit_kill_percent))
        elif pct >= th.commit_terminate_percent:
            raise_to(TERMINATE, "commit charge %.1f%% of CommitLimit >= %.1f%%" % (pct, th.commit_terminate_percent))
    return rung, why


def _sticky_rung(state: PolicyState, rung: int, reading: Reading, lines: Lines) -> int:
    """The episode's rung: it rises at once and falls only past the line plus hysteresis."""
    if rung >= state.rung:
        return rung
    line = {RECLAIM: lines.reclaim, TERMINATE: lines.terminate, KILL: lines.kill}[state.rung]
    if reading.headroom >= line + lines.hysteresis:
        return rung
    return state.rung


# ---------------------------------------------------------------------------------------------
# Victim choice


def _pid_set(self_pid: Pids) -> Collection[int]:
    return (self_pid,) if isinstance(self_pid, int) else self_pid


def is_protected(proc: ProcInfo, roles: Mapping[int, Role], self_pid: Pids, config: Config) -> Optional[str]:
    """Why this process may never be a victim, or None if it may be. `self_pid` is the
    guardian's PID, or all of its processes."""
    if proc.pid == 1:
        return "PID 1"
    if proc.kthread:
        return "kernel thread"
    if proc.pid in _pid_set(self_pid):
        return "the guardian itself"
    if proc.oom_score_adj == -1000:
        return "oom_score_adj -1000"
    role = roles.get(proc.pid)
    if role is not None and getattr(role, "kind", "") == "critical":
        return "critical (%s)" % role.entry.name
    if proc.comm in config.victims.ignore_names:
        return "ignored by name"
    if proc.held <= 0 or proc.held < config.victims.min_rss_mib * MIB:
        return "holds almost no memory"
    return None


def _describe(p: ProcInfo, growth: int) -> str:
    swapped = ", swap %.1f MiB" % (p.swap / MIB) if p.swap else ""
    return "%s[%d] rss %.1f MiB%s, oom_score %d, grew %.1f MiB" % (
        p.comm, p.pid, p.rss / MIB, swapped, p.oom_score, growth / MIB)


# A process that made this share of the growth is the culprit whatever its size (above min_rss).
SOLE_GROWER_SHARE = 0.9
# An ended process that comes back within this long, with the same name, owner and parent (or
# cgroup), is the same runaway respawned.
RESPAWN_WINDOW_S = 60.0
# A low-priority service goes first only when the memory it frees lasts at least this long at
# the fill rate seen: stopping an idle bystander that the growth eats within a second only
# adds an end.
LOW_PRIORITY_MIN_BUY_S = 1.0


def respawn_of(p: ProcInfo, ended: Sequence[Ended], now: float) -> List[Ended]:
    """The recent ends that `p` is a respawn of: same comm and owner, and the same parent or
    the same (non-root) cgroup; a process born after the end (another identity)."""
    out = []
    for e in ended:
        if now - e.time > RESPAWN_WINDOW_S or (e.pid, e.starttime) == (p.pid, p.starttime):
            continue
        if p.starttime < max(e.starttime, e.born_after) or e.comm != p.comm or e.uid != p.uid:
            continue
        if p.ppid == e.ppid and p.ppid > 1 or (e.cgroup and e.cgroup == p.cgroup and p.cgroup not in ("/", "0::/")):
            out.append(e)
    return out


def _respawn_text(p: ProcInfo, came_back: Sequence[Ended], now: float) -> str:
    last = came_back[-1]
    return "respawn of %s[%d] (ended by the %s %.1f s ago; %d end(s) of it in the last %.0f s; parent [%d])" % (
        last.comm, last.pid, last.by, now - last.time, len(came_back), RESPAWN_WINDOW_S, p.ppid)


def choose_victim(procs: Sequence[ProcInfo], roles: Mapping[int, Role], recent: Recent,
                  config: Config, total: int, self_pid: Pids, now: float = 0.0) -> Optional[Victim]:
    """The process to end, and why; None when nothing may be ended.

    A respawn of a process ended lately that grows again goes first (the same runaway; its
    parent instead when the board lists that parent as a low-priority service); then a clear
    culprit (most of the recent growth); else low-priority services in board order, while
    what they free would last; else the highest oom_score, raised by recent growth.
    """
    vic = config.victims
    own = _pid_set(self_pid)
    candidates = [p for p in procs if is_protected(p, roles, own, config) is None]
    if not candidates:
        return None
    growth = recent.growth
    total_growth = sum(g for pid, g in growth.items() if g > 0)

    def grew(p: ProcInfo) -> int:
        return growth.get(p.pid, 0)

    def score(p: ProcInfo) -> float:
        return p.oom_score + 1000.0 * max(0, grew(p)) / max(total, 1)

    def low_entry(p: ProcInfo) -> Optional[LowPriority]:
        """The [[low_priority]] entry p has the role of, or None."""
        role = roles.get(p.pid)
        if role is not None and role.kind == "low_priority" and isinstance(role.entry, LowPriority):
            return role.entry
        return None

    def make(p: ProcInfo, why: str, runner: Optional[ProcInfo], spared: str, respawns: int = 0) -> Victim:
        low = low_entry(p)
        runner_text = ""
        if runner is not None:
            runner_text = "%s: %s" % (_describe(runner, grew(runner)), spared)
        return Victim(pid=p.pid, starttime=p.starttime, pgid=p.pgid, name=p.comm, rss=p.held,
                      oom_score=p.oom_score, growth=grew(p), score=score(p), why=why,
                      runner_up=runner_text, stop=tuple(low.stop) if low is not None else (),
                      low_priority=low is not None, ppid=p.ppid, uid=p.uid, cgroup=p.cgroup, respawns=respawns)

    by_growth = sorted(candidates, key=lambda p: (grew(p), p.held), reverse=True)

    # A runaway that was ended and came back: it is the culprit from its first reading.
    if recent.ended:
        back = [(p, respawn_of(p, recent.ended, now)) for p in by_growth if grew(p) > 0]
        back = [(p, came) for p, came in back if came]
        if back:
            p, came = back[0]
            text = _respawn_text(p, came, now)
            parent = next((q for q in candidates if q.pid == p.ppid), None)
            entry = low_entry(parent) if parent is not None else None
            if parent is not None and entry is not None:
                why = "parent of a respawning runaway, low priority '%s': %s; %s" % (
                    entry.name, _describe(parent, grew(parent)), text)
                return make(parent, why, p, "the child; its parent respawns it", len(came))
            why = "%s: %s; its parent is no listed service, so the child is ended again" % (
                text, _describe(p, grew(p)))
            runner = next((q for q in by_growth if q is not p), None)
            return make(p, why, runner, "not a respawn" if runner is not None else "", len(came))

    top = by_growth[0]
    top = by_growth[0]
    top_growth = grew(top)
    culprit_min = min(vic.culprit_min_mib * MIB, total * vic.culprit_min_percent / 100.0)
    # A small grower is the culprit too when it makes nearly all of the growth: a runaway seen
    # at its first MiBs beside an idle service (the lines of a full 128 MiB board are crossed
    # after 2 MiB), which the highest score would have spared.
    candidates_growth = sum(max(0, grew(p)) for p in candidates)
    sole = top_growth >= vic.min_rss_mib * MIB and top_growth >= SOLE_GROWER_SHARE * candidates_growth
    if (total_growth > 0 and (sole or (top_growth >= culprit_min and top_growth >= vic.culprit_share * total_growth))):
        runner = by_growth[1] if len(by_growth) > 1 else None
        why = "culprit: %s, %.0f%% of the %.1f MiB grown in %.0f s" % (
            _describe(top, top_growth), 100.0 * top_growth / total_growth, total_growth / MIB,
            recent.growth_span_s)
        return make(top, why, runner, "grew less")

    low_order = {entry.name: (entry.order, i) for i, entry in enumerate(config.low_priority)}
    lows = [p for p in candidates
            if getattr(roles.get(p.pid), "kind", "") == "low_priority"]
    fill = max(0.0, recent.fill_rate)
    if recent.growth_rate > 0:
        # What eats a stopped service's memory is the growers' own pace, not the burst between
        # two glances (an allocator catching up after a stall in reclaim: 127 MiB/s seen where
        # three workers grew 9 together).
        fill = min(fill, recent.growth_rate)
    if lows and fill > 0 and max(p.held for p in lows) < fill * LOW_PRIORITY_MIN_BUY_S:
        # What they hold lasts under a second at this fill: no remedy, and no victim while
        # anything else may be ended.
        idle = {p.pid for p in lows if grew(p) <= 0}
        if len(idle) < len(candidates):
            candidates = [p for p in candidates if p.pid not in idle]
        lows = []
    if lows:
        lows.sort(key=lambda p: (low_order.get(roles[p.pid].entry.name, (0, 0)), -p.held))
        first = lows[0]
        low: LowPriority = roles[first.pid].entry  # type: ignore[assignment]  # lows have low_priority roles
        why = "low priority '%s' (order %d), no clear culprit: %s" % (
            low.name, low.order, _describe(first, grew(first)))
        if len(lows) > 1:
            return make(first, why, lows[1], "later in board order")
        others = sorted((p for p in candidates if p is not first), key=score, reverse=True)
        return make(first, why, others[0] if others else None, "not low priority")

    ranked = sorted(candidates, key=lambda p: (score(p), p.held), reverse=True)
    best = ranked[0]
    why = "highest score %.0f (oom_score %d + growth %.1f MiB): %s" % (
        score(best), best.oom_score, grew(best) / MIB, _describe(best, grew(best)))
    runner = ranked[1] if len(ranked) > 1 else None
    spared = "score %.0f lower" % score(runner) if runner is not None else ""
    return make(best, why, runner, spared)


# ---------------------------------------------------------------------------------------------
# The decision


def _reclaim_steps(reading: Reading, state: PolicyState, config: Config, scope: str) -> Tuple[str, ...]:
    """Compaction and cache drops act on the whole machine: only in system scope. A cgroup
    gets memory.reclaim (v2); v1 has no per-cgroup reclaim knob."""
    act = config.actions
    freed = dict(state.reclaim_freed)
    steps: List[str] = []
    if scope == "cgroup-v2" and freed.get("cgroup_reclaim", 1) > 0:
        return ("cgroup_reclaim",)
    if scope != "system":
        return ()
    if (act.compact and reading.high_order_free_percent is not None
            and reading.high_order_free_percent < act.compact_high_order_percent
            and freed.get("compact", 1) != 0):
        steps.append("compact")
    if act.drop_caches_level and freed.get("drop_caches", 1) > 0:
        steps.append("drop_caches")
    return tuple(steps)


def decide(reading: Reading, recent: Recent, state: PolicyState, config: Config,
           roles: Mapping[int, Role], scope: str = "system") -> Plan:
    """The next step for this reading. Returns the Plan, whose .state the caller keeps."""
    lines = lines_for(reading, recent, config)
    rung, why = rung_for(reading, lines, config)
    th = config.thresholds
    if (rung == RECLAIM and th.psi_full_terminate is not None and reading.psi_full_avg10 is not None
            and reading.psi_full_avg10 >= th.psi_full_terminate and state.reclaimed_this_episode
            and reading.time - state.last_reclaim_time >= PSI_FULL_AFTER_RECLAIM_S):
        # Full stalls that outlast a reclaim pass are thrashing reclaim does not answer (the
        # file pages MemAvailable counts cannot come back in time): the ladder goes on.
        rung, why = TERMINATE, "PSI full avg10 %.1f%% >= %.1f%% still, %.0f s after reclaim: thrashing" % (
            reading.psi_full_avg10, th.psi_full_terminate, reading.time - state.last_reclaim_time)
    sticky = _sticky_rung(state, rung, reading, lines)
    episode_over = sticky == NORMAL
    new_state = replace(state, rung=sticky,
                        reclaimed_this_episode=False if episode_over else state.reclaimed_this_episode)
    now = reading.time

    def plan(action: str, reason: str, **kw) -> Plan:
        return Plan(rung=rung, action=action, reason=reason, lines=lines, state=kw.pop("state", new_state), **kw)

    # The kernel OOM killer beat us to it: its victim's memory is on the way back. Ending one
    # of ours on a reading taken before it is back would be one too many; on a reading taken
    # after, still below a line, standing aside would only let the kernel kill again (a load
    # generator respawns what it loses): act at once.
    kernel_killed = 0
    if reading.oom_kills is not None:
        new_state = replace(new_state, kernel_oom_kills=reading.oom_kills)
        if state.kernel_oom_kills is not None and reading.oom_kills > state.kernel_oom_kills:
            kernel_killed = reading.oom_kills - state.kernel_oom_kills
            if rung > NORMAL and not reading.oom_settled:
                return plan("wait", "the kernel OOM killer ended %d process(es) since the last reading; judging "
                            "again once its memory is back; %s" % (kernel_killed, why), needs_settle=True)
            if rung > NORMAL:
                why += "; the kernel OOM killer ended %d process(es) since the last reading, and its memory is " \
                       "back" % kernel_killed

    # A graceful stop in progress: watch it, escalate early, or kill it when its grace ends.
    if state.pending is not None:
        pend = state.pending
        alive = reading.procs is None or any(
            p.pid == pend.pid and p.starttime == pend.starttime for p in reading.procs)
        if reading.procs is None:
            return plan("wait", "graceful stop of %s[%d] in progress" % (pend.name, pend.pid), needs_procs=True)
        if not alive:
            new_state = replace(new_state, pending=None, last_act_time=now)
            return plan("wait", "%s[%d] stopped; judging again after it settles" % (pend.name, pend.pid),
                        state=new_state)
        victim_proc = next(p for p in reading.procs if p.pid == pend.pid)
        if rung >= KILL or (now >= pend.deadline and rung >= TERMINATE):
            escalated = Victim(pid=pend.pid, starttime=pend.starttime, pgid=victim_proc.pgid,
                               name=pend.name, rss=victim_proc.held, oom_score=victim_proc.oom_score,
                               growth=recent.growth.get(pend.pid, 0), score=0.0,
                               why="did not stop within its grace (%.1f s)" % (now - pend.since)
                               if rung < KILL else "still running and %s" % why,
                               runner_up="")
            return plan("kill", why, victim=escalated, state=replace(new_state, pending=None))
        if now >= pend.deadline:
            # Grace over but memory recovered: leave it be.
            return plan("none", "%s[%d] still running after its grace, but %s" % (pend.name, pend.pid, why),
                        state=replace(new_state, pending=None))
        return plan("wait", "grace of %s[%d] runs %.1f s more; %s" % (
            pend.name, pend.pid, pend.deadline - now, why))

    if rung == NORMAL:
        return plan("none", why)

    # The last act must have shown its effect before the next one.
    if now < state.last_act_time + config.actions.settle_s:
        return plan("wait", "settling after the last act; " + why)

    # Reclaim blocks the loop (drop_caches took up to 0.45 s on a small board): while memory
    # falls towards the kill line faster than that, giving back comes too late.
    reclaim_budget_s = max(RECLAIM_MIN_TIME_S, 2.0 * state.reclaim_cost_s)
    rate = max(0.0, recent.fill_rate, recent.fill_rate_long)
    no_time = rate > 0 and (reading.headroom - lines.kill) / rate < reclaim_budget_s
    if no_time and rung >= RECLAIM:
        why += "; no time to reclaim (kill line %.1f s away at %.0f MiB/s)" % (
            max(0.0, reading.headroom - lines.kill) / rate, rate / MIB)
    grew_enough = min(config.victims.culprit_min_mib * MIB, reading.total * config.victims.culprit_min_percent / 100.0)
    grown_total = sum(g for g in recent.growth.values() if g > 0)
    early = (rung == RECLAIM and lines.terminate <= reading.headroom < lines.reclaim and recent.fill_now > 0
             and 0 < grew_enough <= grown_total
             and rung_for(replace(reading, available=reading.available - int(recent.fill_now * th.reaction_time_s)),
                          lines, config)[0] == KILL)
    if early:
        # The terminate line lies between, and the kill line is nearer than one reaction (what
        # it is sized for): by the next reading memory is past both, and later still when the
        # guardian is stalled in reclaim itself (a zram VM lost to the kernel this way: the
        # last reading saw 2 MiB above the kill line at 49 MiB/s, the next came 0.3 s late).
        # Only by memory (not PSI's reclaim rung), at the fill of the last second of readings
        # (not a peak that decays over seconds after a burst is over), only while something
        # grows and only to end a grower (a fill no process makes is not answered by an end),
        # and only where the reading a reaction on calls for the kill rung itself: free swap on
        # a disk still stands aside.
        rung = TERMINATE
        why += "; the kill line is closer than one reaction (%.2f s): terminate now" % th.reaction_time_s
    if not no_time and (rung == RECLAIM or (rung == TERMINATE and not state.reclaimed_this_episode)):
        if now - state.last_reclaim_time >= config.actions.reclaim_interval_s:
            steps = _reclaim_steps(reading, state, config, scope)
            if steps:
                return plan("reclaim", why, reclaim_steps=steps)
    if rung == RECLAIM:  # the reclaim rung never ends a process
        return plan("none", why + (" (reclaim rate-limited or nothing left to try)" if not no_time else ""))

    if reading.procs is None:
        return plan("wait", why + "; need the process table", needs_procs=True)
    victim = choose_victim(reading.procs, roles, recent, config, reading.total,
                           (reading.self_pid,) + tuple(reading.own_pids), now)
    if victim is None:
        return plan("none", why + "; no process may be ended")
    if (victim.growth < grew_enough and reading.headroom < lines.terminate
            and reading.headroom >= lines_for(reading, Recent(), config).terminate
            and grown_total < grew_enough):
        # Only the fill-rate margin calls for an end, and nothing grew: the burst that raised
        # the lines is over (an idle web UI was stopped this way after stress-ng had left, its
        # respawns' pace still raising the lines). Where workers still grow in bursts, the low-
        # priority service chosen before them is no grower either, and the next burst comes.
        return plan("none", why + "; only the fill-rate margin calls for an end, and %s[%d] grew %.1f MiB"
                    % (victim.name, victim.pid, victim.growth / MIB))
    if early and victim.growth < grew_enough:
        return plan("none", why + "; but %s[%d] grew %.1f MiB: no end ahead of the terminate line" % (
            victim.name, victim.pid, victim.growth / MIB))
    if rung == KILL:
        return plan("kill", why, victim=victim, term_first_s=term_first_time(reading, recent, config))
    if rate > 0 and (reading.headroom - lines.kill) / rate < GRACE_MIN_TIME_S and not victim.stop:
        # A grace where the kill line is a moment away is time the kernel wins in (a graceful
        # stop is watched and escalated at the kill line, but the next wake may come too
        # late): SIGTERM, and SIGKILL if it is still there when the fill leaves no more.
        return plan("kill", why + "; no time for a grace", victim=victim,
                    term_first_s=term_first_time(reading, recent, config))
    return plan("terminate", why, victim=victim)


def term_first_time(reading: Reading, recent: Recent, config: Config) -> float:
    """How long a kill may wait on SIGTERM before SIGKILL: half the time the fill seen (or
    assumed) needs to take the headroom down to the lower half of the kill line."""
    reserve = config.thresholds.kill.bytes_for(reading.total) // 2
    rate = max(recent.fill_rate, recent.fill_rate_long, config.wait.assumed_fill_rate_mib_s * MIB)
    wait = min(TERM_FIRST_MAX_S, 0.5 * (reading.headroom - reserve) / rate)
    return wait if wait >= TERM_FIRST_MIN_S else 0.0


# ---------------------------------------------------------------------------------------------
# State after an act (the daemon reports what happened; still pure)


def after_reclaim(state: PolicyState, now: float, freed: Mapping[str, int], cost_s: float = 0.0) -> PolicyState:
    """Record what each step freed and how long the pass blocked the loop. A step skipped
    this time (it freed nothing before) loses its record, so it is tried again next time: a
    one-off miss does not disable it for good."""
    merged = {step: got for step, got in state.reclaim_freed if step in freed or got != 0}
    merged.update(freed)
    return replace(state, last_reclaim_time=now, reclaimed_this_episode=True,
                   reclaim_freed=tuple(sorted(merged.items())), reclaim_cost_s=max(0.0, cost_s))


def after_terminate(state: PolicyState, victim: Victim, now: float, grace_s: float) -> PolicyState:
    return replace(state, terminations=state.terminations + 1,
                   pending=Pending(victim.pid, victim.starttime, victim.name, now, now + grace_s, victim.respawns))


def after_kill(state: PolicyState, now: float) -> PolicyState:
    """`now` is when the victim's exit was confirmed (or the wait for it gave up)."""
    return replace(state, kills=state.kills + 1, pending=None, last_act_time=now)


def after_dry_run(state: PolicyState, until: float) -> PolicyState:
    """A dry run "acted": stay quiet until `until` instead of repeating the same line."""
    return replace(state, pending=None, last_act_time=until)


def rank_candidates(procs: Sequence[ProcInfo], roles: Mapping[int, Role], recent: Recent, config: Config,
                    total: int, self_pid: Pids) -> List[Tuple[ProcInfo, float]]:
    """Every process that may be ended, best victim first, by oom_score raised by growth."""
    out = []
    for p in procs:
        if is_protected(p, roles, self_pid, config) is None:
            out.append((p, p.oom_score + 1000.0 * max(0, recent.growth.get(p.pid, 0)) / max(total, 1)))
    out.sort(key=lambda item: (item[1], item[0].held), reverse=True)
    return out


def after_gone(state: PolicyState, now: float) -> PolicyState:
    """The chosen victim was gone before it could be signalled."""
    return replace(state, pending=None, last_act_time=now)
