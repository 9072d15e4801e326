"""The systemd VMs' judge: checks per VM run and the side-by-side tables. Pure (lines in, checks
and text out), so that tests/vm/systemd/test_sdjudge.py can feed it made-up runs."""
from typing import Any, Dict, List, Optional

MIB = 1024  # in KiB, as the guest reports sizes
TOOLS = ("guardian", "earlyoom", "oomd")
TOOL_NAMES = {"guardian": "guardian", "earlyoom": "earlyoom (Debian unit)", "oomd": "systemd-oomd (+ManagedOOM)"}


def by_type(lines: List[Dict[str, Any]], kind: str) -> List[Dict[str, Any]]:
    return [x for x in lines if x.get("type") == kind]


def first(lines: List[Dict[str, Any]], kind: str) -> Optional[Dict[str, Any]]:
    found = by_type(lines, kind)
    return found[0] if found else None


def who_ended(r: Dict[str, Any]) -> str:
    """How the runaway's unit ended, from systemd's own record of it (Result, ExecMainCode/
    Status: 1 exited, 2 killed by a signal): the kernel's OOM killer, SIGTERM, SIGKILL..."""
    if r.get("hog_alive"):
        return "still running"
    if r.get("hog_result") == "oom-kill" or r.get("oom_kills", 0) > 0:
        return "kernel OOM kill"
    code, _, status = str(r.get("hog_exit", "")).partition("/")
    if code == "2":
        return {"15": "SIGTERM", "9": "SIGKILL"}.get(status, "signal %s" % status)
    return "exit %s" % status if code == "1" else "? (%s)" % r.get("hog_exit")


def check_round(tool: str, r: Dict[str, Any]) -> List[str]:
    """What failed in one runaway round (empty: it passed)."""
    fails = []
    if r.get("oom_kills", 0) or r.get("oom_messages", 0) or r.get("hog_result") == "oom-kill":
        fails.append("kernel OOM kill (oom_kill +%s, %s reports)" % (r.get("oom_kills", 0), r.get("oom_messages", 0)))
    if r.get("hog_alive"):
        fails.append("the runaway was never ended (%s s)" % r.get("ended_s"))
    if not r.get("critd_alive") or r.get("critd_before") != r.get("critd_after"):
        fails.append("critd.service ended (pid %s -> %s)" % (r.get("critd_before"), r.get("critd_after")))
    if not r.get("lowprio_active") or r.get("lowprio_before") != r.get("lowprio_after"):
        fails.append("lowprio.service ended too: the runaway's process was not the only one to end")
    if not r.get("tool_alive", True):
        fails.append("%s is not running after the round" % tool)
    if tool == "guardian" and not r.get("journal"):
        fails.append("no line at priority warning or higher in the journal (journalctl -p warning -u guardian)")
    return fails


def judge(run: Dict[str, Any]) -> Dict[str, Any]:
    """Checks and numbers for one VM run (the guest's lines in run["lines"])."""
    lines = run.get("lines", [])
    boot = first(lines, "boot") or {}
    ready = first(lines, "ready") or {}
    fails: List[str] = []
    if not boot:
        fails.append("no boot line (the VM never reached the agent: see console.log)")
    else:
        if boot.get("pid1") != "systemd":
            fails.append("PID 1 is %r, not systemd" % boot.get("pid1"))
        if boot.get("cgroup_fs") != "cgroup2fs":
            fails.append("/sys/fs/cgroup is %r, not cgroup v2 alone" % boot.get("cgroup_fs"))
        if boot.get("swap_total_kib"):
            fails.append("swap is on (%s KiB)" % boot["swap_total_kib"])
    for e in by_type(lines, "error"):
        fails.append("agent: %s" % e.get("message"))
    if not first(lines, "done"):
        fails.append("no done line (timed out or the VM died: see console.log)" if not run.get("timed_out")
                     else "timed out after %s s" % run.get("seconds"))
    rounds = []
    for r in by_type(lines, "round"):
        rf = check_round(run["tool"], r)
        rounds.append({"rate": r.get("rate"), "ended_s": r.get("ended_s"), "how": who_ended(r),
                       "oom_kills": r.get("oom_kills", 0),
                       "critd_ok": r.get("critd_alive") and r.get("critd_before") == r.get("critd_after"),
                       "lowprio_ok": bool(r.get("lowprio_active"))
                       and r.get("lowprio_before") == r.get("lowprio_after"),
                       "min_available_kib": (r.get("monitor") or {}).get("min_available_kib"),
                       "journal": r.get("journal", []), "failures": rf})
    if run.get("expect_rounds") and len(rounds) < run["expect_rounds"]:
        fails.append("%d of %d rounds ran" % (len(rounds), run["expect_rounds"]))
    return {"scenario": run["scenario"], "tool": run["tool"], "mem_mib": run.get("mem_mib"),
            "vm_seconds": run.get("seconds"), "boot": boot.get("boot_time"), "boot_uptime": boot.get("uptime"),
            "ready": ready, "idle": first(lines, "idle"), "rounds": rounds, "failures": fails,
            "passed": not fails and all(not r["failures"] for r in rounds)}


def asserted(result: Dict[str, Any]) -> bool:
    """Only the guardian's checks decide the exit status: the others are the reference."""
    return result["tool"] == "guardian"


def _mib(kib: Optional[int]) -> str:
    return "-" if kib is None else "%.1f" % (kib / MIB)


def runaway_table(results: List[Dict[str, Any]]) -> str:
    out = ["| RAM | rate MiB/s | " + " | ".join(TOOL_NAMES[t] for t in TOOLS) + " |",
           "|---|---|" + "---|" * len(TOOLS)]
    cells: Dict[Any, Dict[str, str]] = {}
    for res in results:
        for r in res["rounds"]:
            key = (res["mem_mib"], r["rate"])
            lost = [n for n, ok in (("critd", r["critd_ok"]), ("lowprio", r["lowprio_ok"])) if not ok]
            text = "%s after %s s, min avail %s MiB%s%s" % (
                r["how"], r["ended_s"], _mib(r["min_available_kib"]),
                ", kernel OOM kills %d" % r["oom_kills"] if r["oom_kills"] and r["how"] != "kernel OOM kill" else "",
                ", lost " + "+".join(lost) if lost else "")
            cells.setdefault(key, {})[res["tool"]] = text + ("" if not r["failures"] else " **FAIL**")
    for (mem, rate) in sorted(cells, key=lambda k: (-(k[0] or 0), k[1] if k[1] else 1e9)):
        row = cells[(mem, rate)]
        out.append("| %s MiB | %s | %s |" % (mem, rate if rate else "flat out",
                                              " | ".join(row.get(t, "-") for t in TOOLS)))
    return "\n".join(out)


def idle_table(results: List[Dict[str, Any]]) -> str:
    out = ["| RAM | tool | RSS MiB | PSS MiB | anon MiB | CPU ticks / 20 s | wake-ups / 20 s | start ticks |",
           "|---|---|---|---|---|---|---|---|"]
    def order(r: Dict[str, Any]) -> Any:
        return (-(r["mem_mib"] or 0), TOOLS.index(r["tool"]) if r["tool"] in TOOLS else 9)

    for res in sorted(results, key=order):
        i = res.get("idle")
        if not i:
            continue
        scale = 20.0 / i["seconds"] if i.get("seconds") else 1.0
        out.append("| %s MiB | %s | %s | %s | %s | %.0f | %.0f | %s |" % (
            res["mem_mib"], TOOL_NAMES.get(res["tool"], res["tool"]), _mib(i.get("rss_kib")), _mib(i.get("pss_kib")),
            _mib(i.get("anon_kib")), i.get("ticks", 0) * scale, i.get("wakes", 0) * scale, i.get("startup_ticks", "-")))
    return "\n".join(out)


def report(results: List[Dict[str, Any]], title: str = "systemd VMs") -> str:
    parts = ["# %s" % title, "", "## Runaway inside one unit (systemd-run), per rate", "",
             "What ended the runaway (its unit's Result), when (from its start), the lowest MemAvailable;"
             " critd.service and lowprio.service must both live.", "", runaway_table(results), "",
             "## Idle (same VM, at rest, one window)", "", idle_table(results), "", "## Boot", ""]
    for res in results:
        parts.append("- %s %s MiB: %s (agent at %s s uptime), VM %s s" % (
            res["tool"], res["mem_mib"], res.get("boot") or "?", res.get("boot_uptime"), res.get("vm_seconds")))
    fails = [(res, f) for res in results for f in res["failures"] + [x for r in res["rounds"] for x in r["failures"]]]
    parts += ["", "## Failures", ""]
    parts += ["- %s %s %s MiB%s: %s" % (res["scenario"], res["tool"], res["mem_mib"],
                                        "" if asserted(res) else " (reference, not asserted)", f)
              for res, f in fails] or ["none"]
    parts += ["", "## The guardian's decisions in the journal (journalctl -p warning -u guardian)", ""]
    for res in results:
        if res["tool"] == "guardian":
            for r in res["rounds"]:
                for line in r["journal"][:2]:
                    parts.append("- %s MiB, %s MiB/s: `%s`" % (res["mem_mib"], r["rate"], line[:200]))
    return "\n".join(parts) + "\n"
