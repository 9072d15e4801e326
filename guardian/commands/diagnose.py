"""`guardian diagnose [--log FILE] [--json]`: why did the kernel OOM killer fire?

The OOM reports of a saved log ('-' for standard input), or of all the kernel log still holds,
each parsed (guardian.analysis.oomreport) and classified with advice
(guardian.analysis.forensics), then this system's red flags (guardian.commands.audit).
"""
from __future__ import annotations

import json
import sys

from guardian.commands.audit import red_flags
from guardian.analysis.forensics import CAUSES, kib, report_fields
from guardian.analysis.oomreport import OomReportParser, parse_log_lines
from guardian.kernel.kmsg import KMSG_PATH, read_kmsg_lines

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


def diagnose(log_path: Optional[str], proc_root: str = "/proc", sys_root: str = "/sys",
             kmsg_path: str = KMSG_PATH) -> Dict[str, Any]:
    """Reports in a saved log ('-' for standard input) or in the kernel log, classified, and
    this system's red flags."""
    out: Dict[str, Any] = {}
    if log_path:
        out["log"] = log_path
        if log_path == "-":
            reports = parse_log_lines(sys.stdin)
        else:
            with open(log_path, "r", encoding="utf-8", errors="replace") as f:
                reports = parse_log_lines(f)
        live = False
    else:
        out["log"] = kmsg_path
        lines, error, lost = read_kmsg_lines(kmsg_path)
        if error:
            out["log_error"] = error
        if lost:
            out["records_lost"] = lost
        parser = OomReportParser()
        reports = []
        for message, ts in lines:
            reports.extend(parser.feed(message, ts))
        reports.extend(parser.finish())
        live = True
    out["reports"] = [report_fields(r, proc_root, live=live) for r in reports]
    out["red_flags"] = red_flags(proc_root, sys_root)
    return out


def _print_text(out: Dict[str, Any]) -> None:
    reports = out["reports"]
    if out.get("log_error"):
        print("kernel log: %s" % out["log_error"])
    print("kernel OOM reports in %s: %d" % (out["log"], len(reports)))
    for i, r in enumerate(reports, 1):
        when = " at %.3f s after boot" % r["kernel_time_s"] if r.get("kernel_time_s") is not None else ""
        print("\n#%d%s: %s" % (i, when, CAUSES[r["cause"]]))
        if r.get("invoker") or r.get("gfp_mask"):
            print("  invoked by %s%s: gfp_mask=%s, order=%s, oom_score_adj=%s" % (
                r.get("invoker", "?"), "[%d]" % r["invoker_pid"] if r.get("invoker_pid") else "",
                r.get("gfp_mask", "?"), r.get("order", "?"), r.get("invoker_oom_score_adj", "?")))
        for v in r.get("victims", []):
            print("  killed %s[%d]: anon-rss %s, file-rss %s, shmem-rss %s, oom_score_adj %s" % (
                v["comm"], v["pid"], kib(v.get("anon_rss_kb")), kib(v.get("file_rss_kb")),
                kib(v.get("shmem_rss_kb")), v.get("oom_score_adj", "?")))
        print("  %s" % r["summary"])
        for a in r["advice"]:
            print("  - %s" % a)
        if r.get("truncated"):
            print("  (partial report: missing %s)" % ", ".join(r.get("missing", [])))
    flags = out["red_flags"]
    print("\nred flags of this system: %s" % (len(flags) or "none"))
    for f in flags:
        print("  ! %s" % f["detail"])
        print("    %s" % f["advice"])


def cli_main(args) -> int:
    """`guardian diagnose [--log FILE] [--json]`. 0 when it ran (whatever it found), 1 when
    the log could not be read."""
    proc_root = getattr(args, "proc_root", "/proc") or "/proc"
    sys_root = getattr(args, "sys_root", "/sys") or "/sys"
    kmsg_path = getattr(args, "kmsg", None) or KMSG_PATH
    try:
        out = diagnose(getattr(args, "log", None), proc_root, sys_root, kmsg_path)
    except OSError as exc:
        print("guardian: diagnose: cannot read %s: %s" % (exc.filename or args.log, exc.strerror or exc),
              file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print_text(out)
    if out.get("log_error") and not out["reports"]:
        if not getattr(args, "json", False):
            print("guardian: diagnose: %s; give a saved log with --log FILE" % out["log_error"], file=sys.stderr)
        return 1
    return 0
