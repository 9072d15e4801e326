"""guardian's command line: the parser, the start-up half of `run` (prepare_run), and the
other commands (guardian.commands, imported only when asked for). `guardian run` parses here
in the short-lived child guardian.boot starts; the daemon itself never imports this module."""
from __future__ import annotations

import argparse
import os
import sys

from guardian import __version__
from guardian.core.eventfiles import choose_place, events_place
from guardian.core.eventlog import DEFAULT_EVENTS_FILE, Place
from guardian.logger import INFO, WARNING, configure, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Union


def cmd_run(args: argparse.Namespace) -> int:
    """`run` reached in-process (guardian.boot hands it to a child, which answers through
    args.hand_over): the start-up work, then the daemon in this process."""
    start = prepare_run(args)
    if isinstance(start, int):
        return start
    hand_over = getattr(args, "hand_over", None)
    if hand_over is not None:
        hand_over(start)
        return 0
    from guardian.boot import serve
    return serve(start)


def prepare_run(args: argparse.Namespace) -> Union[int, Dict[str, Any]]:
    """All that only the start needs: the config (board detection, overrides, validation), the
    board's sysctls, where the events go, the scope, the warnings and log lines. Returns the
    exit status when the daemon must not start, else what it starts with, as plain data
    (guardian.boot.serve)."""
    from guardian.commands.options import load_config_for, scope_dir_for
    from guardian.config import to_plain
    from guardian.core.daemon import apply_board_sysctls
    from guardian.core.match import programs
    from guardian.core.parts.leakstate import preread
    from guardian.core.telemetry import Telemetry

    syslog = {"auto": "auto", "on": True, "off": False}[args.syslog]
    # First, so that every line below reaches syslog too where there is no journal (under
    # BusyBox start-stop-daemon --background, stderr is /dev/null).
    telemetry = Telemetry(state_file=None, syslog=syslog)
    try:
        try:
            config, why, _again = load_config_for(args)
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        place = _events_place(args.events_file, config.leaks.state_dir)
        if place.note:
            log.log(WARNING if place.in_ram else INFO, "%s", place.note)
        scope = scope_dir_for(args.scope, args.sys_root)
        _warn_capabilities()
        log.info("config: %s (%s)", config.source, why)
        # Before the daemon sets up, as it did after: from here on, the daemon runs with them.
        apply_board_sysctls(config, args.proc_root, args.dry_run or config.actions.dry_run)
        return {
            "log_level": getattr(args, "sub_log_level", None) or args.log_level,
            "state_file": args.state_file or None, "syslog": syslog, "metrics_file": args.metrics_file,
            "events": (place.path, place.max_bytes, place.backups),
            "config": to_plain(config), "regex": programs(config), "why": why, "scope": scope,
            "proc_root": args.proc_root, "sys_root": args.sys_root, "dry_run": args.dry_run, "hotplug": args.hotplug,
            "protect_self": not args.no_self_protection,
            "leak_state": preread(config.leaks.state_dir),  # parsed here: the daemon holds no JSON parser
            # What a reload needs to load the same way (guardian.boot.load_again).
            "reload": {"config": args.config, "board": args.board, "proc_root": args.proc_root,
                       "sys_root": args.sys_root, "state_dir": args.state_dir},
        }
    finally:
        telemetry.close()


def _events_place(asked: Optional[str], state_dir: Optional[str]) -> Place:
    """Where the events go: --events-file, else the default unless it is RAM (eventfiles.choose_place)."""
    from guardian.kernel import ParseError

    try:
        return events_place(asked, state_dir)
    except ParseError as exc:
        log.warning("%s: cannot tell whether the event log is in RAM", exc)
        return choose_place(asked, state_dir, lambda path: None)


def _warn_capabilities(vm_knob: str = "/proc/sys/vm/drop_caches") -> None:
    from guardian.core.capabilities import STILL_WORKS, capabilities, missing_capability_report
    lines = missing_capability_report(capabilities())
    if os.access(vm_knob, os.W_OK):
        # CAP_SYS_ADMIN only hints at a read-only /proc/sys; it is writable here, so nothing is
        # lost (systemd's unit leaves it out on purpose): no warning on every start.
        lines = [line for line in lines if not line.startswith("CAP_SYS_ADMIN ")]
    if lines:
        log.warning("running without some capabilities (uid %d); what does not work:", os.geteuid())
        for line in lines:
            log.warning("  %s", line)
        if os.geteuid() != 0:
            log.warning("  %s", STILL_WORKS)


def cmd_status(args: argparse.Namespace) -> int:
    from guardian.commands.status import cli_main
    return cli_main(args)


def cmd_check(args: argparse.Namespace) -> int:
    from guardian.commands.check import run
    return run(args.config, args.board, args.root, args.json)


def cmd_leaks(args: argparse.Namespace) -> int:
    from guardian.commands.leaks import cli_main
    return cli_main(args)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from guardian.commands.diagnose import cli_main
    return cli_main(args)


LOG_LEVELS = ["debug", "info", "warning", "error"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardian", description="Out-of-memory guardian for embedded Linux.")
    parser.add_argument("--version", action="version", version="guardian %s" % __version__)
    parser.add_argument("--log-level", default=os.environ.get("GUARDIAN_LOG_LEVEL") or "info",
                        choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, scope: bool = True, roots: bool = True, state_file: bool = True) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--config", metavar="PATH", help="a board config file (TOML)")
        group.add_argument("--board", metavar="NAME", help="a shipped board config by name")
        if scope:
            p.add_argument("--scope", default="system", help="'system' (default) or 'cgroup:PATH'")
        if roots:  # a fake /proc and /sys, for tests
            p.add_argument("--proc-root", default="/proc", help=argparse.SUPPRESS)
            p.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
        p.add_argument("--log-level", dest="sub_log_level", choices=LOG_LEVELS, default=None,
                       help="as before the subcommand")
        if state_file:
            p.add_argument("--state-file", default="/run/guardian/state.json",
                           help="runtime state the daemon writes and status reads ('' for none)")

    run = sub.add_parser("run", help="watch memory and act (foreground)")
    common(run)
    run.add_argument("--dry-run", action="store_true", help="decide and log, but do not act")
    run.add_argument("--events-file", metavar="PATH", default=None,
                     help="append one JSON line per event ('' for none; default %s, or beside the leak state "
                          "when that is in RAM)" % DEFAULT_EVENTS_FILE)
    run.add_argument("--syslog", choices=["auto", "on", "off"], default="auto",
                     help="events to syslog (/dev/log); auto: not under systemd, whose journal has stderr")
    run.add_argument("--metrics-file", metavar="PATH",
                     help="Prometheus textfile for node_exporter (off unless given; put it on tmpfs)")
    run.add_argument("--hotplug", choices=["auto", "on", "off"], default="auto",
                     help="watch the kernel's memory and zram hotplug events (auto: where the kernel allows)")
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
    common(check, scope=False, roots=False, state_file=False)  # --root: a target rootfs
    check.add_argument("--root", metavar="DIR", help="offline: check against a target rootfs")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    leaks = sub.add_parser("leaks", help="leak trends of watched processes: slope, confidence, projection, what grew")
    common(leaks, scope=False, state_file=False)
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


def main(argv: Optional[List[str]] = None, hand_over: Optional[Callable[[Dict[str, Any]], None]] = None) -> int:
    """The full command line. `hand_over`: in guardian.boot's child, where `run` sends what the
    daemon starts with, in place of starting it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.hand_over = hand_over
    level = getattr(args, "sub_log_level", None) or args.log_level
    configure(level)  # "guardian: LEVEL: message" lines on stderr
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
