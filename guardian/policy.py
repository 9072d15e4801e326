"""Decide: from what was sensed, what was remembered and the config, the next step and why.

Pure: no I/O and no clock. Every input is data (the daemon passes the time in), every output
is data (a Plan and the next PolicyState), so each policy question is a fast unit test.

The ladder: normal -> reclaim -> terminate -> kill. The rung is chosen afresh from each new
reading; hysteresis only governs when an episode of shortage is over (for reporting and for
"reclaim once per episode"), never makes the guardian act on a stale reading: after every
terminate or kill, the next act needs a reading taken after the victim is gone.
"""
from dataclasses import dataclass, field, replace
from typing import Collection, List, Mapping, Optional, Sequence, Tuple, Union

from guardian.config import MIB, Config, LowPriority
from guardian.kernel.procs import ProcInfo

NORMAL, RECLAIM, TERMINATE, KILL = 0, 1, 2, 3
RUNG_NAMES = ("normal", "reclaim", "terminate", "kill")


@dataclass(frozen=True)
class Reading:
    """One tick's view of the scope (the system, or one cgroup). Sizes in bytes."""

    time: float
    total: int  # MemTotal, or the cgroup's limit
    available: int  # MemAvailable, or limit - usage + reclaimable
    swap_total: int = 0
    swap_free: int = 0
    committed_as: Optional[int] = None
    commit_limit: Optional[int] = None
    overcommit_mode: Optional[int] = None
    psi_some_avg10: Optional[float] = None
    psi_full_avg10: Optional[float] = None
    high_order_free_percent: Optional[float] = None  # of free memory, in blocks order >= 4
    procs: Optional[Tuple[ProcInfo, ...]] = None  # None when not sampled this tick
    self_pid: int = 0
    # Other processes of the guardian itself (a onefile build's unpacker, our parent).
    own_pids: Tuple[int, ...] = ()
    oom_kills: Optional[int] = None  # the kernel OOM killer's count for the scope, when known


@dataclass(frozen=True)
class Recent:
    """What history says: the fill rate seen, and who grew over the growth window."""

    fill_rate: float = 0.0  # bytes/s: the peak of the last few seconds (decays fast)
    growth: Mapping[int, int] = field(default_factory=dict)  # pid -> bytes
    growth_span_s: float = 0.0


@dataclass(frozen=True)
class Lines:
    reclaim: int
    terminate: int
    kill: int
    hysteresis: int

    @property
    def reclaim_exit(self) -> int:
        """Available memory above which the system is at ease: the reclaim line plus hysteresis."""
        return self.reclaim + self.hysteresis


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Pending:
    """A graceful stop in progress: the victim, and when its grace ends."""

    pid: int
    starttime: int
    name: str
    since: float
    deadline: float


@dataclass(frozen=True)
class PolicyState:
    rung: int = NORMAL  # the sticky rung of the current episode (with hysteresis)
    pending: Optional[Pending] = None
    last_act_time: float = float("-inf")  # when the last terminate/kill completed
    last_reclaim_time: float = float("-inf")
    reclaimed_this_episode: bool = False
    # step name -> bytes it freed last time; a step that freed nothing is skipped next time.
    reclaim_freed: Tuple[Tuple[str, int], ...] = ()
    kills: int = 0
    terminations: int = 0
    kernel_oom_kills: Optional[int] = None  # the kernel's count at the last reading that had it


@dataclass(frozen=True)
class Plan:
    rung: int  # the rung the reading calls for now
    action: str  # "none", "wait", "reclaim", "terminate", "kill"
    reason: str
    lines: Lines
    victim: Optional[Victim] = None
    reclaim_steps: Tuple[str, ...] = ()
    needs_procs: bool = False  # the decision wanted a process table this reading lacked
    state: PolicyState = PolicyState()

    @property
    def rung_name(self) -> str:
        return RUNG_NAMES[self.rung]


def lines_for(reading: Reading, recent: Recent, config: Config) -> Lines:
    """The MemAvailable lines in bytes for this scope and the fill rate seen.

    The kill line covers what can arrive during one reaction at the observed fill rate, so a
    fast grower is caught before the kernel's own reserves are touched.
    """
    th = config.thresholds
    total = reading.total
    # All three lines move up together, so a fast fill still meets terminate before kill.
    margin = int(max(0.0, recent.fill_rate) * th.reaction_time_s)
    # Caps keep a wild rate, or floors meant for a bigger board, from acting on an idle scope.
    kill = min(th.kill.bytes_for(total) + margin, total // 2)
    terminate = max(min(th.terminate.bytes_for(total) + margin, total * 6 // 10), kill)
    reclaim = max(min(th.reclaim.bytes_for(total) + margin, total * 7 // 10), terminate)
    return Lines(reclaim, terminate, kill, int(total * th.hysteresis_percent / 100.0))


def rung_for(reading: Reading, lines: Lines, config: Config) -> Tuple[int, str]:
    """The rung the reading calls for, with the signal that called for it."""
    th = config.thresholds
    avail = reading.available
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
        if mem_rung > RECLAIM and reading.swap_total > 0:
            # With swap, memory is short only when swap is short too (as earlyoom does).
            swap_pct = 100.0 * reading.swap_free / reading.swap_total
            limit = th.swap_kill_percent if mem_rung == KILL else th.swap_terminate_percent
            if swap_pct >= limit:
                mem_rung = RECLAIM
                reason += ", but swap %.0f%% free (line %.0f%%)" % (swap_pct, limit)
            else:
                reason += " and swap %.0f%% free below %.0f%%" % (swap_pct, limit)
        raise_to(mem_rung, reason)

    if th.psi_full_terminate is not None and reading.psi_full_avg10 is not None:
        if reading.psi_full_avg10 >= th.psi_full_terminate:
            raise_to(TERMINATE, "PSI full avg10 %.1f%% >= %.1f%%" % (reading.psi_full_avg10, th.psi_full_terminate))
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
    if reading.available >= line + lines.hysteresis:
        return rung
    return state.rung


# ---------------------------------------------------------------------------------------------
# Victim choice


Pids = Union[int, Collection[int]]


def _pid_set(self_pid: Pids) -> Collection[int]:
    return (self_pid,) if isinstance(self_pid, int) else self_pid


def is_protected(proc: ProcInfo, roles: Mapping[int, object], self_pid: Pids, config: Config) -> Optional[str]:
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
    if proc.rss <= 0 or proc.rss < config.victims.min_rss_mib * MIB:
        return "holds almost no memory"
    return None


def _describe(p: ProcInfo, growth: int) -> str:
    return "%s[%d] rss %.1f MiB, oom_score %d, grew %.1f MiB" % (
        p.comm, p.pid, p.rss / MIB, p.oom_score, growth / MIB)


def choose_victim(procs: Sequence[ProcInfo], roles: Mapping[int, object], recent: Recent,
                  config: Config, total: int, self_pid: Pids) -> Optional[Victim]:
    """The process to end, and why; None when nothing may be ended.

    A clear culprit (most of the recent growth) goes first; else low-priority services in
    board order; else the highest oom_score, raised by recent growth.
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

    def make(p: ProcInfo, why: str, runner: Optional[ProcInfo], spared: str) -> Victim:
        role = roles.get(p.pid)
        low = isinstance(getattr(role, "entry", None), LowPriority) and role.kind == "low_priority"
        runner_text = ""
        if runner is not None:
            runner_text = "%s: %s" % (_describe(runner, grew(runner)), spared)
        return Victim(pid=p.pid, starttime=p.starttime, pgid=p.pgid, name=p.comm, rss=p.rss,
                      oom_score=p.oom_score, growth=grew(p), score=score(p), why=why,
                      runner_up=runner_text, stop=tuple(role.entry.stop) if low else (),
                      low_priority=low)

    by_growth = sorted(candidates, key=lambda p: (grew(p), p.rss), reverse=True)
    top = by_growth[0]
    top_growth = grew(top)
    culprit_min = min(vic.culprit_min_mib * MIB, total * vic.culprit_min_percent / 100.0)
    if (total_growth > 0 and top_growth >= culprit_min
            and top_growth >= vic.culprit_share * total_growth):
        runner = by_growth[1] if len(by_growth) > 1 else None
        why = "culprit: %s, %.0f%% of the %.1f MiB grown in %.0f s" % (
            _describe(top, top_growth), 100.0 * top_growth / total_growth, total_growth / MIB,
            recent.growth_span_s)
        return make(top, why, runner, "grew less")

    low_order = {entry.name: (entry.order, i) for i, entry in enumerate(config.low_priority)}
    lows = [p for p in candidates
            if getattr(roles.get(p.pid), "kind", "") == "low_priority"]
    if lows:
        lows.sort(key=lambda p: (low_order.get(roles[p.pid].entry.name, (0, 0)), -p.rss))
        first = lows[0]
        entry = roles[first.pid].entry
        why = "low priority '%s' (order %d), no clear culprit: %s" % (
            entry.name, entry.order, _describe(first, grew(first)))
        if len(lows) > 1:
            return make(first, why, lows[1], "later in board order")
        others = sorted((p for p in candidates if p is not first), key=score, reverse=True)
        return make(first, why, others[0] if others else None, "not low priority")

    ranked = sorted(candidates, key=lambda p: (score(p), p.rss), reverse=True)
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
           roles: Mapping[int, object], scope: str = "system") -> Plan:
    """The next step for this reading. Returns the Plan, whose .state the caller keeps."""
    lines = lines_for(reading, recent, config)
    rung, why = rung_for(reading, lines, config)
    sticky = _sticky_rung(state, rung, reading, lines)
    episode_over = sticky == NORMAL
    new_state = replace(state, rung=sticky,
                        reclaimed_this_episode=False if episode_over else state.reclaimed_this_episode)
    now = reading.time

    def plan(action: str, reason: str, **kw) -> Plan:
        return Plan(rung=rung, action=action, reason=reason, lines=lines, state=kw.pop("state", new_state), **kw)

    # The kernel OOM killer beat us to it: its victim's memory is on the way back. Ending one
    # of ours on this reading would be one too many; judge a reading taken after it settles.
    if reading.oom_kills is not None:
        new_state = replace(new_state, kernel_oom_kills=reading.oom_kills)
        if state.kernel_oom_kills is not None and reading.oom_kills > state.kernel_oom_kills and rung > NORMAL:
            new_state = replace(new_state, last_act_time=now)
            return plan("wait", "the kernel OOM killer ended %d process(es) since the last reading; judging again "
                        "after its memory returns; %s" % (reading.oom_kills - state.kernel_oom_kills, why))

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
            victim = Victim(pid=pend.pid, starttime=pend.starttime, pgid=victim_proc.pgid,
                            name=pend.name, rss=victim_proc.rss, oom_score=victim_proc.oom_score,
                            growth=recent.growth.get(pend.pid, 0), score=0.0,
                            why="did not stop within its grace (%.1f s)" % (now - pend.since)
                            if rung < KILL else "still running and %s" % why,
                            runner_up="")
            return plan("kill", why, victim=victim, state=replace(new_state, pending=None))
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

    if rung == RECLAIM or (rung == TERMINATE and not state.reclaimed_this_episode):
        if now - state.last_reclaim_time >= config.actions.reclaim_interval_s:
            steps = _reclaim_steps(reading, state, config, scope)
            if steps:
                return plan("reclaim", why, reclaim_steps=steps)
        if rung == RECLAIM:
            return plan("none", why + " (reclaim rate-limited or nothing left to try)")

    if reading.procs is None:
        return plan("wait", why + "; need the process table", needs_procs=True)
    victim = choose_victim(reading.procs, roles, recent, config, reading.total,
                           (reading.self_pid,) + tuple(reading.own_pids))
    if victim is None:
        return plan("none", why + "; no process may be ended")
    if rung == KILL:
        return plan("kill", why, victim=victim)
    return plan("terminate", why, victim=victim)


# ---------------------------------------------------------------------------------------------
# State after an act (the daemon reports what happened; still pure)


def after_reclaim(state: PolicyState, now: float, freed: Mapping[str, int]) -> PolicyState:
    """Record what each step freed. A step skipped this time (it freed nothing before) loses
    its record, so it is tried again next time: a one-off miss does not disable it for good."""
    merged = {step: got for step, got in state.reclaim_freed if step in freed or got != 0}
    merged.update(freed)
    return replace(state, last_reclaim_time=now, reclaimed_this_episode=True,
                   reclaim_freed=tuple(sorted(merged.items())))


def after_terminate(state: PolicyState, victim: Victim, now: float, grace_s: float) -> PolicyState:
    return replace(state, terminations=state.terminations + 1,
                   pending=Pending(victim.pid, victim.starttime, victim.name, now, now + grace_s))


def after_kill(state: PolicyState, now: float) -> PolicyState:
    """`now` is when the victim's exit was confirmed (or the wait for it gave up)."""
    return replace(state, kills=state.kills + 1, pending=None, last_act_time=now)


def after_dry_run(state: PolicyState, until: float) -> PolicyState:
    """A dry run "acted": stay quiet until `until` instead of repeating the same line."""
    return replace(state, pending=None, last_act_time=until)


def rank_candidates(procs: Sequence[ProcInfo], roles: Mapping[int, object], recent: Recent, config: Config,
                    total: int, self_pid: Pids) -> List[Tuple[ProcInfo, float]]:
    """Every process that may be ended, best victim first, by oom_score raised by growth."""
    out = []
    for p in procs:
        if is_protected(p, roles, self_pid, config) is None:
            out.append((p, p.oom_score + 1000.0 * max(0, recent.growth.get(p.pid, 0)) / max(total, 1)))
    out.sort(key=lambda item: (item[1], item[0].rss), reverse=True)
    return out


def after_gone(state: PolicyState, now: float) -> PolicyState:
    """The chosen victim was gone before it could be signalled."""
    return replace(state, pending=None, last_act_time=now)
