#!/usr/bin/env python3
"""The systemd VMs: Debian bookworm with systemd as PID 1 and cgroup v2, the frozen guardian
installed with init/guardian.service as shipped, side by side with earlyoom's own Debian unit and
systemd-oomd (with the ManagedOOM settings its documentation gives). One QEMU/TCG VM per
scenario, RAM and tool, two at a time; results in build/vm-systemd/results/.

  python3 tests/vm/systemd/sdrun.py                       every scenario, all three tools
  python3 tests/vm/systemd/sdrun.py --tools guardian      the guardian only
  python3 tests/vm/systemd/sdrun.py runaway-512 --set RATES='5 20'
  python3 tests/vm/systemd/sdrun.py --list

Exit status 0 when every check of the guardian passed; earlyoom's and systemd-oomd's results are
shown, never asserted.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import judge  # noqa: E402
import sdimage  # noqa: E402


class Scenario(NamedTuple):
    name: str
    mem_mib: int
    env: Dict[str, str]
    expect: Tuple[str, ...]  # the guest's lines the judge asks for (the guardian's checks)
    timeout_s: int
    what: str


RUNAWAY = ("restart", "cgroup_oom")
SCENARIOS = (
    Scenario("runaway-512", 512, {"RATES": "20 100 0"}, RUNAWAY, 420,
             "idle 20 s; a runaway in a systemd-run unit at 20, 100 MiB/s and flat out; critd restarted through "
             "systemctl (its adj within 0.1 s); a unit over its MemoryMax= (the kernel_oom event's cause)"),
    # MemoryMax 32M: a 64 MiB unit would bring this VM to the guardian's kill line before its limit.
    Scenario("runaway-256", 256, {"RATES": "10 50 0", "CAP_MIB": "32"}, RUNAWAY, 420,
             "the same on 256 MiB at 10, 50 MiB/s and flat out (MemoryMax=32M)"),
    Scenario("gateway-512", 512, {"RATES": "", "IDLE_S": "0"}, ("diffuse", "sigkill", "sigstop", "scope"), 480,
             "3 workers of a server growing alike (no culprit: lowprio.service stopped through systemctl); "
             "the tool SIGKILLed through systemctl halfway down a runaway, then SIGSTOPped (the watchdog); "
             "--scope cgroup:apps.slice with a grower in the slice (MemoryMax=160M)"),
)
BY_NAME = {s.name: s for s in SCENARIOS}
RUNS = os.path.join(sdimage.BUILD, "runs")
RESULTS = os.path.join(sdimage.BUILD, "results")


def log(message: str) -> None:
    print("vm-systemd: %s" % message, file=sys.stderr, flush=True)


def boot(paths: Dict[str, str], s: Scenario, tool: str, overrides: Dict[str, str], repeat: int = 0) -> Dict[str, Any]:
    name = "%s.%s%s" % (s.name, tool, ".%d" % repeat if repeat else "")
    work = os.path.join(RUNS, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(s.env, **overrides)
    append = " ".join(["console=ttyS0 loglevel=4 mitigations=off panic=-1", sdimage.tool_kernel_args(tool),
                       "vmtest.scenario=%s vmtest.tool=%s" % (s.name, tool)]
                      + ["vmtest.env.%s=%s" % (k, v.replace(" ", ",")) for k, v in sorted(env.items())])
    results = os.path.join(work, "results.jsonl")
    cmd = [shutil.which("qemu-system-x86_64") or "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc",
           "-m", str(s.mem_mib), "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-kernel", paths["kernel"], "-initrd", paths["initramfs"], "-append", append,
           "-drive", "file=%s,if=virtio,format=raw,snapshot=on" % paths["root"],
           "-serial", "file:%s" % os.path.join(work, "console.log"), "-serial", "file:%s" % results]
    with open(os.path.join(work, "qemu.cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    started = time.monotonic()
    with open(os.path.join(work, "qemu.err"), "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        timed_out = False
        try:
            proc.wait(s.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
    lines = []
    if os.path.exists(results):
        with open(results, errors="replace") as f:
            for raw in f:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
    return {"scenario": s.name, "tool": tool, "mem_mib": s.mem_mib, "repeat": repeat,
            "seconds": round(time.monotonic() - started, 1), "timed_out": timed_out, "exit": proc.returncode,
            "expect_rounds": len(env.get("RATES", "").split()), "expect": s.expect, "lines": lines,
            "dir": os.path.relpath(work, sdimage.REPO)}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--tools", default="guardian,earlyoom,oomd", help="comma-separated: guardian, earlyoom, oomd")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a scenario's env")
    ap.add_argument("--guardian", default=os.path.join(sdimage.REPO, "dist", "guardian"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--retry-failed", type=int, default=0, help="boot a failed guardian VM again, up to N times")
    ap.add_argument("--rebuild-root", action="store_true", help="debootstrap the Debian root again")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--report", action="store_true", help="judge the runs of the last results.json again, boot nothing")
    args = ap.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print("%-14s %4d MiB  %s" % (s.name, s.mem_mib, s.what))
        return 0
    if args.report:
        with open(os.path.join(RESULTS, "results.json")) as f:
            saved = json.load(f)
        last = {(r["scenario"], r["tool"]): r for r in saved["runs"]}  # a retry replaces its first run
        names = [s.name for s in SCENARIOS]
        runs = sorted(last.values(), key=lambda r: (names.index(r["scenario"]) if r["scenario"] in names else 99,
                                                     judge.TOOLS.index(r["tool"])))
        print(judge.report([judge.judge(r) for r in runs], "systemd VMs (judged again from results.json)"))
        return 0
    unknown = [n for n in args.scenarios if n not in BY_NAME]
    if unknown:
        ap.error("unknown scenario(s): %s (see --list)" % ", ".join(unknown))
    tools = [t for t in args.tools.split(",") if t]
    if any(t not in judge.TOOLS for t in tools):
        ap.error("--tools: guardian, earlyoom, oomd")
    overrides = dict(kv.split("=", 1) for kv in args.set)
    started = time.monotonic()
    t = time.monotonic()
    paths = sdimage.build_image(args.guardian, args.rebuild_root)
    log("image built in %.0f s" % (time.monotonic() - t))
    if args.build_only:
        return 0
    chosen = [BY_NAME[n] for n in args.scenarios] if args.scenarios else list(SCENARIOS)
    jobs = [(s, tool) for s in chosen for tool in tools]
    runs: List[Dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(boot, paths, s, tool, overrides): (s, tool) for s, tool in jobs}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            res = judge.judge(r)
            log("%s %s: %s in %.0f s%s" % (r["scenario"], r["tool"], "passed" if res["passed"] else "FAILED",
                                           r["seconds"], "" if res["passed"] else " (%s)" % r["dir"]))
            runs.append(r)
    results = [judge.judge(r) for r in runs]
    retries = []
    for i, res in enumerate(results):
        n = 0
        while judge.asserted(res) and not res["passed"] and n < args.retry_failed:
            n += 1
            s = BY_NAME[res["scenario"]]
            log("%s %s failed: booting it again (%d of %d)" % (s.name, res["tool"], n, args.retry_failed))
            retries.append(res)
            r = boot(paths, s, res["tool"], overrides, repeat=100 + n)
            res = judge.judge(r)
            runs.append(r)
        results[i] = res
    order = {(s.name, t): i for i, (s, t) in enumerate(jobs)}
    results.sort(key=lambda r: order.get((r["scenario"], r["tool"]), 99))
    wall = time.monotonic() - started
    text = judge.report(results, "systemd VMs (%s, %s)" % (paths["kernel_version"], ", ".join(
        "%s=%s" % kv for kv in sorted(overrides.items())) or "scenario defaults"))
    text += "\nWall time %.0f s, the image included (and the Debian root where it was built: %s).\n" % (
        wall, paths.get("root_built", "no"))
    if retries:
        text += "\n## Retries (first runs that failed)\n\n" + "\n".join(
            "- %s %s: %s" % (r["scenario"], r["tool"],
                             "; ".join(r["failures"] + [f for x in r["rounds"] for f in x["failures"]]))
            for r in retries) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump({"results": results, "runs": runs, "wall_s": round(wall)}, f, indent=1)
    print(text)
    failed = [r for r in results if judge.asserted(r) and not r["passed"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
