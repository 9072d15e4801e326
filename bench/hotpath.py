"""Phase 2, hot path: the guardian's own functions called in this process, timed one call at a
time (perf_counter_ns; median, p95, min in microseconds).

- A tick at idle (system scope): the common one (no process sample due) and the one every
  proc_sample_interval_s that reads the whole process table.
- A tick under pressure: a real memory cgroup (256 MiB limit) filled past the kill line by a
  holder, the daemon in dry run, deciding a kill every tick (state reset between calls), and
  the steady tick that follows (settling after the act, process table read every tick).
- Victim selection with 200, 1 000 and 5 000 extra sleeping children: read_procs +
  classify (the generic board's [[critical]] rules) + growth + choose_victim, and the full
  system-scope pressure tick that wraps them (Daemon._tick with MemAvailable lowered below the
  kill line, dry run).
"""
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from common import HERE, MIB, REPO, MemCgroup, median, percentile

sys.path.insert(0, REPO)

from guardian.core import policy  # noqa: E402
from guardian.board.load import load_config  # noqa: E402
from guardian.core.daemon import Daemon  # noqa: E402
from guardian.core.history import Growth  # noqa: E402
from guardian.kernel.procs import read_procs  # noqa: E402
from guardian.core.match import classify  # noqa: E402
from guardian.core.policy import PolicyState, Recent  # noqa: E402
from guardian.core.telemetry import Telemetry  # noqa: E402
from guardian.core.waiter import UsageThresholds, Waiter  # noqa: E402
from guardian.record import replace  # noqa: E402

HOG = os.path.join(HERE, "hog.py")


def timed(fn: Callable[[], object], n: int, before: Optional[Callable[[], None]] = None,
          budget_s: float = 4.0) -> Dict[str, float]:
    """Call fn n times (fewer if the budget runs out after 20), timing each call alone."""
    for _ in range(3):  # warm caches, the regex cache and the dentry cache
        if before:
            before()
        fn()
    times: List[float] = []
    start = time.perf_counter()
    for i in range(n):
        if before:
            before()
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1000.0)
        if i >= 20 and time.perf_counter() - start > budget_s:
            break
    return {"n": len(times), "median_us": median(times), "p95_us": percentile(times, 95), "min_us": min(times)}


def make_daemon(config, scope_dir: Optional[str] = None) -> Daemon:
    """A Daemon wired as setup() wires it, minus signal handlers, self-protection and sysctls."""
    d = Daemon(config, scope_dir, dry_run=True, telemetry=Telemetry(state_file=None), protect_self=False)
    d.sensor.refresh_slow()
    thresholds = None
    if scope_dir is not None and os.path.exists(os.path.join(scope_dir, "cgroup.event_control")):
        thresholds = UsageThresholds(scope_dir)
    d.waiter = Waiter(config.wait, d.sensor.psi_path, thresholds)
    return d


def count_procs() -> int:
    return sum(1 for n in os.listdir("/proc") if n.isdigit())


def idle_and_pressure(config, log=print) -> List[Dict]:
    rows = []
    d = make_daemon(config)
    now = time.monotonic
    try:
        def fresh_sample():
            d.last_proc_sample = now()

        def due_sample():
            d.last_proc_sample = float("-inf")

        rows.append(dict(case="idle tick, system scope (no process sample due)", fn="Daemon._tick",
                         **timed(lambda: d._tick(now()), 2000, fresh_sample)))
        rows.append(dict(case="idle tick, system scope, process sample due (every %.0f s)" %
                         config.wait.proc_sample_interval_s, fn="Daemon._tick",
                         **timed(lambda: d._tick(now()), 300, due_sample)))
        rows.append(dict(case="read, system scope", fn="Sensor.read",
                         **timed(lambda: d.sensor.read(now(), d.pid), 3000)))
        reading = d.sensor.read(now(), d.pid)
        rows.append(dict(case="decide, system scope, idle", fn="policy.decide",
                         **timed(lambda: policy.decide(reading, Recent(), PolicyState(), config, {}, "system"), 3000)))
    finally:
        d.waiter.close()
        d.close()

    # Under pressure: a real cgroup past its kill line.
    try:
        cg = MemCgroup("guardian-bench")
    except (OSError, RuntimeError) as exc:
        rows.append(dict(case="pressure (cgroup scope)", skip="no memory cgroup: %s" % exc))
        return rows
    holders = []
    try:
        limit = 256 * MIB
        cg.set_limit(limit)
        join = cg.join_fn()
        # Two idle bystanders and a holder that fills to ~12 MiB under the limit and stays.
        for _ in range(2):
            holders.append(subprocess.Popen([sys.executable, HOG, "0", "0", "--hold"], stdout=subprocess.PIPE,
                                            preexec_fn=join))
            holders[-1].stdout.readline()
        used = cg.usage()
        holder_mib = max(16, (limit - used) // MIB - 12 - 8)  # 8 MiB: the holder's interpreter
        holders.append(subprocess.Popen([sys.executable, HOG, "2000", str(holder_mib), "--hold"],
                                        stdout=subprocess.PIPE, preexec_fn=join))
        holders[-1].stdout.readline()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"held" not in holders[-1].stdout.readline():
            pass
        d = make_daemon(config, cg.path)
        try:
            first = d.sensor.read(now(), d.pid)
            lines = policy.lines_for(first, Recent(), config)
            plan_rung = policy.rung_for(first, lines, config)[0]
            detail = "available %.1f MiB, kill line %.1f MiB, rung %s, %d processes in the cgroup" % (
                first.available / MIB, lines.kill / MIB, policy.RUNG_NAMES[plan_rung], len(cg.pids()))
            log("hot path: pressure cgroup: " + detail)

            def reset():
                d.state = PolicyState()

            rows.append(dict(case="pressure tick, cgroup scope: decides a kill (dry run)", fn="Daemon._tick",
                             detail=detail, **timed(lambda: d._tick(now()), 1000, reset)))
            d.state = PolicyState()
            d._tick(now())  # the dry-run "act": the next ticks settle, reading procs each time
            rows.append(dict(case="pressure tick, cgroup scope: steady (after the act, table read every tick)",
                             fn="Daemon._tick", **timed(lambda: d._tick(now()), 1000)))
            if d.waiter.thresholds is not None:
                # While memory fills, the fill-rate margin moves the lines by a MiB or more
                # from tick to tick, and the daemon re-registers its cgroup v1 usage
                # thresholds: the same tick, with the fill rate nudged between calls.
                flip = [0]

                def nudge():
                    flip[0] ^= 1
                    d.state = PolicyState()
                    d.fill._peak, d.fill._peak_time = (40 + 8 * flip[0]) * MIB, now()

                rows.append(dict(case="pressure tick, cgroup v1 scope, lines moved by the fill rate "
                                      "(usage thresholds re-registered)", fn="Daemon._tick",
                                 **timed(lambda: d._tick(now()), 30, nudge)))
                t = d.waiter.thresholds
                base = cg.usage() // MIB * MIB
                sets = [[base + k * MIB + j * MIB for k in (20, 30, 40)] for j in (0, 1)]
                rows.append(dict(case="3 cgroup v1 usage thresholds registered anew", fn="UsageThresholds.set",
                                 **timed(lambda: t.set(sets[flip[0]]), 30, lambda: flip.__setitem__(0, flip[0] ^ 1))))
            rows.append(dict(case="read, cgroup v%d scope" % cg.version, fn="Sensor.read",
                             **timed(lambda: d.sensor.read(now(), d.pid), 3000)))
            reading = d.sensor.read(now(), d.pid, with_procs=True, with_buddy=True)
            roles = classify(reading.procs, config)
            rows.append(dict(case="decide, cgroup scope, under pressure (chooses the victim)", fn="policy.decide",
                             **timed(lambda: policy.decide(reading, Recent(), PolicyState(), config, roles,
                                                           "cgroup-v%d" % cg.version), 3000)))
        finally:
            d.waiter.close()
            d.close()
    finally:
        for h in holders:
            h.kill()
            h.wait()
        cg.destroy()
    return rows


def victim_selection(config, counts=(200, 1000, 5000), reps: int = 7, log=print) -> List[Dict]:
    sleep = shutil.which("sleep")
    children: List[int] = []
    rows = []
    total = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    self_pid = os.getpid()
    d = make_daemon(config)
    real_read = d.sensor.read

    def low_read(when, pid, **kw):
        # The real reading, with MemAvailable put below the kill line: a system-scope pressure
        # tick over the real (enlarged) process table.
        r = real_read(when, pid, **kw)
        return replace(r, available=r.total // 50) if r is not None else r

    d.sensor.read = low_read
    try:
        for n in counts:
            while len(children) < n:
                children.append(os.posix_spawn(sleep, ["sleep", "900"], os.environ))
            time.sleep(0.5)  # let the last children exec
            procs_now = count_procs()
            read_procs()  # warm the dentry cache for the new /proc entries
            growth = Growth(config.victims.growth_window_s)
            growth.add(time.monotonic() - 5, read_procs())
            parts: Dict[str, List[float]] = {"read_procs": [], "classify": [], "growth": [], "choose_victim": [],
                                             "total": []}
            victim = None
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                procs = read_procs()
                t1 = time.perf_counter_ns()
                roles = classify(procs, config)
                t2 = time.perf_counter_ns()
                growth.add(time.monotonic(), procs)
                recent = Recent(growth=growth.growth(), growth_span_s=growth.span_s())
                t3 = time.perf_counter_ns()
                victim = policy.choose_victim(procs, roles, recent, config, total, self_pid)
                t4 = time.perf_counter_ns()
                for key, a, b in (("read_procs", t0, t1), ("classify", t1, t2), ("growth", t2, t3),
                                  ("choose_victim", t3, t4), ("total", t0, t4)):
                    parts[key].append((b - a) / 1e6)

            def reset():
                d.state = PolicyState()

            tick = timed(lambda: d._tick(time.monotonic()), reps, reset, budget_s=10.0)
            row = {"children": n, "processes": procs_now, "read": len(procs), "victim": victim.name if victim else None}
            for key, values in parts.items():
                row[key + "_ms"] = median(values)
            row["total_max_ms"] = max(parts["total"])
            row["pressure_tick_ms"] = tick["median_us"] / 1000.0
            row["plan"] = d.last_plan.action if d.last_plan else None
            rows.append(row)
            log("hot path: %d processes: selection %.1f ms (read_procs %.1f, classify %.1f), pressure tick %.1f ms" % (
                procs_now, row["total_ms"], row["read_procs_ms"], row["classify_ms"], row["pressure_tick_ms"]))
    finally:
        d.waiter.close()
        d.close()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return rows


def run(counts=(200, 1000, 5000), log=print) -> Dict:
    logging.getLogger("guardian").setLevel(logging.CRITICAL)  # dry-run acts would log every call
    loaded = load_config(None, None)
    config = loaded.config
    out = {"config": "board %s (%d critical, %d low-priority entries)" % (
        config.board, len(config.critical), len(config.low_priority))}
    out["ticks"] = idle_and_pressure(config, log)
    out["selection"] = victim_selection(config, counts, log=log)
    return out
