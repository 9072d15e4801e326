"""Markdown tables and the PNG chart from the results of one bench run."""
from typing import Dict, List, Optional

from common import fmt, median, ratio

TARGET_SELECTION_MS = 50.0
TARGET_SELECTION_PROCS = 1000
TARGET_REACTION_MS = 200.0
TARGET_REACTION_RATE = 200


def _table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _range(values: List[float], digits: int = 0) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0], digits)
    return "%s (%s–%s)" % (fmt(median(values), digits), fmt(min(values), digits), fmt(max(values), digits))


def machine_table(machine: Dict[str, str], versions: Dict[str, str]) -> str:
    rows = [[k, v] for k, v in machine.items()] + [[k, v] for k, v in versions.items()]
    return _table(["machine / version", "value"], rows)


def idle_table(idle: Dict) -> str:
    rows = idle["rows"]
    base = next((r for r in rows if r["tool"] == "earlyoom" and "skip" not in r), None)
    out = []
    for r in rows:
        if "skip" in r:
            out.append([r["tool"], r.get("settings", ""), "not run: " + r["skip"]] + [""] * 10)
            continue
        b = base or {}
        out.append([
            r["tool"], r["settings"], "%d" % r["cpu_ticks"], fmt(r["cpu_ms"], 1), ratio(r["cpu_ms"], b.get("cpu_ms")),
            "%d" % r["wakeups"], ratio(r["wakeups"], b.get("wakeups")),
            fmt(r["rss_mib"], 1), fmt(r["pss_mib"], 1), fmt(r["private_mib"], 1),
            ratio(r["rss_mib"], b.get("rss_mib")), ratio(r["pss_mib"], b.get("pss_mib")),
            "%s / %s" % (fmt(r.get("wchar", 0) / 1024.0, 1), fmt(r.get("write_bytes", 0) / 1024.0, 1)),
        ])
    header = ["tool", "settings", "CPU ticks / %.0f s" % idle["seconds"], "CPU ms (schedstat)", "CPU × earlyoom",
              "wake-ups", "wake-ups × earlyoom", "RSS MiB", "PSS MiB", "private MiB", "RSS × earlyoom",
              "PSS × earlyoom", "KiB written / to storage"]
    return _table(header, out)


def windows_table(idle: Dict) -> str:
    """Per window: the machine's exec and fork rates, and each tool's CPU and wake-ups per
    second; the last row is what one more exec per second costs each tool."""
    windows = idle.get("windows") or []
    if len(windows) < 1:
        return ""
    tools = list(windows[0]["rows"])
    header = ["window", "execs/s on the machine", "forks/s"]
    for tool in tools:
        header += ["%s CPU ms/s" % tool, "%s wake-ups/s" % tool]
    rows = []
    for w in windows:
        sec = max(w["seconds"], 1e-9)
        row = [w["name"], fmt(w["execs"] / sec, 1) if w.get("execs") is not None else "?", fmt(w["forks"] / sec, 1)]
        for tool in tools:
            r = w["rows"].get(tool)
            row += [fmt(r["cpu_ms"] / sec, 2), fmt(r["wakeups"] / sec, 2)] if r else ["–", "–"]
        rows.append(row)
    if len(windows) >= 2:
        a, b = windows[0], windows[1]
        key = "execs" if a.get("execs") is not None and b.get("execs") is not None else "forks"
        extra = b[key] / b["seconds"] - a[key] / a["seconds"]
        if extra > 0:
            row = ["cost of one more %s/s" % key[:-1], "", ""]
            for tool in tools:
                ra, rb = a["rows"].get(tool), b["rows"].get(tool)
                if ra and rb:
                    row += [fmt((rb["cpu_ms"] / b["seconds"] - ra["cpu_ms"] / a["seconds"]) / extra, 3),
                            fmt((rb["wakeups"] / b["seconds"] - ra["wakeups"] / a["seconds"]) / extra, 2)]
                else:
                    row += ["–", "–"]
            rows.append(row)
    return _table(header, rows)


def ticks_table(hot: Dict) -> str:
    rows = []
    for r in hot["ticks"]:
        if "skip" in r:
            rows.append([r["case"], "", "not run: " + r["skip"], "", "", ""])
            continue
        rows.append([r["case"], "`%s`" % r["fn"], fmt(r["median_us"], 1), fmt(r["p95_us"], 1), fmt(r["min_us"], 1),
                     str(r["n"])])
    return _table(["case", "function", "median µs", "p95 µs", "min µs", "calls"], rows)


def selection_table(hot: Dict) -> str:
    rows = []
    for r in hot["selection"]:
        rows.append([str(r["children"]), str(r["processes"]), fmt(r["read_procs_ms"], 1), fmt(r["classify_ms"], 2),
                     fmt(r["growth_ms"], 2), fmt(r["choose_victim_ms"], 2), "**%s**" % fmt(r["total_ms"], 1),
                     fmt(r["total_max_ms"], 1), fmt(r["pressure_tick_ms"], 1),
                     fmt(1000.0 * r["total_ms"] / max(1, r["processes"]), 1)])
    return _table(["sleeping children", "processes read", "read_procs ms", "classify ms", "growth ms",
                   "choose_victim ms", "selection total ms (median)", "max ms", "pressure tick ms (system scope)",
                   "µs per process"], rows)


def _group(runs: List[Dict]):
    groups: Dict = {}
    for r in runs:
        groups.setdefault((r["guardian"], r["hog"], r["rate_mib_s"]), []).append(r)
    return groups


def reaction_table(reaction: Optional[Dict], idle: Optional[Dict]) -> str:
    rows = []
    if reaction and reaction.get("runs"):
        for (tool, hog, rate), runs in _group(reaction["runs"]).items():
            errors = [r["error"] for r in runs if "error" in r]
            ended: Dict[str, int] = {}
            for r in runs:
                ended[r.get("ended_by", "?")] = ended.get(r.get("ended_by", "?"), 0) + 1
            early = sum(1 for r in runs if r.get("acted_before_line"))
            rows.append([
                "guardian (%s)" % ("Python" if tool == "python" else "frozen"),
                "ignores SIGTERM" if hog == "ignores SIGTERM" else "default",
                "%d (%s)" % (rate, fmt(median([r.get("fill_mib_s") for r in runs]), 0)),
                ", ".join("%s %d×" % kv for kv in sorted(ended.items()))
                + (" ⚠ %s" % "; ".join(errors) if errors else ""),
                _range([r.get("nominal_line_mib") for r in runs], 1),
                _range([r.get("line_mib") for r in runs], 1),
                _range([r.get("reaction_ms") for r in runs], 1),
                _range([r.get("detect_ms") for r in runs], 0),
                "**%s**%s" % (_range([r.get("threshold_to_freed_ms") for r in runs], 0),
                              " (%d early)" % early if early else ""),
                _range([r.get("own_line_to_freed_ms") for r in runs], 0),
                _range([r.get("min_headroom_mib") for r in runs], 0),
                "%d of %d" % (sum(1 for r in runs if r.get("oom_kills")), len(runs)),
            ])
    tools = [r["tool"] for r in (idle or {}).get("rows", [])] or ["earlyoom", "nohang"]
    for tool in ("earlyoom", "nohang"):
        if tool in tools:
            rows.append([tool, "–", "–", "n/a: no cgroup scope (watches /proc/meminfo, the whole system)"]
                        + ["–"] * 8)
    header = ["tool", "hog", "rate MiB/s (achieved)", "ended by", "nominal line MiB", "guardian's line MiB at the act",
              "guardian reaction_ms", "nominal crossing → guardian's reading ms",
              "threshold → freed ms (nominal line, bench)", "guardian's line → freed ms (bench, upper bound)",
              "headroom left MiB", "cgroup OOM killer fired"]
    return _table(header, rows)


def targets(results: Dict) -> List[Dict]:
    out = []
    idle = results.get("idle")
    if idle:
        rows = {r["tool"]: r for r in idle["rows"] if "skip" not in r}
        base = rows.get("earlyoom")
        for tool in ("guardian (Python)", "guardian (frozen)"):
            r = rows.get(tool)
            if r and base:
                out.append({"target": "idle CPU of %s ≤ earlyoom's" % tool,
                            "measured": "%.1f ms vs %.1f ms CPU (%d vs %d ticks), %d vs %d wake-ups in %.0f s" % (
                                r["cpu_ms"], base["cpu_ms"], r["cpu_ticks"], base["cpu_ticks"], r["wakeups"],
                                base["wakeups"], idle["seconds"]),
                            "met": r["cpu_ms"] <= base["cpu_ms"]})
                out.append({"target": "idle RSS of %s vs earlyoom's (reported, no target)" % tool,
                            "measured": "RSS %.1f vs %.1f MiB, PSS %.1f vs %.1f MiB, private %.1f vs %.1f MiB" % (
                                r["rss_mib"], base["rss_mib"], r["pss_mib"], base["pss_mib"], r["private_mib"],
                                base["private_mib"]),
                            "met": None})
    hot = results.get("hotpath")
    if hot and hot.get("selection"):
        near = min(hot["selection"], key=lambda r: abs(r["children"] - TARGET_SELECTION_PROCS))
        out.append({"target": "victim selection with %d processes < %.0f ms" % (TARGET_SELECTION_PROCS,
                                                                              TARGET_SELECTION_MS),
                    "measured": "%.1f ms median (max %.1f) with %d children, %d processes read; full pressure tick "
                                "%.1f ms" % (near["total_ms"], near["total_max_ms"], near["children"],
                                             near["processes"], near["pressure_tick_ms"]),
                    "met": near["total_ms"] < TARGET_SELECTION_MS})
    reaction = results.get("reaction")
    if reaction and reaction.get("runs"):
        for hog in ("ignores SIGTERM", "default"):
            runs = [r for r in reaction["runs"] if r["rate_mib_s"] == TARGET_REACTION_RATE and r["hog"] == hog
                    and r["guardian"] == "python"]
            values = [r.get("threshold_to_freed_ms") for r in runs]
            if not runs:
                continue
            worst = max((v for v in values if v is not None), default=None)
            out.append({"target": "threshold → freed < %.0f ms at %d MiB/s in cgroup scope (hog %s)" % (
                TARGET_REACTION_MS, TARGET_REACTION_RATE, hog),
                "measured": "median %s ms, worst %s ms over %d runs; guardian's reaction_ms %s; cgroup OOM kills %d" % (
                    fmt(median(values), 0), fmt(worst, 0), len(runs), _range([r.get("reaction_ms") for r in runs], 1),
                    sum(r.get("oom_kills") or 0 for r in runs)),
                "met": worst is not None and worst < TARGET_REACTION_MS and None not in values})
    return out


def targets_table(items: List[Dict]) -> str:
    return _table(["target", "measured", "met"],
                  [[t["target"], t["measured"], "—" if t["met"] is None else ("yes" if t["met"] else "**no**")]
                   for t in items])


def markdown(results: Dict) -> str:
    parts = ["# guardian bench: side by side with earlyoom and nohang", ""]
    parts += ["## Machine and versions", "", machine_table(results["machine"], results["versions"]), ""]
    if results.get("idle"):
        parts += ["## 1. Idle cost (all tools running together, %.0f s window)" % results["idle"]["seconds"], "",
                  idle_table(results["idle"]), "",
                  "CPU ticks are utime+stime of /proc/PID/stat (1 tick = 1/%d s); CPU ms is the sum of the "
                  "threads' schedstat run time (what a tick count rounds away); wake-ups are voluntary context "
                  "switches summed over threads; KiB written is /proc/PID/io wchar (all write(2)s: logs, state "
                  "files) / write_bytes (what reached the block layer: flash wear). Memory from smaps_rollup at "
                  "the end of the window, summed over the tool's process tree."
                  % results["idle"]["clock_ticks_per_s"], ""]
        quiet = (results["idle"].get("windows") or [{}])[0]
        if quiet.get("execs") is not None and quiet["execs"] / max(quiet["seconds"], 1e-9) > 1.0:
            parts += ["⚠ The machine was not idle: %.1f execs/s and %.1f forks/s from other processes during the "
                      "quiet window. Tools that wake on process events pay for them; see the next table." % (
                          quiet["execs"] / quiet["seconds"], quiet["forks"] / quiet["seconds"]), ""]
        wt = windows_table(results["idle"])
        if wt:
            parts += ["### Idle, quiet vs. with process starts", "",
                      "The same tools, same run: the quiet window above, then a window in which the bench starts "
                      "`true` at a fixed rate (a shell loop, cron, CGI). *execs/s* counts every exec on the machine "
                      "(netlink proc connector), *forks/s* every process created (/proc/stat): the bench's and "
                      "anyone else's.", "", wt, ""]
    if results.get("hotpath"):
        hot = results["hotpath"]
        parts += ["## 2. Hot path (in-process, one call timed at a time; config: %s)" % hot["config"], "",
                  ticks_table(hot), "", "### Victim selection vs. process count", "", selection_table(hot), "",
                  "Selection = `read_procs` (whole /proc) + `classify` + growth + `choose_victim`. The pressure "
                  "tick is `Daemon._tick` in system scope (dry run) with MemAvailable put below the kill line: "
                  "what every tick costs while memory is short.", ""]
    if results.get("reaction") or results.get("idle"):
        r = results.get("reaction") or {}
        parts += ["## 3. Reaction in a memory cgroup (limit %s MiB, fresh guardian per run)" % r.get("limit_mib", 256),
                  "",
                  reaction_table(results.get("reaction"), results.get("idle")), "",
                  "Ranges are median (min–max) over the runs. The hog *ignores SIGTERM* (only the kill rung ends it) "
                  "or is *default* (SIGTERM at the terminate line ends it). *threshold → freed* is measured by the "
                  "bench alone: the cgroup's usage polled every ~%s ms, from the first sample past limit − line + "
                  "page cache to the first sample with half the hog's charge gone. The *nominal line* is the "
                  "config's line (kill, or terminate when SIGTERM ended it) at the fill rate achieved "
                  "(policy.lines_for): the line the guardian means to hold. Where the guardian's own line ran "
                  "ahead of it (its fill-rate estimate spiked), it acted before usage got there (*early*: the "
                  "crossing is extrapolated at the achieved rate and the time comes out negative). The "
                  "guardian's-line column measures from the crossing of the line it reported at the act, an "
                  "upper bound since that line was lower before. *headroom left* is limit − the cgroup's peak "
                  "usage (max_usage_in_bytes)."
                  % (fmt(median([x.get("poll_interval_ms") for x in r.get("runs", [])]), 2)), ""]
    if results.get("modcost"):
        import modcost
        parts += [modcost.markdown(results["modcost"]).replace("## Module cost", "## 4. Module cost", 1)]
    items = targets(results)
    if items:
        parts += ["## Targets", "", targets_table(items), ""]
    if results.get("chart"):
        parts += ["Chart: `%s`" % results["chart"], ""]
    return "\n".join(parts)


def chart(results: Dict, path: str) -> Optional[str]:
    """A 2×2 PNG; returns None (and says why) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return "no chart: %s (make bench installs matplotlib)" % exc
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    idle = results.get("idle")
    ax = axes[0][0]
    if idle:
        rows = [r for r in idle["rows"] if "skip" not in r]
        names = [r["tool"].replace(" (", "\n(") for r in rows]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r["cpu_ms"] for r in rows], 0.4, label="CPU ms", color="#4472c4")
        ax2 = ax.twinx()
        ax2.bar([i + 0.2 for i in x], [r["wakeups"] for r in rows], 0.4, label="wake-ups", color="#ed7d31")
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylabel("CPU ms in %.0f s" % idle["seconds"])
        ax2.set_ylabel("wake-ups in %.0f s" % idle["seconds"])
        ax.set_title("Idle cost (together, same window)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")
        ax = axes[0][1]
        ax.bar([i - 0.27 for i in x], [r["rss_mib"] for r in rows], 0.27, label="RSS")
        ax.bar([i for i in x], [r["pss_mib"] for r in rows], 0.27, label="PSS")
        ax.bar([i + 0.27 for i in x], [r["private_mib"] for r in rows], 0.27, label="private")
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylabel("MiB")
        ax.set_title("Idle memory")
        ax.legend(fontsize=8)
    hot = results.get("hotpath")
    ax = axes[1][0]
    if hot and hot.get("selection"):
        sel = hot["selection"]
        procs = [r["processes"] for r in sel]
        ax.plot(procs, [r["total_ms"] for r in sel], "o-", label="victim selection")
        ax.plot(procs, [r["read_procs_ms"] for r in sel], "s--", label="of which read_procs")
        ax.plot(procs, [r["pressure_tick_ms"] for r in sel], "^:", label="pressure tick (system)")
        ax.axhline(TARGET_SELECTION_MS, color="red", lw=1, ls="--", label="target %.0f ms @ %d" % (
            TARGET_SELECTION_MS, TARGET_SELECTION_PROCS))
        ax.axvline(TARGET_SELECTION_PROCS, color="red", lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(procs)
        ax.set_xticklabels([str(p) for p in procs])
        ax.minorticks_off()
        ax.set_xlabel("processes read (/proc)")
        ax.set_ylabel("ms")
        ax.set_title("Victim selection vs. process count")
        ax.legend(fontsize=8)
    reaction = results.get("reaction")
    ax = axes[1][1]
    if reaction and reaction.get("runs"):
        styles = {("python", "ignores SIGTERM"): ("o", "Python, hog ignores SIGTERM"),
                  ("python", "default"): ("s", "Python, default hog"),
                  ("frozen", "ignores SIGTERM"): ("D", "frozen, hog ignores SIGTERM")}
        for (tool, hog), (marker, label) in styles.items():
            runs = [r for r in reaction["runs"] if r["hog"] == hog and r["guardian"] == tool]
            pts = [(r["rate_mib_s"], r["threshold_to_freed_ms"])
                   for r in runs if r.get("threshold_to_freed_ms") is not None]
            if pts:
                shift = {"python": 1.0, "frozen": 1.12}[tool] * (0.92 if hog == "default" else 1.0)
                ax.scatter([p[0] * shift for p in pts], [p[1] for p in pts], marker=marker, alpha=0.7,
                           label="threshold→freed, " + label)
        pts = [(r["rate_mib_s"], r["reaction_ms"]) for r in reaction["runs"] if r.get("reaction_ms") is not None]
        if pts:
            ax.scatter([p[0] * 1.2 for p in pts], [p[1] for p in pts], marker="x", color="grey", alpha=0.7,
                       label="guardian's reaction_ms (reading→exit)")
        ax.axhline(TARGET_REACTION_MS, color="red", lw=1, ls="--", label="target %.0f ms @ %d MiB/s" % (
            TARGET_REACTION_MS, TARGET_REACTION_RATE))
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xscale("log")
        rates = sorted(set(r["rate_mib_s"] for r in reaction["runs"]))
        ax.set_xticks(rates)
        ax.set_xticklabels([str(r) for r in rates])
        ax.minorticks_off()
        ax.set_yscale("symlog", linthresh=20)
        ax.set_xlabel("fill rate MiB/s (cgroup limit %d MiB)" % reaction["limit_mib"])
        ax.set_ylabel("ms (below 0: freed before the nominal line)")
        ax.set_title("Reaction in a memory cgroup (guardian only)")
        ax.legend(fontsize=7)
    fig.suptitle("guardian vs earlyoom vs nohang — %s, kernel %s" % (
        results["machine"].get("cpu", ""), results["machine"].get("kernel", "")), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
