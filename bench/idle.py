"""Phase 1, idle cost: the guardian (Python, and the frozen binary when dist/guardian exists),
earlyoom and nohang, all started at once at their default settings and left alone on this idle
machine. Over the same window: CPU ticks (utime+stime), CPU time from schedstat (nanoseconds,
so that tools spending less than one tick still compare), wake-ups (voluntary context
switches, summed over threads) and, at the end, RSS/PSS/private memory from smaps_rollup.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from common import (CLK_TCK, MIB, REPO, ExecCounter, children_of, cpu_snapshot, dpkg_files, dpkg_version,
                    memory_snapshot, stop_process, which)

# Debian's earlyoom.service runs `earlyoom $EARLYOOM_ARGS` with EARLYOOM_ARGS="-r 3600" from the
# package's defaults file: what a user who installs the package gets. (earlyoom's own default
# is -r 1, a memory report line every second.)
EARLYOOM_DEBIAN_ARGS = ["-r", "3600"]


def nohang_config() -> Optional[str]:
    """The config nohang.service passes (--config .../nohang/nohang.conf), found via dpkg."""
    files = [p for p in dpkg_files("nohang") if p.endswith("/nohang/nohang.conf")]
    files.sort(key=lambda p: "/share/" in p)  # the packaged conffile first, the sample second
    return files[0] if files else None


def tools(workdir: str) -> List[Dict]:
    out = []
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for label, argv0 in (("guardian (Python)", [sys.executable, "-m", "guardian"]),
                         ("guardian (frozen)", [os.path.join(REPO, "dist", "guardian")])):
        if label.endswith("(frozen)") and not os.access(argv0[0], os.X_OK):
            out.append({"label": label, "skip": "dist/guardian not built (make frozen)"})
            continue
        tag = "frozen" if "frozen" in label else "python"
        events = os.path.join(workdir, "idle-%s-events.jsonl" % tag)
        out.append({"label": label, "argv": argv0 + ["run", "--events-file", events,
                                                     "--state-file", os.path.join(workdir, "idle-%s-state.json" % tag)],
                    "env": env, "events": events, "cwd": REPO,
                    "settings": "generic board config (no --config), system scope"})
    earlyoom = which("earlyoom")
    if earlyoom:
        out.append({"label": "earlyoom", "argv": [earlyoom] + EARLYOOM_DEBIAN_ARGS,
                    "settings": "Debian service defaults: %s" % " ".join(EARLYOOM_DEBIAN_ARGS),
                    "version": dpkg_version("earlyoom")})
    else:
        out.append({"label": "earlyoom", "skip": "not installed (apt-get install earlyoom)"})
    nohang, conf = which("nohang"), nohang_config()
    if nohang and conf:
        out.append({"label": "nohang", "argv": [nohang, "--monitor", "--config", conf],
                    "settings": "Debian service defaults: --monitor --config nohang.conf",
                    "version": dpkg_version("nohang")})
    else:
        out.append({"label": "nohang", "skip": "not installed (apt-get install nohang)"})
    return out


def _started(tool: Dict) -> bool:
    if "events" not in tool:
        return True
    try:
        with open(tool["events"]) as f:
            return any(json.loads(line).get("event") == "start" for line in f if line.strip())
    except (OSError, ValueError):
        return False


def forks() -> int:
    """Processes created on the whole machine since boot (/proc/stat "processes")."""
    for line in open("/proc/stat"):
        if line.startswith("processes "):
            return int(line.split()[1])
    return 0


def _exec_load(rate: float, seconds: float) -> int:
    """Start `true` `rate` times a second for `seconds` (a board's shell loop, a cron job, a
    CGI): every exec is an event for tools that listen to the proc connector."""
    true = shutil.which("true")
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        pid = os.posix_spawn(true, ["true"], os.environ)
        os.waitpid(pid, 0)
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return n


def run(workdir: str, seconds: float = 60.0, warmup: float = 5.0, exec_rate: float = 10.0,
        exec_seconds: float = 20.0, log=print) -> Dict:
    entries = tools(workdir)
    windows_out: List[Dict] = []
    running = [t for t in entries if "skip" not in t]
    for t in running:
        name = t["label"].split()[0] + ("-frozen" if "frozen" in t["label"] else "")
        t["log"] = open(os.path.join(workdir, "idle-%s.log" % name), "w")
        t["proc"] = subprocess.Popen(t["argv"], stdout=t["log"], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=t.get("env"), cwd=t.get("cwd"))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(_started(t) for t in running):
            dead = [t for t in running if t["proc"].poll() is not None]
            if dead:
                break
            time.sleep(0.1)
        time.sleep(warmup)  # imports done, first samples taken, memory settled
        for t in running:
            if t["proc"].poll() is not None:
                t["skip"] = "exited with %s at start (see its log)" % t["proc"].returncode
        live = [t for t in running if "skip" not in t]
        windows = [("quiet", seconds, 0.0)] + ([("%g execs/s" % exec_rate, exec_seconds, exec_rate)]
                                               if exec_seconds > 0 and exec_rate > 0 else [])
        for name, length, rate in windows:
            log("idle: %s window: measuring %s together for %.0f s" % (
                name, ", ".join(t["label"] for t in live), length))
            for t in live:
                t["pids"] = children_of([t["proc"].pid])
                t["cpu0"] = cpu_snapshot(t["pids"])
            forks0 = forks()
            execs = ExecCounter()
            t0 = time.monotonic()
            spawned = _exec_load(rate, length) if rate > 0 else time.sleep(length) or 0
            elapsed = time.monotonic() - t0
            execs.close()
            window = {"name": name, "seconds": round(elapsed, 2), "forks": forks() - forks0,
                      "spawned_by_bench": spawned, "execs": None if execs.error else execs.count, "rows": {}}
            for t in live:
                t["pids"] = children_of([t["proc"].pid])
                c0, c1 = t["cpu0"], cpu_snapshot(t["pids"])
                window["rows"][t["label"]] = {
                    "cpu_ticks": c1["ticks"] - c0["ticks"], "cpu_ms": (c1["cpu_ns"] - c0["cpu_ns"]) / 1e6,
                    "wakeups": c1["voluntary"] - c0["voluntary"], "involuntary": c1["involuntary"] - c0["involuntary"],
                    "wchar": c1["wchar"] - c0["wchar"], "write_bytes": c1["write_bytes"] - c0["write_bytes"]}
                if name == "quiet":
                    t["mem"] = memory_snapshot(t["pids"])
                if t["proc"].poll() is not None:
                    t["skip"] = "exited with %s during the window" % t["proc"].returncode
            windows_out.append(window)
    finally:
        for t in running:
            stop_process(t["proc"])
            t["log"].close()

    rows = []
    quiet = windows_out[0] if windows_out else {"rows": {}, "seconds": 0}
    for t in entries:
        row = {"tool": t["label"], "settings": t.get("settings", ""), "version": t.get("version")}
        if "skip" in t:
            row["skip"] = t["skip"]
            rows.append(row)
            continue
        mem = t["mem"]
        row.update(quiet["rows"][t["label"]])
        row.update({
            "processes": len(t["pids"]),
            "threads": mem["threads"],
            "seconds": quiet["seconds"],
            "rss_mib": mem["rss"] / MIB,
            "pss_mib": mem["pss"] / MIB,
            "private_mib": mem["private"] / MIB,
            "locked_mib": mem["locked"] / MIB,
        })
        rows.append(row)
    return {"seconds": seconds, "clock_ticks_per_s": CLK_TCK, "rows": rows, "windows": windows_out}
