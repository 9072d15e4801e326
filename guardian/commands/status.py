"""`guardian status`: live memory and PSI, the running daemon's state (from its state file),
the lines, the rung now, the best victims and impostors, missing capabilities."""
from __future__ import annotations

import argparse
import json
import os
import sys

from guardian import __version__, safefile
from guardian.commands.options import load_config_for, scope_dir_for
from guardian.config import MIB, Config
from guardian.core import policy
from guardian.core.impostors import impostors
from guardian.core.match import classify
from guardian.core.capabilities import STILL_WORKS, capabilities, missing_capability_report
from guardian.core.sense import Sensor
from guardian.core.waiter import arm_psi
from guardian.kernel.procs import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional


def gather_status(args: argparse.Namespace) -> Dict[str, Any]:
    """Live memory and PSI, the daemon's own state (if one runs), thresholds, candidates."""
    try:
        config, why, _ = load_config_for(args)
        config_error = None
    except ValueError as exc:
        config, why, config_error = Config(), "defaults (config invalid)", str(exc)
    scope = scope_dir_for(args.scope, args.sys_root)
    sensor = Sensor(scope, args.proc_root, args.sys_root)
    sensor.refresh_slow()
    reading = sensor.read(0.0, os.getpid(), with_procs=True)
    out: Dict[str, Any] = {"version": __version__, "board": config.board, "config": config.source,
                           "config_why": why, "scope": scope or "system"}
    if config_error:
        out["config_error"] = config_error
    if reading is None:
        out["error"] = "no memory reading for scope %s" % (scope or "system")
        return out
    psi = sensor.psi()
    out["psi"] = None if psi is None else {
        kind: None if line is None else {"avg10": line.avg10, "avg60": line.avg60, "avg300": line.avg300,
                                          "total_us": line.total}
        for kind, line in (("some", psi.some), ("full", psi.full))}
    problems: List[str] = []
    daemon = _daemon_state(args.state_file, problems)
    if problems:
        out["state_file_error"] = problems[0]
    if daemon is not None:
        out["wait_mode"], out["wait_detail"], out["daemon"] = daemon["wait_mode"], daemon.get("wait_detail", ""), daemon
    else:
        if sensor.psi_path is None:
            fd, mode, detail = None, "poll", "no PSI for this scope"
        else:
            fd, mode, detail = arm_psi(sensor.psi_path, config.wait)
        if fd is not None:
            os.close(fd)
        out["wait_mode"], out["wait_detail"], out["daemon"] = mode, detail + " (probed: no guardian running)", None
    recent = policy.Recent()
    lines = policy.lines_for(reading, recent, config)
    rung, reason = policy.rung_for(reading, lines, config)
    out.update({
        "mem_total_bytes": reading.total,
        "mem_available_bytes": reading.available,
        "swap_total_bytes": reading.swap_total,
        "swap_free_bytes": reading.swap_free,
        "rung_now": policy.RUNG_NAMES[rung],
        "rung_reason": reason,
        "thresholds": {"reclaim_bytes": lines.reclaim, "terminate_bytes": lines.terminate,
                       "kill_bytes": lines.kill, "hysteresis_bytes": lines.hysteresis},
    })
    roles = classify(reading.procs or (), config, args.proc_root)
    ranked = policy.rank_candidates(reading.procs or (), roles, recent, config, reading.total,
                                    (os.getpid(), os.getppid()) if getattr(sys, "frozen", False) else os.getpid())
    out["candidates"] = [
        {"pid": p.pid, "name": p.comm, "score": round(score, 1), "rss_bytes": p.rss,
         "oom_score": p.oom_score, "oom_score_adj": p.oom_score_adj,
         "role": getattr(roles.get(p.pid), "kind", "")}
        for p, score in ranked[:5]]
    out["impostors"] = [
        {"pid": i.proc.pid, "name": i.proc.comm, "uid": i.proc.uid, "exe": printable(i.exe or "?"),
         "named_like": "%s %s" % (i.kind, i.entry.name), "why": i.why}
        for i in impostors(reading.procs or (), config, args.proc_root)]
    out["missing_capabilities"] = missing_capability_report(capabilities())
    if os.geteuid() != 0:
        out["missing_capabilities"].append(STILL_WORKS)
    sensor.close()
    return out


# What `status` uses of the daemon's state file, and the types it must have.
_STATE_FIELDS = (("pid", int, True), ("wait_mode", str, True), ("rung", str, True), ("wait_detail", str, False),
                 ("kills", int, False), ("terminations", int, False), ("dry_run", bool, False))


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not allowed" % name)


def _daemon_state(path: Optional[str], problems: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """The running daemon's state file, or None (no file, no such daemon, or a file that is not
    the daemon's: then one line on why goes to `problems`). Read without following links or
    blocking on a FIFO, from a directory only root can write (guardian.safefile)."""
    if not path:
        return None
    why = None
    try:
        state = json.loads(safefile.read_regular(path, 1 << 20).decode("utf-8"), parse_constant=_no_constant)
        if not isinstance(state, dict):
            why = "not a JSON object"
        else:
            for key, kind, required in _STATE_FIELDS:
                value = state.get(key)
                if value is None and not required:
                    continue
                if (not isinstance(value, kind) or (kind is int and isinstance(value, bool))
                        or (key == "pid" and not 0 < value < 1 << 22)):
                    why = "field %r %s" % (key, "missing" if key not in state else "is not a valid %s" % kind.__name__)
                    break
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror or str(exc)
    except (ValueError, RecursionError) as exc:
        why = "not JSON (%s)" % " ".join(str(exc).split())[:120]
    if why is not None:
        if problems is not None:
            problems.append("ignored %s: %s" % (path, why))
        return None
    try:
        os.kill(state["pid"], 0)
    except OSError:
        return None
    return state


def cli_main(args: argparse.Namespace) -> int:
    """`guardian status [--json]`."""
    out = gather_status(args)
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0 if "error" not in out else 1
    if "error" in out:
        print("guardian: %s" % out["error"], file=sys.stderr)
        return 1
    mib = lambda b: "%.0f MiB" % (b / MIB)  # noqa: E731
    print("guardian %s  board %s  (%s)" % (out["version"], out["board"], out["config_why"]))
    if out.get("config_error"):
        print("config error: %s" % out["config_error"])
    print("scope       %s" % out["scope"])
    print("memory      %s available of %s" % (mib(out["mem_available_bytes"]), mib(out["mem_total_bytes"])))
    if out["swap_total_bytes"]:
        print("swap        %s free of %s" % (mib(out["swap_free_bytes"]), mib(out["swap_total_bytes"])))
    psi = out["psi"]
    if psi:
        full = psi["full"]["avg10"] if psi.get("full") else "-"
        print("psi         some avg10 %.2f  full avg10 %s" % (psi["some"]["avg10"], full))
    else:
        print("psi         unavailable")
    print("wait mode   %s (%s)" % (out["wait_mode"], out["wait_detail"]))
    t = out["thresholds"]
    print("lines       reclaim %s, terminate %s, kill %s" % (
        mib(t["reclaim_bytes"]), mib(t["terminate_bytes"]), mib(t["kill_bytes"])))
    print("rung now    %s: %s" % (out["rung_now"], out["rung_reason"]))
    d = out["daemon"]
    if d:
        print("daemon      pid %d, rung %s, %d kills, %d terminations%s" % (
            d["pid"], d["rung"], d.get("kills", 0), d.get("terminations", 0), ", dry run" if d.get("dry_run") else ""))
    else:
        print("daemon      not running")
    if out.get("state_file_error"):
        print("state file  %s" % out["state_file_error"])
    print("candidates  (best victim first)")
    for c in out["candidates"]:
        print("  %7d  %-16s score %6.1f  rss %s  adj %d %s" % (
            c["pid"], c["name"], c["score"], mib(c["rss_bytes"]), c["oom_score_adj"], c["role"]))
    for i in out.get("impostors", ()):
        print("impostor?   pid %d %s (uid %d, exe %s) is named like %s but %s: no role, an ordinary candidate" % (
            i["pid"], i["name"], i["uid"], i["exe"], i["named_like"], i["why"]))
    for line in out["missing_capabilities"]:
        print("missing capability: %s" % line)
    return 0
