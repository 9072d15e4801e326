"""guardian's command line: run, status, check."""
import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from guardian import __version__
from guardian.config import MIB, Config
from guardian.core.eventlog import DEFAULT_EVENTS_FILE

log = logging.getLogger("guardian")


def _scope_dir(spec: str, sys_root: str) -> Optional[str]:
    if spec == "system":
        return None
    if not spec.startswith("cgroup:"):
        raise SystemExit("guardian: --scope takes 'system' or 'cgroup:PATH', not %r" % spec)
    from guardian.kernel.cgroup import resolve_cgroup
    try:
        return resolve_cgroup(spec[len("cgroup:"):], sys_root)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit("guardian: --scope %s: %s" % (spec, exc))


def _config_error(exc: Exception) -> int:
    print("guardian: %s" % exc, file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from guardian.core.daemon import Daemon
    from guardian.core.telemetry import Telemetry

    try:
        from guardian.commands.options import load_config_for

        config, why, again = load_config_for(args)
    except ValueError as exc:
        return _config_error(exc)
    scope = _scope_dir(args.scope, args.sys_root)
    _warn_capabilities()
    log.info("config: %s (%s)", config.source, why)
    from guardian.core.parts.metrics import Metrics
    metrics = Metrics(args.metrics_file) if args.metrics_file else None
    syslog = {"auto": "auto", "on": True, "off": False}[args.syslog]
    telemetry = Telemetry(state_file=args.state_file or None, events_file=args.events_file or None,
                          syslog=syslog, metrics=metrics)
    daemon = Daemon(config, scope, args.proc_root, args.sys_root, dry_run=args.dry_run,
                    telemetry=telemetry, reload=again, why=why, protect_self=not args.no_self_protection,
                    hotplug=args.hotplug, metrics=metrics)
    return daemon.run()


STILL_WORKS = ("still works: watching memory and PSI, status, dry-run decisions, and ending "
               "processes of the guardian's own user")


def _warn_capabilities() -> None:
    from guardian.core.selfprotect import capabilities, missing_capability_report
    lines = missing_capability_report(capabilities())
    if lines:
        log.warning("running without some capabilities (uid %d); what does not work:", os.geteuid())
        for line in lines:
            log.warning("  %s", line)
        if os.geteuid() != 0:
            log.warning("  %s", STILL_WORKS)


def gather_status(args: argparse.Namespace) -> Dict[str, Any]:
    """Live memory and PSI, the daemon's own state (if one runs), thresholds, candidates."""
    from guardian.core import policy
    from guardian.kernel.procs import printable
    from guardian.core.match import classify, impostors
    from guardian.core.sense import Sensor
    from guardian.core.waiter import arm_psi

    try:
        from guardian.commands.options import load_config_for

        config, why, _ = load_config_for(args)
        config_error = None
    except ValueError as exc:
        config, why, config_error = Config(), "defaults (config invalid)", str(exc)
    scope = _scope_dir(args.scope, args.sys_root)
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
        fd, mode, detail = (None, "poll", "no PSI for this scope") if sensor.psi_path is None else arm_psi(sensor.psi_path, config.wait)
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
    from guardian.core.selfprotect import capabilities, missing_capability_report
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
    from guardian import safefile
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


def cmd_status(args: argparse.Namespace) -> int:
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
    print("lines       reclaim %s, terminate %s, kill %s" % (mib(t["reclaim_bytes"]), mib(t["terminate_bytes"]), mib(t["kill_bytes"])))
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


def cmd_check(args: argparse.Namespace) -> int:
    try:
        from guardian.commands.check import run
    except ImportError:
        print("guardian: check is not available in this build", file=sys.stderr)
        return 2
    return run(args.config, args.board, args.root, args.json)


def cmd_leaks(args: argparse.Namespace) -> int:
    from guardian.core.parts.leakwatch import cli_main
    return cli_main(args)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from guardian.commands.diagnose import cli_main
    return cli_main(args)


LOG_LEVELS = ["debug", "info", "warning", "error"]


def _restore_tmpdir() -> None:
    """The init scripts point TMPDIR at flash for a onefile build's unpacker and keep the
    caller's in GUARDIAN_TMPDIR (empty: it had none); the commands we run get it back. (The
    frozen build's runtime hook does the same before this runs.)"""
    saved = os.environ.pop("GUARDIAN_TMPDIR", None)
    if saved is None:
        return
    if saved:
        os.environ["TMPDIR"] = saved
    else:
        os.environ.pop("TMPDIR", None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardian", description="Out-of-memory guardian for embedded Linux.")
    parser.add_argument("--version", action="version", version="guardian %s" % __version__)
    parser.add_argument("--log-level", default=os.environ.get("GUARDIAN_LOG_LEVEL") or "info",
                        choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, scope: bool = True) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--config", metavar="PATH", help="a board config file (TOML)")
        group.add_argument("--board", metavar="NAME", help="a shipped board config by name")
        if scope:
            p.add_argument("--scope", default="system", help="'system' (default) or 'cgroup:PATH'")
        p.add_argument("--proc-root", default="/proc", help=argparse.SUPPRESS)
        p.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
        p.add_argument("--log-level", dest="sub_log_level", choices=LOG_LEVELS, default=None,
                       help="as before the subcommand")
        p.add_argument("--state-file", default="/run/guardian/state.json",
                       help="runtime state the daemon writes and status reads ('' for none)")

    run = sub.add_parser("run", help="watch memory and act (foreground)")
    common(run)
    run.add_argument("--dry-run", action="store_true", help="decide and log, but do not act")
    run.add_argument("--events-file", metavar="PATH", default=DEFAULT_EVENTS_FILE,
                     help="append one JSON line per event ('' for none; default %(default)s)")
    run.add_argument("--syslog", choices=["auto", "on", "off"], default="auto",
                     help="events to syslog (/dev/log); auto: not under systemd, whose journal has stderr")
    run.add_argument("--metrics-file", metavar="PATH",
                     help="Prometheus textfile for node_exporter (off unless given; put it on tmpfs)")
    run.add_argument("--hotplug", choices=["auto", "on", "off"], default="auto",
                     help="watch memory and zram/swap hotplug through pyudev where installed")
    run.add_argument("--no-self-protection", action="store_true",
                     help="skip mlockall and the guardian's own oom_score_adj (for measurements)")
    run.add_argument("--state-dir", metavar="DIR", default=None,
                     help="where leak trends persist across restarts (default: [leaks] state_dir, /var/lib/guardian)")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="memory, PSI, wait mode, thresholds, candidates")
    common(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    check = sub.add_parser("check", help="validate a config and audit the system against it")
    common(check, scope=False)
    check.add_argument("--root", metavar="DIR", help="offline: check against a target rootfs")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    leaks = sub.add_parser("leaks", help="leak trends of watched processes: slope, confidence, projection, what grew")
    common(leaks, scope=False)
    leaks.add_argument("--json", action="store_true")
    leaks.add_argument("--state-dir", metavar="DIR", default=None,
                       help="where the daemon keeps leaks.json (default: [leaks] state_dir, /var/lib/guardian)")
    leaks.add_argument("--smaps-wait", metavar="S", type=float, default=0.0,
                       help="also read /proc/PID/smaps twice, S seconds apart, and show what grew")
    leaks.set_defaults(func=cmd_leaks)

    diagnose = sub.add_parser("diagnose", help="explain kernel OOM kills and this system's red flags")
    diagnose.add_argument("--log", metavar="FILE",
                          help="a saved dmesg/journalctl -k/syslog text ('-' for stdin); default: the kernel log")
    diagnose.add_argument("--json", action="store_true")
    diagnose.add_argument("--proc-root", default="/proc", help=argparse.SUPPRESS)
    diagnose.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    diagnose.set_defaults(func=cmd_diagnose)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _restore_tmpdir()
    level = getattr(args, "sub_log_level", None) or args.log_level
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="guardian: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `guardian diagnose | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
