"""What the leak watch does once a process looks like it leaks: the smaps evidence, the leak
event, the on_leak command and the check of its outcome (guardian/core/parts/leakwatch.py
samples and judges; this is the rest).

The watcher imports this module the first time a process rises or crosses its ceiling, not at
start: a daemon whose watched processes stay flat never holds it (about 35 KiB of its memory
at rest). It is read then, before the leak fires (a rise earns a smaps baseline first), and a
leak is a trend over minutes, not the moment memory runs out; the memory ladder's own acts are
all loaded at start.
"""
from __future__ import annotations

import _thread  # not threading (~0.7 MiB resident): one thread per on_leak command

from guardian.actions.run import run
from guardian.analysis.trend import Projection, Trend, duration, estimate
from guardian.config import Critical, LeakWatch
from guardian.core.parts.leakstate import Series
from guardian.core.parts.leakwatch import (COMMAND_TIMEOUT_MIN_S, KIB, LeakWatcher, mib_text, rising,
                                           size_text, tenths)
from guardian.kernel.procs import ProcInfo
from guardian.kernel.smaps import read_smaps, smaps_growth

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["Action", "smaps_step", "fire", "collect_actions", "check_actions"]


class Action:
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

    def start(self, timeout_s: float) -> None:
        def work() -> None:
            try:
                outcome = run(self.argv, timeout_s, what="command", may_start_service=True)
                problem = outcome.problem
                if problem is not None and outcome.timed_out and outcome.returncode is not None:
                    problem += " (killed)"  # the command alone: its group may hold the service
                self.returncode, self.problem, self.seconds = outcome.returncode, problem, outcome.seconds
            except Exception as exc:  # never let a thread die silently
                self.problem = "command failed: %s" % exc
            self.done = True

        _thread.start_new_thread(work, ())  # daemonic: never holds up exit


def smaps_step(w: LeakWatcher, now: float, s: Series, proc: ProcInfo, tr: Trend, watch: LeakWatch,
                force: bool = False) -> None:
    """A baseline read of smaps as soon as a process looks like it rises (before the trend
    is confirmed, so that a leak event already has two reads to compare), then while it
    grows a diff against that baseline every few minutes, and one at a leak event."""
    rises = rising(tr)
    if s.baseline is None or s.baseline[1] != proc.pid:
        if rises or tr.growing or force:
            maps = read_smaps(proc.pid, w.proc_root)
            if maps is not None:
                s.baseline = (now, proc.pid, maps)
                s.last_smaps = now
        return
    if not rises and not tr.growing and tr.p > 0.5:
        s.baseline = None  # not rising after all: free the snapshot
        return
    every = max(5 * watch.interval_s, watch.window_s / 6.0)
    if (force and now > s.baseline[0]) or (tr.growing and now - s.last_smaps >= every):
        maps = read_smaps(proc.pid, w.proc_root)
        if maps is None:
            return
        s.last_smaps = now
        s.grew = smaps_growth(s.baseline[2], maps)
        s.grew_span = (s.baseline[0], now, proc.pid)
        w._dirty = True


def fire(w: LeakWatcher, now: float, s: Series, proc: ProcInfo, tr: Trend, pr: Projection, watch: LeakWatch,
          entry: Optional[Critical], rss: int, anon: int, pss: Optional[int], ceiling: Optional[int],
          headroom: Optional[int]) -> str:
    s.fired = now
    if s.baseline is not None:
        smaps_step(w, now, s, proc, tr, watch, force=True)
    anon_tr = estimate(s.t, s.anon, s.seg)
    what = watch.on_leak if s.kind == "critical" else "notify"
    argv = tuple(watch.command)
    note = ""
    if what in ("restart", "command") and not argv:
        note = "; on_leak %s has no command, so notify only" % what
        what = "notify"
    dry = w.dry_run or w.config.actions.dry_run
    action = "dry_run" if dry and what != "notify" else what
    if action == "notify":
        doing = "notify only" + note
    elif action == "dry_run":
        doing = "dry run: would run %s" % list(argv)
    else:
        doing = "%s: running %s" % (what, list(argv))
    grew = ", ".join("%s +%s" % (k, size_text(g)) for k, g, _ in s.grew[:3])
    message = "%s[%d] %s at %+.1f KiB/min (anon %+.1f KiB/min; p %.2g, %.0f%% of pairwise slopes rising, " \
              "%d samples over %s%s); RSS %s%s; %s%s" % (
                  s.name, proc.pid, "grows" if tr.slope > 0 else "is", tr.slope * 60 / KIB,
                  anon_tr.slope * 60 / KIB, tr.p, tr.agree * 100, tr.n, duration(tr.span_s),
                  ", %d restart(s)" % (tr.segments - 1) if tr.segments > 1 else "", mib_text(rss),
                  ", ceiling %s" % mib_text(ceiling) if ceiling else "", pr.reason,
                  "; grew most: %s" % grew if grew else "") + "; " + doing
    w.tell.event(
        "leak", message, name=s.name, watched_as=s.kind, pid=proc.pid, rss_bytes=rss, anon_bytes=anon,
        pss_bytes=pss,
        slope_kib_min=round(tr.slope * 60 / KIB, 2), anon_slope_kib_min=round(anon_tr.slope * 60 / KIB, 2),
        confidence=round(tr.confidence, 4), p=tr.p, tau=round(tr.tau, 3), agree=round(tr.agree, 3),
        steady=tr.steady, samples=tr.n, span_s=round(tr.span_s, 1), window_s=watch.window_s,
        segments=tr.segments, restarts=len(s.restarts), ceiling_bytes=ceiling,
        eta_ceiling_s=tenths(pr.eta_ceiling_s), eta_terminate_s=tenths(pr.eta_terminate_s),
        terminate_headroom_bytes=headroom, horizon_s=watch.horizon_s, crossed=pr.crossed, action=action,
        dry_run=action == "dry_run",
        command=list(argv) if argv else None,
        grew=[{"mapping": k, "grew_bytes": g, "now_bytes": n} for k, g, n in s.grew])
    w._dirty = True
    # The cooldown is on disk before the command runs: a guardian that dies during the
    # restart must not restart the service again the moment it is back.
    w.save(now, force=True)
    if action in ("restart", "command"):
        settle = max(2 * watch.interval_s, 5.0)
        a = Action(s.key, s.name, action, argv, now, proc.pid, proc.starttime, rss, headroom, settle,
                    max(60.0, 6 * watch.interval_s))
        if action == "restart":
            s.planned = now
        a.start(max(COMMAND_TIMEOUT_MIN_S, w.config.actions.stop_command_timeout_s))
        w._actions.append(a)
    return action

def collect_actions(w: LeakWatcher, now: float) -> None:
    for a in w._actions:
        if a.done and a.done_at is None:
            a.done_at = now
            ok = a.problem is None
            w.tell.event("leak_action", "%s of %s: %s %s in %.1f s" % (
                a.what, a.name, list(a.argv), "ok" if ok else a.problem, a.seconds),
                name=a.name, action=a.what, command=list(a.argv), ok=ok, returncode=a.returncode,
                error=a.problem, seconds=round(a.seconds, 2))

def check_actions(w: LeakWatcher, now: float, present: Mapping[str, ProcInfo], headroom: Optional[int]) -> None:
    """Once the command is done and the process had time to come back: the outcome."""
    for a in w._actions:
        if a.done_at is None or a.checked or now - a.done_at < a.settle_s:
            continue
        proc = present.get(a.key)
        entry = w.watched.get(a.key)
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
            s = w.series.get(a.key)
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
                    mib_text(a.rss), mib_text(first), mib_text(a.rss - first), mib_text(rss)))
            else:
                parts.append("%s is still pid %d: the %s did not restart it" % (a.name, proc.pid, a.what))
                parts.append("RSS %s -> %s (%s back)" % (mib_text(a.rss), mib_text(rss), mib_text(a.rss - rss)))
            if want_adj is not None:
                parts.append("oom_score_adj %d%s" % (proc.oom_score_adj, " as configured" if adj_ok else
                                                     ", NOT the configured %d" % want_adj))
            fields.update(came_back=new, pid=proc.pid, rss_after_bytes=rss, rss_back_bytes=first,
                          freed_bytes=a.rss - first,
                          oom_score_adj=proc.oom_score_adj, oom_score_adj_wanted=want_adj, adj_applied=adj_ok)
        if headroom is not None and a.headroom is not None:
            parts.append("headroom above the terminate line %s -> %s" % (mib_text(a.headroom), mib_text(headroom)))
            fields.update(headroom_before_bytes=a.headroom, headroom_after_bytes=headroom)
        ok = proc is not None and (new or a.what == "command") and adj_ok
        fields["ok"] = ok
        series = w.series.get(a.key)
        if series is not None:
            series.planned = None  # a later change of PID is the daemon's own doing
        w.tell.event("leak_result", "; ".join(parts), **fields)
    w._actions = [a for a in w._actions if not a.checked]
