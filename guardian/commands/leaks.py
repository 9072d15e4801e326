"""`guardian leaks [--json] [--smaps-wait S]`: each watched process with its history from the
leak watch's state file (<state_dir>/leaks.json) plus one live sample: slope, confidence,
status, when it would reach its ceiling or the terminate line, its restarts, the last leak
event and, where it grows, the mappings that grew (from the file, or from two live reads of
/proc/PID/smaps --smaps-wait seconds apart). Reads only: the state file is not written.
"""
from __future__ import annotations

import json
import os
import sys
import time

from guardian.analysis.trend import MIN_POINTS, duration, judge
from guardian.commands.options import load_config_for
from guardian.config import MIB, Config, LeakWatch, Leaks
from guardian.core import policy
from guardian.core.match import classify
from guardian.core.parts.leakstate import Series
from guardian.core.parts.leakwatch import (KIB, LeakWatcher, early_span_s, mib_text, min_span_s, size_text,
                                           tenths)
from guardian.core.sense import Sensor
from guardian.kernel.procs import ProcInfo, read_procs
from guardian.kernel.smaps import read_rollup, read_smaps, smaps_growth

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


class _Collect:
    """The watcher's messages (state file loaded, ignored, unreadable), printed above the table."""

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
        if role is not None and role.kind == "critical" and role.entry.name in watcher.watched:
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
            items.append((key, "size", watcher.size_watch(), by_pid.get((s.pid, s.starttime))))
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
            ceiling_bytes=ceiling, eta_ceiling_s=tenths(pr.eta_ceiling_s), eta_terminate_s=tenths(pr.eta_terminate_s),
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
        print("headroom    %s above the terminate line" % mib_text(headroom))
    if not rows:
        print("no process is watched: no [[critical]] entry has leak watch on%s" % (
            "" if config.critical else " (the config has no [[critical]] entries)"))
        return 0
    print("%-16s %7s %10s %16s %6s %9s %10s %10s" % ("NAME", "PID", "RSS", "SLOPE", "CONF", "STATUS",
                                                     "CEILING IN", "LINE IN"))
    for r in rows:
        pid = str(r["pid"]) if r["pid"] else "-"
        if "slope_kib_min" not in r:
            print("%-16s %7s %10s  %s" % (r["name"][:16], pid, mib_text(r.get("rss_bytes")) if r["running"] else
                                          "not running", r["why"]))
            continue
        print("%-16s %7s %10s %+9.1f KiB/min %5.1f%% %9s %10s %10s" % (
            r["name"][:16], pid, mib_text(r["rss_bytes"]) if r["running"] else "gone", r["slope_kib_min"],
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
                print("      %10s  %-50s now %s" % (
                    "+" + size_text(g["grew_bytes"]), g["mapping"], size_text(g["now_bytes"])))
    return 0
