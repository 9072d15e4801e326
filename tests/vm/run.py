#!/usr/bin/env python3
"""The VM test suite: real kernel, little RAM, no swap; the guardian against the kernel OOM killer,
side by side with earlyoom.

Builds the image from the current tree (tests/vm/image.py), boots one QEMU/TCG VM per scenario
and tool (two at a time), reads the JSON lines the guest agent writes to its second serial port,
checks every round and prints a side-by-side table. Exit status 0 only when every check of the
guardian passed (earlyoom is the reference: its results are shown, never asserted).

  python3 tests/vm/run.py                      all scenarios, both tools
  python3 tests/vm/run.py runaway-256 leak     some scenarios
  python3 tests/vm/run.py --tools guardian     only the guardian
  python3 tests/vm/run.py --list               the scenarios

Results: build/vm/results/results.json (everything, with the guest's raw lines) and results.md.
"""
import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import image  # noqa: E402
from arches import ARCHES, HOST, Arch, parse as parse_arches  # noqa: E402
from scenarios import BY_NAME, SCENARIOS, Scenario  # noqa: E402

MIB = 1024  # in KiB, as the guest reports sizes
# What the frozen guardian may hold at rest, all its processes together plus what it unpacked
# into RAM (tmpfs, ramfs): the bound of its idle cost, as earlyoom's own tests bound its RSS.
# Issue 14's goal was 14 MiB, 12 with the floor pushed down; it holds 9.7-10.1 (arm64 the most).
IDLE_RAM_BOUND_KIB = int(os.environ.get("VM_IDLE_RAM_BOUND_MIB", "12")) * MIB
RAM_FILESYSTEMS = ("tmpfs", "ramfs", "rootfs", "none")
# What the guardian's own code may add to the floor's anonymous memory (the same boot): issue
# 14's goal for its own cost, 1.5 MiB. Anonymous, not RSS: the file pages above the floor's vary
# by up to 0.15 MiB from boot to boot with what the page cache holds (packaging/README.md).
OWN_ANON_BOUND_KIB = int(float(os.environ.get("VM_OWN_ANON_BOUND_MIB", "1.5")) * MIB)


def idle_ram_kib(idle: Dict[str, Any]) -> int:
    """RSS of the tool's processes, plus the bytes it unpacked where they hold RAM."""
    in_ram = idle.get("unpack_kib", 0) if idle.get("unpack_fs") in RAM_FILESYSTEMS else 0
    return idle["rss_kib"] + in_ram


def above_floor(idle: Dict[str, Any], floor: Dict[str, Any]) -> Dict[str, int]:
    """What the guardian holds above the frozen floor measured in the same boot (KiB): RSS, anon
    and private dirty from its idle window; PSS from the two read at the same moment (the floor
    line's guardian_pss_kib), since the libraries they share are split between them only while
    both run."""
    out = {"rss_kib": idle["rss_kib"] - floor["rss_kib"],
           "pss_kib": floor.get("guardian_pss_kib", idle["pss_kib"]) - floor["pss_kib"]}
    for key in ("anon_kib", "private_dirty_kib"):
        if key in idle and key in floor:
            out[key] = idle[key] - floor[key]
    return out


def log(message: str) -> None:
    print("vm: %s" % message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running a VM

def vm_timeout(s: Scenario, arch: Arch) -> int:
    """The whole VM's time, boot to poweroff: the scenario's, longer where this architecture's
    TCG is slower than x86_64's."""
    return int(s.timeout_s * arch.slowdown)


def qemu_command(arch: Arch, paths: Dict[str, str], mem_mib: int, append: str, data: str, console: str,
                 results: str) -> List[str]:
    """The VM: 1 vCPU under TCG, the kernel and initramfs, the read-only root disk (vda), the data
    disk (vdb), the console and the port the agent writes its results to."""
    return ([shutil.which(arch.qemu) or arch.qemu, "-accel", "tcg"] + list(arch.machine)
            + ["-m", str(mem_mib), "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-kernel", paths["kernel"], "-initrd", paths["initramfs"], "-append", append,
               "-drive", "file=%s,if=virtio,format=raw,readonly=on" % paths["root"],
               "-drive", "file=%s,if=virtio,format=raw" % data,
               "-serial", "file:%s" % console]
            + [a.replace("{path}", results) for a in arch.results_args])


def boot(paths: Dict[str, str], s: Scenario, tool: str, repeat: int = 0, timeout: Optional[int] = None,
         overrides: Optional[Dict[str, str]] = None, arch: Arch = ARCHES[HOST]) -> Dict[str, Any]:
    """Boot one VM for the scenario and tool; returns its lines (parsed) and timings.
    `overrides` replace entries of the scenario's env in the guest (--set)."""
    overrides = overrides or {}
    name = "%s.%s%s" % (s.name, tool, ".%d" % repeat if repeat else "")
    work = os.path.join(arch.build, "runs", name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = os.path.join(work, "data.img")
    with open(data, "wb") as f:
        f.truncate(16 << 20)
    results = os.path.join(work, "results.jsonl")
    console = os.path.join(work, "console.log")
    append = " ".join(filter(None, [
        "console=%s loglevel=4 mitigations=off panic=-1" % arch.console,
        s.kernel_args, "vmtest.scenario=%s vmtest.tool=%s" % (s.name, tool)]
        + (["vmtest.out=%s" % arch.results_port] if arch.results_port != "ttyS1" else [])
        + ["vmtest.env.%s=%s" % (k, v.replace(" ", ",")) for k, v in sorted(overrides.items())]))
    cmd = qemu_command(arch, paths, s.mem_mib, append, data, console, results)
    with open(os.path.join(work, "qemu.cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "qemu.err"), "w"))
    timed_out = False
    try:
        proc.wait(timeout or vm_timeout(s, arch))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    seconds = time.monotonic() - started
    lines, garbled = [], 0
    if os.path.exists(results):
        with open(results, errors="replace") as f:
            for raw in f:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    garbled += 1
    os.unlink(data)
    return {"scenario": s.name, "tool": tool, "arch": arch.name, "repeat": repeat, "seconds": round(seconds, 1),
            "timed_out": timed_out,
            "exit": proc.returncode, "lines": lines, "garbled_lines": garbled, "dir": os.path.relpath(work, image.REPO)}


# --------------------------------------------------------------------------- judging

def minimal_ended(ended: List[Dict[str, Any]], available_kib: int, mark_kib: int) -> int:
    """The fewest of the ended processes that had to end: give back, smallest first, those
    whose final size still fits above the mark (a runaway, final_kib < 0, always had to)."""
    room = available_kib - mark_kib
    spare = 0
    for size in sorted(e["final_kib"] for e in ended if e["final_kib"] >= 0):
        if size <= room:
            room -= size
            spare += 1
        else:
            break
    return len(ended) - spare


def events_in(events: List[Dict[str, Any]], t0: float, t1: float, kinds: Tuple[str, ...]) -> List[Dict[str, Any]]:
    return [e for e in events if e.get("event") in kinds and t0 <= e.get("time", 0) <= t1 + 0.5]


def earlyoom_kills(logs: List[str]) -> int:
    return sum(1 for line in logs if line.startswith("sending SIG"))


STRESSOR = "stress-ng"  # the name (comm) of every stress-ng process starts so
_EARLYOOM_SIGNAL = re.compile(r'^sending (SIG\w+) to process (\d+) uid \d+ "([^"]*)"')


def tool_ends(tool: str, r: Dict[str, Any], events: List[Dict[str, Any]]) -> Dict[int, str]:
    """The processes the tool itself signalled to end in the round: pid -> name. The guardian:
    its kill and terminate events (not dry runs); earlyoom: the 'sending SIG...' lines it
    logged in the round (SIGTERM and then SIGKILL to one process are one end)."""
    out: Dict[int, str] = {}
    if tool == "guardian":
        for e in events_in(events, r["t0"], r["t1"], ("kill", "terminate")):
            if not e.get("dry_run") and isinstance(e.get("pid"), int):
                out.setdefault(e["pid"], str(e.get("name", "?")))
    else:
        for line in r.get("tool_signals") or []:
            m = _EARLYOOM_SIGNAL.match(line)
            if m:
                out.setdefault(int(m.group(2)), m.group(3))
    return out


def stress_ended(tool: str, r: Dict[str, Any], events: List[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """(stress-ng processes ended, bystanders ended) in a stress round: what the tool ended,
    and the tracked services and webui that are gone whoever ended them (the kernel too)."""
    ended = tool_ends(tool, r, events)
    for e in r.get("ended", []):
        ended.setdefault(e["pid"], e["name"])
    stressors = [n for _, n in sorted(ended.items()) if n.startswith(STRESSOR)]
    bystanders = [n for _, n in sorted(ended.items()) if not n.startswith(STRESSOR)]
    return stressors, bystanders


def names(ended: Sequence[str]) -> str:
    """Names, each repeated one once with its count ("a,b x3"): a stress round ends the same
    worker name many times."""
    counts: Dict[str, int] = {}
    for n in ended:
        counts[n] = counts.get(n, 0) + 1
    return ",".join(n if c == 1 else "%s x%d" % (n, c) for n, c in counts.items())


def judge(run: Dict[str, Any]) -> Dict[str, Any]:
    """Checks and numbers for one VM run."""
    lines = run["lines"]
    by = lambda t: [x for x in lines if x.get("type") == t]  # noqa: E731
    boot = (by("boot") or [{}])[0]
    idle = (by("idle") or [None])[0]
    floor = (by("floor") or [None])[0]
    ready = (by("ready") or [{}])[0]
    events = [x["e"] for x in by("event")]
    tool_log = [x["line"] for x in by("log") if x.get("tool", "earlyoom") == "earlyoom"]
    mark = boot.get("mark_kib", 24 * MIB)
    arch = ARCHES[run.get("arch", HOST)]
    out: Dict[str, Any] = {"scenario": run["scenario"], "tool": run["tool"], "arch": arch.name,
                           "repeat": run.get("repeat", 0),
                           "vm_seconds": run["seconds"],
                           "mem_total_mib": round(boot.get("mem_total_kib", 0) / MIB, 1),
                           "psi": boot.get("psi"), "zram": boot.get("zram"), "idle": idle, "floor": floor,
                           "rounds": [], "failures": [], "notes": [], "known": [],
                           "errors": [x["message"] for x in by("error")], "dir": run["dir"]}
    if run["tool"] == "guardian":
        out["facts"] = kernel_facts(run)
    if floor and idle and run["tool"] == "guardian":
        out["above_floor"] = above_floor(idle, floor)
        done = by("floor_done")
        if done:
            out["floor_vm_s"] = done[0]["seconds"]  # what measuring the floor added to the VM's time
    starts = [e for e in events if e.get("event") == "start"]
    if starts and boot:
        boot_real = boot["now"] - boot["uptime"]
        out["tool_started_s"] = round(starts[0]["time"] - boot_real, 1)
        out["wait_mode"] = starts[0].get("message", "")
    if run["timed_out"]:
        out["failures"].append("VM did not finish within %d s" % vm_timeout(BY_NAME[run["scenario"]], arch))
    if not by("done"):
        out["failures"].append("the agent did not finish (see %s/console.log)" % run["dir"])
    for message in out["errors"]:
        out["failures"].append("agent: %s" % message)
    if run["garbled_lines"]:
        out["notes"].append("%d garbled result lines" % run["garbled_lines"])

    s = BY_NAME[run["scenario"]]
    for r in by("round"):
        ended = r.get("ended", [])
        mon = r.get("monitor") or {}
        rnd: Dict[str, Any] = {
            "label": r["label"], "oom_kills": r["oom_kills"], "oom_messages": r["oom_messages"],
            "ended": [e["name"] for e in ended], "ended_count": len(ended),
            "minimal": minimal_ended(ended, r["available_kib"], mark),
            "critd_survived": r["critd_alive"] and r["critd_after"] == r["critd_before"],
            "available_end_mib": round(r["available_kib"] / MIB, 1),
            "min_available_mib": round(mon.get("min_available_kib", 0) / MIB, 1),
            "recover_s": round(mon.get("recover_ms", 0) / 1000.0, 2),
            "below_mark_s": round(mon.get("below_low_ms", 0) / 1000.0, 2),
            "psi_full_ms": mon.get("psi_full_ms"),
            "tool_rss_mib": round(r.get("tool_rss_kib", 0) / MIB, 1),
            "tool_hwm_mib": round(r.get("tool_hwm_kib", 0) / MIB, 1),
        }
        if "rate" in r:
            rnd["rate_asked"] = r["rate"]
            rnd["rate_seen"] = round(r["hog_mib"] / r["hog_s"], 1) if r.get("hog_s") else None
            rnd["hog_mib"] = r.get("hog_mib")
            rnd["timed_out"] = r.get("timed_out")
        acts = events_in(events, r["t0"], r["t1"], ("kill", "kill_result", "terminate", "reclaim", "leak",
                                                       "leak_action", "leak_result", "kernel_oom", "start"))
        rnd["acts"] = [{"event": e["event"], "name": e.get("name", e.get("step", "")),
                        "why": e.get("why", ""), "reaction_ms": e.get("reaction_ms"),
                        "freed_mib": (round(e["freed_bytes"] / 2**20, 1)
                                      if isinstance(e.get("freed_bytes"), (int, float)) else None)}
                       for e in acts]
        rnd["reclaims"] = sum(1 for e in acts if e["event"] == "reclaim")
        if s.kind == "stress":
            # Every stress-ng process ended had to end (a runaway always has to); anything
            # else ended is one too many.
            stressors, bystanders = stress_ended(run["tool"], r, events)
            rnd.update(ended=stressors + bystanders, ended_count=len(stressors) + len(bystanders),
                       minimal=len(stressors), bystanders_ended=bystanders, stress_status=r.get("stress_status"))
        # The checks (asserted for the guardian, shown for earlyoom).
        fails = []
        first_burst = 0
        if s.kind == "stress" and run["tool"] == "guardian" and r["oom_kills"]:
            # A load that fills memory flat out from rest (bigheap: 450 MiB/s under TCG, the
            # 100 MiB of headroom in 0.22 s) can win its first burst within one sleep of a tool at
            # rest, before there is any history; earlyoom loses it too. That first kill is
            # reported as known; every kernel kill after the guardian's first act fails.
            first_act = min((e["time"] for e in events_in(events, r["t0"], r["t1"], ("kill", "terminate"))),
                            default=float("inf"))
            first_burst = min(1, sum(1 for e in events_in(events, r["t0"], r["t1"], ("kernel_oom",))
                                     if e["time"] < first_act))
            if first_burst:
                out["known"].append("%s: the kernel OOM killer won the first burst from rest, before the guardian's "
                                    "first act (flat out, no history yet)" % r["label"])
        if r["oom_kills"] - first_burst > 0 or r["oom_messages"] - first_burst > 0:
            fails.append(("oom", "kernel OOM killer ran (%d kills, %d 'invoked oom-killer')" % (
                r["oom_kills"], r["oom_messages"])))
        if s.kind == "leak":
            restarted = r.get("restarted_at", 0) > 0 and r["critd_alive"]
            rnd["critd_survived"] = bool(restarted)
            rnd["critd_restarted"] = bool(r.get("restarted_at", 0) > 0)
            if restarted:
                rnd["restart_after_s"] = round(r["restarted_at"] - r["t0"], 1)
            if not restarted:
                fails.append(("critical", "critd was not restarted on purpose (alive: %s)" % r["critd_alive"]))
            elif run["tool"] == "guardian":
                # The restart command runs at 0, whatever the guardian's own -1000 (so nothing
                # it starts is beyond the kernel's OOM killer), and the daemon it restarted
                # gets the board's value from the adj keeper.
                rnd["restart_cmd_adj"], rnd["critd1_adj"] = r.get("restart_cmd_adj"), r.get("critd1_adj")
                if r.get("restart_cmd_adj") != 0:
                    fails.append(("adj", "the restart command ran at oom_score_adj %s, not 0"
                                  % r.get("restart_cmd_adj")))
                if r.get("critd1_adj") != -900:
                    fails.append(("adj", "the restarted critd has oom_score_adj %s, not the board's -900"
                                  % r.get("critd1_adj")))
        elif not rnd["critd_survived"]:
            fails.append(("critical", "critd did not survive (pid %s -> %s, alive %s)" % (
                r["critd_before"], r["critd_after"], r["critd_alive"])))
        if s.kind == "stress" and rnd["bystanders_ended"]:
            fails.append(("minimal", "bystander(s) ended: %s (beside %d stress-ng process(es))" % (
                names(rnd["bystanders_ended"]), rnd["minimal"])))
        elif rnd["ended_count"] > rnd["minimal"]:
            fails.append(("minimal", "ended %d (%s), %d would have restored headroom" % (
                rnd["ended_count"], ", ".join(rnd["ended"]), rnd["minimal"])))
        if s.kind in ("runaway", "restart", "newborn") and "hog" not in rnd["ended"]:
            fails.append(("runaway", "the runaway was not ended"))
        if r["available_kib"] < mark and not r.get("timed_out"):
            fails.append(("headroom", "headroom not restored: %.0f MiB available, mark %.0f MiB" % (
                r["available_kib"] / MIB, mark / MIB)))
        if r.get("timed_out"):
            fails.append(("timeout", "stress-ng did not stop within the round's time" if s.kind == "stress"
                          else "nothing ended the runaway within the round's time"))
        if s.kind == "pagecache" and rnd["ended_count"]:
            fails.append(("pagecache", "a process was ended where reclaim alone should do"))
        if s.kind == "restart":
            rnd["tool_procs_after"] = r.get("tool_procs_after")
            rnd["killed"] = r.get("killed")
            back = [e for e in events if e.get("event") == "start" and e["time"] > r.get("kill_time", 0)]
            if run["tool"] == "guardian":
                if back:
                    rnd["restart_s"] = round(back[0]["time"] - r["kill_time"], 1)
                else:
                    fails.append(("restart", "the guardian did not come back"))
                if r.get("tool_procs_after", 0) > 2:
                    fails.append(("restart", "%d guardian processes after the restart: a second guardian beside "
                                  "the orphaned worker of the killed one" % r["tool_procs_after"]))
            elif not r.get("tool_pids_after"):
                fails.append(("restart", "earlyoom did not come back"))
        rnd["checks_failed"] = [m for _, m in fails]
        rnd["ended_pids"] = [e["pid"] for e in ended]
        out["rounds"].append(rnd)
        for key, message in fails:
            if rnd.get("rate_asked") == 0:
                # Flat out is beyond the 5-200 MiB/s the suite asserts: it finds the ceiling.
                out["notes"].append("%s (beyond 200 MiB/s, not asserted): %s" % (r["label"], message))
            elif run["tool"] == "guardian" and key in s.known:
                out["known"].append("%s: %s (known: %s)" % (r["label"], message, s.known[key]))
            elif (run["tool"] == "guardian" and s.max_asserted_rate is not None
                  and rnd.get("rate_asked", 0) > s.max_asserted_rate):
                out["known"].append("%s: %s (above %g MiB/s, known: %s)" % (
                    r["label"], message, s.max_asserted_rate, s.above_rate_reason))
            else:
                out["failures"].append("%s: %s" % (r["label"], message))
    # A service ended when no round was running (at idle, or while memory settled).
    ended_pids = {pid for rnd in out["rounds"] for pid in rnd["ended_pids"]}
    before = [ready.get("lowprio")] + [r.get("lowprio_before") for r in by("round")]
    if ready and not ready.get("lowprio"):
        out["failures"].append("lowprio was ended before the first round (at idle)")
    for earlier, later in zip(before, before[1:]):
        if earlier and later and earlier != later and earlier not in ended_pids:
            out["failures"].append("lowprio[%s] was ended outside any round (at idle or between rounds)" % earlier)
    if not out["rounds"] and not out["failures"]:
        out["failures"].append("no rounds reported")
    if run["tool"] == "guardian" and idle and idle_ram_kib(idle) > IDLE_RAM_BOUND_KIB:
        out["failures"].append("idle: the guardian holds %.1f MiB (RSS of %d processes, %.1f MiB unpacked on %s), "
                               "over its bound of %.0f MiB" % (
                                   idle_ram_kib(idle) / MIB, idle["procs"], idle.get("unpack_kib", 0) / MIB,
                                   idle.get("unpack_fs") or "-", IDLE_RAM_BOUND_KIB / MIB))
    own = out.get("above_floor", {}).get("anon_kib")
    if own is not None and own > OWN_ANON_BOUND_KIB:
        out["failures"].append("idle: the guardian's anonymous memory is %.2f MiB above the floor's (same boot), "
                               "over its bound of %.2f MiB" % (own / MIB, OWN_ANON_BOUND_KIB / MIB))
    if not s.asserted and out["failures"]:
        out["notes"] = ["known problem, not asserted: %s" % f for f in out["failures"]] + out["notes"]
        out["failures"] = []
        out["informational"] = True
    if run["tool"] == "earlyoom":
        out["tool_kills_logged"] = earlyoom_kills(tool_log)
    out["kernel_lines"] = [x["line"] for x in by("kernel")][:6]
    return out


def highest_safe_rate(rounds: List[Dict[str, Any]]) -> Optional[str]:
    """The highest runaway rate up to which no round saw a kernel OOM kill."""
    rated = sorted((r for r in rounds if "rate_asked" in r),
                   key=lambda r: (r["rate_asked"] == 0, r["rate_asked"]))
    best = None
    for r in rated:
        if r["oom_kills"] or r["oom_messages"]:
            break
        best = "%s (%s MiB/s seen)" % ("flat out" if r["rate_asked"] == 0 else "%g MiB/s" % r["rate_asked"],
                                        r.get("rate_seen") or "-")
    return best or "none"


# --------------------------------------------------------------------------- the report

def _cell(r: Optional[Dict[str, Any]]) -> List[str]:
    if r is None:
        return ["-"] * 5
    ended = "%d" % r["ended_count"]
    if r["ended"]:
        ended += " (%s)" % names(r["ended"])
    ended += " / min %d" % r["minimal"]
    crit = "yes" if r["critd_survived"] else "NO"
    if r.get("critd_restarted"):
        crit = "restarted" if r["critd_survived"] else "NO"
    return [str(r["oom_kills"]), ended, crit, "%.1f" % r["recover_s"], "%.0f" % r["min_available_mib"]]


INTRO = ("QEMU/TCG, 1 vCPU, no swap, Debian kernel; every VM boots its own image from the current tree. "
         "Per round: kernel OOM kills; processes ended (which) / the fewest that restore headroom "
         "(MemAvailable back above the default terminate line: max(10 % MemTotal, min(24 MiB, 15 % MemTotal))); "
         "critical daemon survived; time to recover "
         "(first dip below that mark until back above it, s); lowest MemAvailable (MiB).")


def report(judged: List[Dict[str, Any]], wall_s: float, retries: Sequence[Dict[str, Any]] = ()) -> str:
    """The report: with one architecture as it always was; with several, a comparison of them
    first (kernel facts, idle cost, highest safe rate, checks), then each one's tables."""
    arches = [a for a in ARCHES if any(j.get("arch", HOST) == a for j in judged)]
    out = ["# VM test suite: guardian vs earlyoom", ""]
    if len(arches) <= 1:
        out += [INTRO, ""] + _arch_report(judged, retries, "##")
        out += ["", "Wall time: %.0f s for %d VMs." % (wall_s, len(judged) + len(retries))]
        return "\n".join(out) + "\n"
    out += [INTRO + " Each architecture's tables follow the comparison.", ""]
    out += _across(judged, retries, arches)
    for a in arches:
        mine = [j for j in judged if j.get("arch", HOST) == a]
        earlier = next((j["earlier"] for j in mine if j.get("earlier")), None)
        arch = ARCHES[a]
        out += ["", "## %s: %s%s" % (a, " ".join(arch.machine[1::2]) if not arch.native else "pc",
                                     " (from an earlier run, %s)" % earlier if earlier else ""), ""]
        out += _arch_report(mine, [r for r in retries if r.get("arch", HOST) == a], "###")
    out += ["", "Wall time: %.0f s for %d VMs." % (wall_s, len([j for j in judged if not j.get("earlier")])
                                                   + len(retries))]
    return "\n".join(out) + "\n"


def kernel_facts(run: Dict[str, Any]) -> Dict[str, Any]:
    """What one guardian VM's kernel offered, from the boot line and the guardian's events: the
    kernel, page size, PSI, the CMA area (part of MemTotal, but only movable pages go there), how
    the guardian waited (its start line), whether process_mrelease reaped the memory of the
    victims it SIGKILLed."""
    lines = run.get("lines", [])
    boot = next((x for x in lines if x.get("type") == "boot"), {})
    events = [x["e"] for x in lines if x.get("type") == "event"]
    start = next((e for e in events if e.get("event") == "start"), {})
    # The victims that got the SIGKILL (process_mrelease is tried after it; one that exited on the
    # SIGTERM first got neither).
    results = [e for e in events if e.get("event") == "kill_result" and not e.get("exited_on_sigterm")]
    return {"kernel": boot.get("kernel", "-"), "page_kib": boot.get("page_kib"), "psi": boot.get("psi"),
            "cma_kib": boot.get("cma_total_kib"), "mem_total_kib": boot.get("mem_total_kib"),
            "wait": (start.get("message") or "-").replace("guardian armed, ", ""),
            "kills": len(results), "mreleased": sum(1 for e in results if e.get("mreleased")),
            "mrelease_skipped": [str(e["mrelease_skipped"]) for e in results if e.get("mrelease_skipped")],
            "kill_errors": sorted({str(e["error"]) for e in results if e.get("error")})}


def _across(judged: List[Dict[str, Any]], retries: Sequence[Dict[str, Any]], arches: List[str]) -> List[str]:
    first = [j for j in judged if not j.get("repeat")]
    out = ["## Across architectures", "",
           "The same scenarios, images and checks on each architecture's kernel (Debian's), BusyBox and "
           "earlyoom; the guardian and the floor frozen for it (`make frozen-ARCH`).", "",
           "| arch | kernel | page KiB | PSI | CMA MiB of MemTotal MiB | the guardian's wait "
           "| SIGKILLs: process_mrelease reaped / all (why not) | errors |",
           "|---|---|---|---|---|---|---|---|"]
    for a in arches:
        facts = [j["facts"] for j in first if j.get("arch", HOST) == a and j.get("facts")]
        if not facts:
            continue
        f = facts[0]
        cma = sorted({"%.0f of %.0f" % ((x.get("cma_kib") or 0) / MIB, (x.get("mem_total_kib") or 0) / MIB)
                      for x in facts if x.get("mem_total_kib")})
        out.append("| %s | %s | %s | %s | %s | %s | %d / %d%s | %s |" % (
            a, f["kernel"], f["page_kib"] if f["page_kib"] is not None else "-",
            "yes" if f["psi"] else ("no" if f["psi"] is False else "-"), ", ".join(cma) or "-", f["wait"],
            sum(x["mreleased"] for x in facts), sum(x["kills"] for x in facts),
            " (%s)" % names(sorted(w for x in facts for w in x.get("mrelease_skipped", ())))
            if any(x.get("mrelease_skipped") for x in facts) else "",
            "; ".join(sorted({e for x in facts for e in x["kill_errors"]})) or "none"))
    out += ["", "Idle, each tool at rest over its window (the floor: a trivial frozen wake loop, measured over 5 s "
            "after the guardian's 20; its ticks and wake-ups scaled to 20 s):", "",
            "| scenario | tool | " + " | ".join("%s RSS / PSS / anon MiB | %s ticks, wake-ups / 20 s" % (a, a)
                                                  for a in arches) + " |",
            "|---|---|" + "---|---|" * len(arches)]

    def idle_cells(i: Optional[Dict[str, Any]]) -> List[str]:
        if not i:
            return ["-", "-"]
        return ["%.1f / %.1f / %s" % (i["rss_kib"] / MIB, i["pss_kib"] / MIB,
                                      "%.1f" % (i["anon_kib"] / MIB) if "anon_kib" in i else "-"),
                "%.0f, %.0f" % (i["ticks"] * 20 / i["seconds"], i["wakeups"] * 20 / i["seconds"])
                if i["seconds"] else "-"]
    for s in SCENARIOS:
        for tool in ("guardian", "floor", "earlyoom"):
            cells, any_ = [], False
            for a in arches:
                j = next((j for j in first if j["scenario"] == s.name and j.get("arch", HOST) == a
                          and j["tool"] == ("guardian" if tool == "floor" else tool)), None)
                i = (j or {}).get("floor" if tool == "floor" else "idle")
                any_ = any_ or bool(i)
                cells += idle_cells(i)
            if any_:
                out.append("| %s | %s | %s |" % (s.name, tool, " | ".join(cells)))
    out += ["", "Highest runaway rate with no kernel OOM kill; checks of the guardian's VMs (passed / all):", "",
            "| scenario | " + " | ".join("%s guardian | %s earlyoom" % (a, a) for a in arches) + " |",
            "|---|" + "---|---|" * len(arches)]
    for s in SCENARIOS:
        cells, any_ = [], False
        for a in arches:
            for tool in ("guardian", "earlyoom"):
                j = next((j for j in first if j["scenario"] == s.name and j.get("arch", HOST) == a
                          and j["tool"] == tool), None)
                any_ = any_ or j is not None
                if j is None:
                    cells.append("-")
                elif s.kind in ("runaway", "newborn"):
                    cells.append("%s%s" % (highest_safe_rate(j["rounds"]), "" if not j["failures"] else " (FAIL)"))
                else:
                    cells.append("pass" if not j["failures"] else ("FAIL" if tool == "guardian" else "fails"))
        if any_:
            out.append("| %s | %s |" % (s.name, " | ".join(cells)))
    out += ["", "| arch | guardian VMs passed / all (first boots; retries in the architecture's section) "
            "| earlyoom VMs failing their checks | VM seconds |",
            "|---|---|---|---|"]
    for a in arches:
        mine = [j for j in first if j.get("arch", HOST) == a]
        g = [j for j in mine if j["tool"] == "guardian"]
        out.append("| %s | %d / %d | %d of %d | %.0f |" % (
            a, sum(1 for j in g if not j["failures"]), len(g),
            sum(1 for j in mine if j["tool"] == "earlyoom" and j["failures"]),
            sum(1 for j in mine if j["tool"] == "earlyoom"),
            sum(j["vm_seconds"] for j in mine) + sum(r["vm_seconds"] for r in retries if r.get("arch", HOST) == a)))
    return out


def _arch_report(judged: List[Dict[str, Any]], retries: Sequence[Dict[str, Any]], h: str) -> List[str]:
    """One architecture's tables; section headings at level `h`."""
    repeats = judged
    judged = [j for j in judged if not j.get("repeat")]
    by_key = {(j["scenario"], j["tool"]): j for j in judged}
    scenarios = [s for s in SCENARIOS if any(k[0] == s.name for k in by_key)]
    out: List[str] = []
    head = ("| scenario | round | G oom | G ended / min | G crit | G recover s | G min MiB "
            "| E oom | E ended / min | E crit | E recover s | E min MiB |")
    out += [head, "|" + "---|" * 12]
    for s in scenarios:
        g, e = by_key.get((s.name, "guardian")), by_key.get((s.name, "earlyoom"))
        labels = []
        for j in (g, e):
            for r in (j or {}).get("rounds", []):
                if r["label"] not in labels:
                    labels.append(r["label"])
        for label in labels:
            gr = next((r for r in (g or {}).get("rounds", []) if r["label"] == label), None)
            er = next((r for r in (e or {}).get("rounds", []) if r["label"] == label), None)
            if label.startswith("rate="):
                rate = label[5:]
                seen = [x.get("rate_seen") or 0 for x in (gr, er) if x]
                label = ("flat out" if rate == "0" else rate + " MiB/s") + (
                    " (seen %s)" % "/".join("%g" % v for v in seen) if seen else "")
            out.append("| %s | %s | %s |" % (s.name, label, " | ".join(_cell(gr) + _cell(er))))
    out += ["", h + " Idle cost, start-up, wait mode", "",
            "Each tool at rest; in the guardian's VMs the floor (dist/guardian-floor: a trivial wake loop with "
            "the guardian's wake rule, frozen by the same spec) is started after the guardian's window and "
            "measured the same way over a shorter one. \"Above floor\": the guardian's RSS / PSS / anon minus "
            "the floor's, same boot (PSS of the two read at the same moment).", "",
            "| scenario | tool | mem MiB | RAM held MiB | RSS MiB | PSS MiB | private dirty MiB | anon MiB "
            "| above floor RSS / PSS / anon MiB | CPU ticks | wake-ups | window s | started at s "
            "| start-up ticks (settled after s) | notes |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def mib(d: Dict[str, Any], key: str, fmt: str = "%.1f") -> str:
        return fmt % (d[key] / MIB) if key in d else "-"

    for j in judged:
        i = j.get("idle")
        if not i:
            continue
        a = j.get("above_floor")
        out.append("| %s | %s | %s | %.1f | %.1f | %.1f | %s | %s | %s | %d | %d | %.0f | %s | %s | %s |" % (
            j["scenario"], j["tool"], j["mem_total_mib"], idle_ram_kib(i) / MIB, i["rss_kib"] / MIB,
            i["pss_kib"] / MIB, mib(i, "private_dirty_kib"), mib(i, "anon_kib"),
            " / ".join(mib(a, k, "%+.1f") for k in ("rss_kib", "pss_kib", "anon_kib")) if a else "-",
            i["ticks"],
            i["wakeups"], i["seconds"], j.get("tool_started_s", "-"),
            "%d (%.0f)" % (i["startup_ticks"], i["settle_s"]) if "startup_ticks" in i else "-",
            ("%d procs; unpacked %.1f MiB on %s" % (i["procs"], i["unpack_kib"] / MIB, i["unpack_fs"])
             if j["tool"] == "guardian" and i["unpack_kib"] else "%d proc" % i["procs"])
            + ("; swap on zram %.0f MiB (%s)" % (j["zram"]["disksize"] / 2**20, j["zram"]["comp"])
               if j.get("zram") else "")))
        f = j.get("floor") if j["tool"] == "guardian" else None
        if f:
            out.append("| %s | floor | %s | %.1f | %.1f | %.1f | %s | %s | - | %d | %d | %.0f | %s | - | %s |" % (
                j["scenario"], j["mem_total_mib"], idle_ram_kib(f) / MIB, f["rss_kib"] / MIB, f["pss_kib"] / MIB,
                mib(f, "private_dirty_kib"), mib(f, "anon_kib"), f["ticks"], f["wakeups"], f["seconds"],
                "-", "; ".join(filter(None, [
                    "%d proc%s" % (f["procs"], "s" if f["procs"] != 1 else ""),
                    "in its loop %.1f s after start" % f["started_s"] if "started_s" in f else "",
                    "args %s" % f["args"] if f.get("args") else "",
                    "adds %.0f s to the VM" % j["floor_vm_s"] if "floor_vm_s" in j else ""]))))
    out += ["", h + " Highest runaway rate with no kernel OOM kill", "",
            "| scenario | guardian | earlyoom |", "|---|---|---|"]
    for s in scenarios:
        if s.kind not in ("runaway", "newborn"):
            continue
        cells = [highest_safe_rate(by_key[(s.name, t)]["rounds"]) if (s.name, t) in by_key else "-"
                 for t in ("guardian", "earlyoom")]
        out.append("| %s | %s | %s |" % (s.name, cells[0], cells[1]))
    out += ["", h + " What the guardian did", ""]
    for j in judged:
        if j["tool"] != "guardian":
            continue
        for r in j["rounds"]:
            acts = []
            if len(r["acts"]) > 24:
                # A respawning load: what it did, how often, and how fast the kills were.
                counts: Dict[str, int] = {}
                for a in r["acts"]:
                    if a["event"] not in ("start", "kill_result"):
                        key = ("%s %s" % (a["event"], a["name"])).strip()
                        counts[key] = counts.get(key, 0) + 1
                gone = sorted(a.get("reaction_ms") or 0 for a in r["acts"] if a["event"] == "kill_result")
                acts = ["%s x%d" % kv for kv in counts.items()]
                if gone:
                    acts.append("kills gone %.0f-%.0f ms (median %.0f) after the reading" % (
                        gone[0], gone[-1], gone[len(gone) // 2]))
            for a in r["acts"] if not acts else ():
                if a["event"] == "kill_result" and acts:
                    acts[-1] += " (gone %.0f ms after the reading, %s MiB back)" % (a.get("reaction_ms") or 0,
                                                                                      a.get("freed_mib"))
                elif a["event"] != "start":
                    acts.append("%s %s" % (a["event"], a["name"]))
            extra = ""
            if "restart_s" in r:
                extra = "; back %.1f s after SIGKILL, %s procs after" % (r["restart_s"], r.get("tool_procs_after"))
            if "restart_after_s" in r:
                extra = "; critd restarted %.1f s into the leak" % r["restart_after_s"]
            out.append("- %s %s: %s%s" % (j["scenario"], r["label"], ", ".join(acts) or "nothing", extra))
    fails = [(j, f) for j in judged for f in j["failures"]]
    out += ["", h + " Checks", ""]
    for j in judged:
        status = "PASS" if not j["failures"] else ("FAIL" if j["tool"] == "guardian" else "fails (reference)")
        if not j["failures"] and j["known"]:
            status = "PASS with %d known problem(s)" % len(j["known"])
        if j.get("informational"):
            status = "informational (not asserted)"
        out.append("- %s / %s: %s (VM %.0f s)%s" % (
            j["scenario"], j["tool"], status, j["vm_seconds"],
            "".join("\n  - " + f for f in j["failures"] + j["known"] + j["notes"])))
    if len(repeats) > len(judged):
        out += ["", h + " Repeats", ""]
        for key in sorted({(j["scenario"], j["tool"]) for j in repeats}):
            runs = [j for j in repeats if (j["scenario"], j["tool"]) == key]
            bad = [j for j in runs if j["failures"]]
            known = [j for j in runs if j["known"]]
            out.append("- %s / %s: %d of %d runs failed, %d with known problems%s" % (
                key[0], key[1], len(bad), len(runs), len(known), "".join(
                    "\n  - run %d: %s" % (j["repeat"], "; ".join(j["failures"] + j["known"])) for j in bad + known)))
    if retries:
        out += ["", h + " Retries", "",
                "Guardian runs that failed were booted again (`--retry-failed`); the table above shows "
                "the first run.", ""]
        for j in retries:
            out.append("- %s / guardian, retry %d: %s (VM %.0f s); the run before failed: %s%s" % (
                j["scenario"], j["attempt"], "PASS" if not j["failures"] else "FAIL", j["vm_seconds"],
                "; ".join(j["retry_of"]), "".join("\n  - " + f for f in j["failures"])))
    del fails
    return out


def earlier_runs(path: str, arches: Sequence[str]) -> List[Dict[str, Any]]:
    """The judged runs of the architectures this run does not boot, from the results it replaces
    (`make vm-test` boots x86_64 and arm64, `make vm-test-arm` armhf: the report keeps showing
    the others), each marked with when it ran."""
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return []
    kept = [j for j in old.get("earlier", []) if j.get("arch", HOST) not in arches]
    for j in old.get("judged", []):
        if j.get("arch", HOST) not in arches:
            kept.append(dict(j, earlier=j.get("earlier") or old.get("finished", "before")))
    return [j for j in kept if j.get("arch", HOST) not in arches]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--tools", default="guardian,earlyoom")
    parser.add_argument("--arch", default=os.environ.get("VM_ARCHES", HOST),
                        help="architectures to boot, comma-separated: %s (default %s; each scenario runs on those "
                             "its `arches` name)" % (", ".join(ARCHES), HOST))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("VM_JOBS", "2")), help="VMs at a time")
    parser.add_argument("--guardian", help="the frozen binary (default: dist/guardian, dist/guardian-ARCH)")
    parser.add_argument("--floor", help="the frozen floor measured beside it (default: guardian-floor beside the "
                                        "guardian, dist/guardian-floor)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="boot each VM this many times (flakiness)")
    parser.add_argument("--mem", type=int, metavar="MIB", help="the VMs' RAM instead of each scenario's own")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an entry of the scenarios' env in the guest, e.g. --set RATES='10 300' "
                             "(see scenarios.py and guest/agent.sh); repeatable")
    parser.add_argument("--retry-failed", type=int, default=int(os.environ.get("VM_RETRY_FAILED", "0")),
                        help="boot a guardian VM that failed again, up to this many times; the suite passes only "
                             "if a retry passes, and the report keeps every failed run")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print("%-14s %3d MiB  %-20s %s" % (s.name, s.mem_mib, ",".join(s.arches), s.title))
        return 0
    arches = parse_arches(args.arch)
    if (args.guardian or args.floor) and len(arches) > 1:
        print("vm: --guardian and --floor name one architecture's build: give one --arch", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("vm: needs root (chroot and mount namespaces to check the image)", file=sys.stderr)
        return 2
    unknown = [n for n in args.scenarios if n not in BY_NAME]
    if unknown:
        print("vm: unknown scenario(s) %s; known: %s" % (", ".join(unknown), ", ".join(BY_NAME)), file=sys.stderr)
        return 2
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not re.match(r"^[A-Z][A-Z0-9_]*$", key) or "," in value or "'" in value:
            print("vm: --set %r: expected KEY=VALUE with an upper-case KEY, and no comma or quote in VALUE" % item,
                  file=sys.stderr)
            return 2
        overrides[key] = value
    started = time.monotonic()
    chosen = [BY_NAME[n] for n in args.scenarios] if args.scenarios else list(SCENARIOS)
    named = [s for s in chosen if args.scenarios and not any(a.name in s.arches for a in arches)]
    if named:
        print("vm: %s boot(s) only on %s" % (", ".join(s.name for s in named),
                                              "; ".join(",".join(s.arches) for s in named)), file=sys.stderr)
        return 2
    # No image for an architecture none of the chosen scenarios boots on.
    arches = tuple(a for a in arches if args.build_only or any(a.name in s.arches for s in chosen))
    paths = {}
    for arch in arches:
        t0 = time.monotonic()
        paths[arch.name] = image.build(arch, args.guardian, args.floor)
        log("%s image ready in %.0f s" % (arch.name, time.monotonic() - t0))
    if args.build_only:
        return 0
    tools = [t for t in args.tools.split(",") if t]
    if args.mem:
        chosen = [dataclasses.replace(s, mem_mib=args.mem) for s in chosen]
    if args.mem or overrides:
        log("overrides: %s" % ", ".join(filter(None, ["mem %d MiB" % args.mem if args.mem else ""]
                                                   + ["%s=%r" % kv for kv in sorted(overrides.items())])))
    # The slowest first (another architecture's), so that the pool does not end on one long VM.
    jobs = [(a, s, t, i) for i in range(max(1, args.repeat)) for a in sorted(arches, key=lambda a: -a.slowdown)
            for s in chosen for t in tools if t in s.tools and a.name in s.arches]
    log("%d VMs, %d at a time" % (len(jobs), args.jobs))
    judged: List[Dict[str, Any]] = []
    raw: List[Dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(boot, paths[a.name], s, t, i, None, overrides, a): (a, s, t) for a, s, t, i in jobs}
        for fut in concurrent.futures.as_completed(futures):
            a, s, t = futures[fut]
            run = fut.result()
            j = judge(run)
            raw.append(run)
            judged.append(j)
            log("%-7s %-12s %-8s %s in %.0f s%s" % (a.name, s.name, t, "ok" if not j["failures"] else "FAILED",
                                                    run["seconds"], "".join("\n    " + f for f in j["failures"])))
    # A noisy host (a CI machine running other jobs) starves a TCG VM now and then; a retry tells
    # a flake from a fault, and the report says which runs needed one.
    retries: List[Dict[str, Any]] = []
    for attempt in range(1, max(0, args.retry_failed) + 1):
        again = [j for j in judged + retries if j["tool"] == "guardian" and j["failures"]
                 and j.get("attempt", 0) == attempt - 1 and not j.get("informational")]
        for first in again:
            s = next(c for c in chosen if c.name == first["scenario"])
            a = ARCHES[first["arch"]]
            log("%-7s %-12s %-8s retry %d (failed: %s)" % (a.name, s.name, "guardian", attempt,
                                                         "; ".join(first["failures"])))
            run = boot(paths[a.name], s, "guardian", repeat=100 * attempt + first["repeat"], overrides=overrides,
                       arch=a)
            j = judge(run)
            j["attempt"], j["retry_of"] = attempt, first["failures"]
            raw.append(run)
            retries.append(j)
            log("%-7s %-12s %-8s retry %d %s in %.0f s%s" % (
                a.name, s.name, "guardian", attempt, "ok" if not j["failures"] else "FAILED",
                run["seconds"], "".join("\n    " + f for f in j["failures"])))
    order = {(s.name, t): i for i, (s, t) in enumerate((s, t) for s in SCENARIOS for t in tools)}
    judged.sort(key=lambda j: (j["repeat"], list(ARCHES).index(j["arch"]), order.get((j["scenario"], j["tool"]), 0)))
    wall = time.monotonic() - started
    results = os.path.join(image.BUILD, "results")
    earlier = earlier_runs(os.path.join(results, "results.json"), [a.name for a in arches])
    text = report(earlier + judged, wall, retries)
    if args.mem or overrides:  # say so under the title: these are not the scenarios as defined
        text = text.replace("\n\n", "\n\nOverrides: %s.\n\n" % ", ".join(filter(None, [
            "%d MiB VMs" % args.mem if args.mem else ""] + ["%s=%r" % kv for kv in sorted(overrides.items())])), 1)
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(results, "results.json"), "w") as f:
        json.dump({"wall_seconds": round(wall, 1), "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "arches": [a.name for a in arches], "judged": judged, "runs": raw,
                   "earlier": earlier}, f, indent=1)
    print(text)
    passed_on_retry = {(j["arch"], j["scenario"], j["repeat"] % 100) for j in retries if not j["failures"]}
    failed = [j for j in judged if j["tool"] == "guardian" and j["failures"]
              and (j["arch"], j["scenario"], j["repeat"]) not in passed_on_retry]
    log("%s; %.0f s; results in %s" % ("all guardian checks passed" if not failed else
                                        "%d guardian run(s) failed" % len(failed), wall,
                                        os.path.relpath(results, image.REPO)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
