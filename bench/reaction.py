"""Phase 3, reaction: a memory cgroup with a 256 MiB limit, a hog filling it at 50, 200 and
1 000 MiB/s, and a fresh guardian watching it (`guardian run --scope cgroup:PATH`, armed).

Two views of the same run:
- the guardian's own: reaction_ms of its kill event (from the reading that crossed the line to
  the victim's exit confirmed through its pidfd);
- the bench's, independent of the guardian: the cgroup's usage polled at a few kHz from this
  process; "crossed" is the first sample at which usage passed limit − line + the cgroup's
  reclaimable page cache (the guardian's own definition of available, with the line the
  guardian reported in its event), "freed" the first later sample at which half of what the hog
  had charged was back.

Two hogs: one that ignores SIGTERM (the kill rung: it is ended by SIGKILL at the kill line, the
case reaction_ms describes) and a default one (SIGTERM at the terminate line ends it).
Whether the cgroup's own OOM killer fired comes from memory.oom_control (v1) or memory.events
(v2). earlyoom and nohang watch only the whole system (/proc/meminfo): they have no cgroup scope.
"""
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from common import HERE, MIB, REPO, MemCgroup, stop_process

sys.path.insert(0, REPO)
from guardian.core import policy  # noqa: E402
from guardian.board.load import load_config  # noqa: E402

HOG = os.path.join(HERE, "hog.py")
LIMIT = 256 * MIB
ACTS = ("terminate", "kill", "kill_result")
LINE_RE = re.compile(r"below the (reclaim|terminate|kill) line ([0-9.]+) MiB")


def _events(path: str) -> List[Dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def _wait_event(path: str, pred, timeout: float, proc: subprocess.Popen) -> Optional[Dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in _events(path):
            if pred(e):
                return e
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def guardian_argv(frozen: bool) -> List[str]:
    if frozen:
        return [os.path.join(REPO, "dist", "guardian")]
    return [sys.executable, "-m", "guardian"]


_CONFIG = None


def nominal_lines(fill_bytes_s: float) -> policy.Lines:
    """The lines the guardian's config gives this cgroup at a fill rate measured right: what
    its lines would be if its fill-rate estimate were exact (policy.lines_for)."""
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = load_config(None, None).config
    reading = policy.Reading(time=0.0, total=LIMIT, available=LIMIT)
    return policy.lines_for(reading, policy.Recent(fill_rate=fill_bytes_s), _CONFIG)


def one_run(workdir: str, tag: str, rate: float, ignore_term: bool, frozen: bool = False,
            poll_s: float = 0.0002, timeout: float = 30.0) -> Dict:
    cg = MemCgroup("guardian-bench")
    events_file = os.path.join(workdir, "reaction-%s-events.jsonl" % tag)
    log_path = os.path.join(workdir, "reaction-%s.log" % tag)
    result: Dict = {"rate_mib_s": rate, "hog": "ignores SIGTERM" if ignore_term else "default",
                    "guardian": "frozen" if frozen else "python", "cgroup": "v%d" % cg.version}
    guardian = hog = None
    logf = open(log_path, "w")
    try:
        cg.set_limit(LIMIT)
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        guardian = subprocess.Popen(
            guardian_argv(frozen) + ["--log-level", "debug", "run", "--scope", "cgroup:" + cg.path,
                                     "--events-file", events_file,
                                     "--state-file", os.path.join(workdir, "reaction-%s-state.json" % tag)],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        start = _wait_event(events_file, lambda e: e.get("event") == "start", 30, guardian)
        if start is None:
            result["error"] = "guardian did not start (exit %s)" % guardian.poll()
            return result
        result["wait_mode"] = start.get("message", "").split("wait ", 1)[-1].split(", mlockall")[0]
        oom_before = cg.oom_kills()
        reclaimable0 = cg.reclaimable()
        usage_fd = os.open(cg.file(cg.usage_name), os.O_RDONLY | os.O_CLOEXEC)
        argv = [sys.executable, HOG, str(rate), "1024"] + (["--ignore-term"] if ignore_term else [])
        hog = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=cg.join_fn())
        hog.stdout.readline()  # "ready"
        baseline = int(os.pread(usage_fd, 64, 0))
        samples: List[Tuple[float, int]] = []
        t_start = time.monotonic()
        wall_offset = time.time() - time.monotonic()
        exited_at = None
        pread, mono, sleep = os.pread, time.monotonic, time.sleep
        while True:
            now = mono()
            samples.append((now, int(pread(usage_fd, 64, 0))))
            if exited_at is None and hog.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.15:
                break
            if now - t_start > timeout:
                break
            sleep(poll_s)
        os.close(usage_fd)
        if hog.poll() is None:
            result["error"] = "hog still running after %.0f s" % timeout
        def mine():
            return [e for e in _events(events_file) if e.get("pid") == hog.pid and e.get("event") in ACTS]

        def settled(events):  # the outcome is written after the exit is confirmed
            kinds = [e["event"] for e in events]
            return "kill_result" in kinds or any("reaction_ms" in e for e in events) or (
                kinds and "kill" not in kinds)
        deadline = time.monotonic() + 3.0
        acted = mine()
        while not settled(acted) and time.monotonic() < deadline and guardian.poll() is None:
            time.sleep(0.05)
            acted = mine()
        result.update(_analyse(samples, baseline, reclaimable0, acted, t_start, wall_offset))
        result["hog_exit"] = hog.returncode
        result["peak_usage_mib"] = (cg.peak() or max(u for _, u in samples)) / MIB
        result["min_headroom_mib"] = (LIMIT - (cg.peak() or max(u for _, u in samples))) / MIB
        result["oom_kills"] = cg.oom_kills() - oom_before
        result["samples"] = len(samples)
        result["poll_interval_ms"] = (samples[-1][0] - samples[0][0]) / max(1, len(samples) - 1) * 1000
        return result
    finally:
        if hog is not None and hog.poll() is None:
            hog.kill()
        if hog is not None:
            hog.wait()
        if guardian is not None:
            stop_process(guardian)
        logf.close()
        cg.destroy()


def _analyse(samples, baseline: int, reclaimable: int, acted: List[Dict], t_start: float,
             wall_offset: float) -> Dict:
    out: Dict = {}
    kill = next((e for e in acted if e["event"] == "kill"), None)
    result = next((e for e in acted if e["event"] == "kill_result"), None)
    if kill is not None and result is not None:
        # Newer guardians log the kill before the act and its outcome (reaction_ms, freed,
        # exited) in a "kill_result" event after it.
        kill = dict(kill, **{k: v for k, v in result.items() if k not in ("event", "message")})
    acted = [e for e in acted if e["event"] != "kill_result"]
    first = acted[0] if acted else None
    out["events"] = [e["event"] for e in acted]
    ender = kill or first  # the act that ended the hog: the kill if there was one
    if ender is None:
        out["ended_by"] = "no guardian act"
        return out
    out["ended_by"] = ender["event"]
    m = LINE_RE.search(ender.get("reason", "") or ender.get("message", ""))
    if m:
        out["line"] = m.group(1)
        out["line_mib"] = float(m.group(2))
    if kill is not None:
        out["reaction_ms"] = kill.get("reaction_ms")
        out["exited"] = kill.get("exited")
        out["freed_mib"] = (kill.get("freed_bytes") or 0) / MIB
        out["mreleased"] = kill.get("mreleased")
    out["victim_rss_mib"] = (ender.get("rss_bytes") or 0) / MIB
    # The fill rate actually achieved: over the ramp from baseline+8 MiB to the peak.
    peak_i = max(range(len(samples)), key=lambda i: samples[i][1])
    peak_t, peak_u = samples[peak_i]
    ramp = next(((t, u) for t, u in samples if u > baseline + 8 * MIB), None)
    if ramp and peak_t > ramp[0]:
        out["fill_mib_s"] = (peak_u - ramp[1]) / MIB / (peak_t - ramp[0])
    reading_t = None
    if kill is not None and kill.get("reaction_ms") is not None:
        # The guardian's reading, on this process's monotonic clock: the event is written just
        # after the exit was confirmed, reaction_ms after the reading.
        reading_t = kill["time"] - wall_offset - kill["reaction_ms"] / 1000.0
    half = baseline + (peak_u - baseline) / 2.0
    freed = next(((t, u) for t, u in samples[peak_i:] if u <= half), None)
    if freed is not None:
        out["peak_to_freed_ms"] = (freed[0] - peak_t) * 1000.0
        if reading_t is not None:
            out["reading_to_freed_ms"] = (freed[0] - reading_t) * 1000.0
    # Against the nominal line (the config's line at the fill rate achieved): where the
    # guardian's own line ran ahead of it (a noisy fill-rate estimate), the hog was ended
    # before usage got there, and the crossing is extrapolated at the achieved rate
    # (threshold → freed comes out negative: freed that long before the line).
    if "fill_mib_s" in out:
        lines = nominal_lines(out["fill_mib_s"] * MIB)
        nominal = lines.kill if out["ended_by"] == "kill" else lines.terminate
        out["nominal_line_mib"] = nominal / MIB
        level = LIMIT - nominal + reclaimable
        cross = next(((t, u) for t, u in samples if u >= level), None)
        if cross is None:
            cross_t = peak_t + (level - peak_u) / (out["fill_mib_s"] * MIB)
            out["acted_before_line"] = True
        else:
            cross_t = cross[0]
        if reading_t is not None:
            out["detect_ms"] = (reading_t - cross_t) * 1000.0
        if freed is not None:
            out["threshold_to_freed_ms"] = (freed[0] - cross_t) * 1000.0
    # Against the line the guardian reported at its act: usage may have passed that level
    # before the line got there (the line rises with the fill-rate estimate), so this is an
    # upper bound.
    if "line_mib" in out:
        cross = next(((t, u) for t, u in samples if u >= LIMIT - out["line_mib"] * MIB + reclaimable), None)
        if cross is None and reading_t is not None:
            cross = (reading_t, None)  # the line rose past usage: crossed at that reading
        if cross is not None and freed is not None:
            out["own_line_to_freed_ms"] = (freed[0] - cross[0]) * 1000.0
    return out

def run(workdir: str, rates=(50, 200, 1000), reps: int = 3, frozen: bool = False, log=print) -> Dict:
    runs = []
    variants = [(True, "kill")] + ([(False, "term")] if not frozen else [])
    for ignore_term, vname in variants:
        for rate in rates:
            for rep in range(reps):
                tag = "%s-%s-%d-%d" % ("frozen" if frozen else "py", vname, rate, rep)
                r = one_run(workdir, tag, rate, ignore_term, frozen)
                r["rep"] = rep
                runs.append(r)
                log("reaction: %s %4d MiB/s rep %d: ended by %s, line %s MiB, reaction_ms %s, "
                    "threshold→freed %s ms (nominal line %s MiB), OOM kills %s, headroom %.0f MiB%s" % (
                        r["guardian"], rate, rep, r.get("ended_by"), r.get("line_mib"), r.get("reaction_ms"),
                        "%.1f" % r["threshold_to_freed_ms"] if "threshold_to_freed_ms" in r else "–",
                        "%.1f" % r["nominal_line_mib"] if "nominal_line_mib" in r else "–", r.get("oom_kills"),
                        r.get("min_headroom_mib", float("nan")),
                        " ERROR " + r["error"] if "error" in r else ""))
    return {"limit_mib": LIMIT // MIB, "runs": runs}
