"""Synthetic memory series for the trend estimator, and the detection table.

Every series is sampled every 10 s into a sliding 30 min window (the defaults), the estimate
runs after every sample with the watcher's min span (a quarter of the window), and the
projection uses the watcher's rule: a ceiling of 64 MiB (the process starts near 20 MiB),
the system's terminate line 150 MiB away, a 30 min horizon.

    python3 -m tests.support.leak_sim      prints the table
"""
import random
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from guardian.analysis.trend import judge

KIB = 1024
MIB = 1024 * 1024
BASE = 20 * MIB
INTERVAL = 10.0
WINDOW = 1800.0
HORIZON = 1800.0
CEILING = 64 * MIB
HEADROOM = 150 * MIB  # the system's terminate line, this far away (a 256 MiB board)
MIN_SPAN = WINDOW / 4  # as guardian.core.parts.leakwatch.min_span_s
EARLY_SPAN = WINDOW / 12  # as guardian.core.parts.leakwatch.early_span_s

Gen = Callable[[float, random.Random], Tuple[float, int]]  # t -> (bytes, segment)


def noise(r: random.Random) -> float:
    """RSS noise: Gaussian 256 KiB (25 times the per-sample growth of a 1 KiB/s leak), plus a
    2 MiB spike in 2 % of the samples (a burst of work that is freed again)."""
    return r.gauss(0, 256 * KIB) + (2 * MIB if r.random() < 0.02 else 0)


def pages(x: float) -> int:
    return int(x) // 4096 * 4096


def leak(rate_kib_s: float) -> Gen:
    return lambda t, r: (pages(BASE + rate_kib_s * KIB * t + noise(r)), 0)


def leak_with_restarts(rate_kib_s: float, every_s: float) -> Gen:
    def g(t, r):
        seg = int(t // every_s)
        age = t - seg * every_s
        return pages(BASE * (0.6 + 0.4 * min(1.0, age / 30.0)) + rate_kib_s * KIB * age + noise(r)), seg
    return g


def leak_under_gc(rate_kib_s: float, period_s: float, amplitude: float) -> Gen:
    return lambda t, r: (pages(BASE + rate_kib_s * KIB * t + amplitude * ((t % period_s) / period_s) + noise(r)), 0)


def flat() -> Gen:
    return lambda t, r: (pages(BASE + noise(r)), 0)


def sawtooth(period_s: float, amplitude: float = 8 * MIB) -> Gen:
    return lambda t, r: (pages(BASE + amplitude * ((t % period_s) / period_s) + noise(r)), 0)


def step(at_s: float, size: float = 8 * MIB, ramp_s: float = 0.0) -> Gen:
    def g(t, r):
        frac = 0.0 if t < at_s else 1.0 if ramp_s <= 0 or t >= at_s + ramp_s else (t - at_s) / ramp_s
        return pages(BASE + size * frac + noise(r)), 0
    return g


def restart_flat(at_s: float) -> Gen:
    """A flat daemon restarted once: 40 % lower after the restart, back to its level within 30 s."""
    def g(t, r):
        if t < at_s:
            return pages(BASE + noise(r)), 0
        age = t - at_s
        return pages(BASE * (0.6 + 0.4 * min(1.0, age / 30.0)) + noise(r)), 1
    return g


def levels() -> Gen:
    """Exact plateaus (no noise) that move by 132 KiB (a malloc arena) up or down now and then."""
    state = {"level": BASE}

    def g(t, r):
        if t == 0:
            state["level"] = BASE
        if r.random() < 0.02:
            state["level"] += 132 * KIB * r.choice((-1, 1))
            state["level"] = min(max(state["level"], BASE - 2 * MIB), BASE + 2 * MIB)
        return state["level"], 0
    return g


@dataclass
class Result:
    name: str
    rate_kib_s: Optional[float]
    first_growing_s: Optional[float] = None
    slope_at_detection: Optional[float] = None  # KiB/s
    first_leak_s: Optional[float] = None
    lead_s: Optional[float] = None  # true time left to the ceiling when the leak event fired
    growing_samples: int = 0
    leak_samples: int = 0
    samples: int = 0
    final_slope: Optional[float] = None


def run(name: str, gen: Gen, hours: float, seed: int, rate_kib_s: Optional[float] = None,
        stop_at_leak: bool = False, true_level: Optional[Callable[[float], float]] = None) -> Result:
    r = random.Random(seed)
    res = Result(name, rate_kib_s)
    ts: List[float] = []
    vs: List[float] = []
    ss: List[int] = []
    t = 0.0
    while t < hours * 3600:
        v, s = gen(t, r)
        ts.append(t)
        vs.append(v)
        ss.append(s)
        while ts[0] < t - WINDOW:
            del ts[0], vs[0], ss[0]
        recent = [v for v, g in zip(vs[-3:], ss[-3:]) if g == ss[-1]]
        tr, pr = judge(ts, vs, ss, MIN_SPAN, EARLY_SPAN, CEILING, HEADROOM, HORIZON, recent)
        res.samples += 1
        res.final_slope = tr.slope / KIB
        if tr.growing:
            res.growing_samples += 1
            if res.first_growing_s is None:
                res.first_growing_s = t
                res.slope_at_detection = tr.slope / KIB
        if pr.leak:
            res.leak_samples += 1
            if res.first_leak_s is None:
                res.first_leak_s = t
                if true_level is not None and rate_kib_s:
                    res.lead_s = (CEILING - true_level(t)) / (rate_kib_s * KIB)
                if stop_at_leak:
                    break
        t += INTERVAL
    return res


LEAK_RATES = (1, 4, 16, 64, 256)


def leak_cases():
    """(name, generator, hours, rate, true level at t)"""
    out = []
    for rate in LEAK_RATES:
        hours = (CEILING - BASE) / (rate * KIB) / 3600 + 0.5
        out.append(("leak %d KiB/s" % rate, leak(rate), hours, rate, lambda t, rate=rate: BASE + rate * KIB * t))
    out.append(("leak 16 KiB/s, restarted every 90 min", leak_with_restarts(16, 5400), 3.0, 16, None))
    out.append(("leak 16 KiB/s under a 4 MiB GC sawtooth (2 min)", leak_under_gc(16, 120, 4 * MIB), 2.0, 16,
                lambda t: BASE + 16 * KIB * t + 2 * MIB))
    return out


def non_leak_cases():
    return [
        ("flat, noise and spikes", flat(), 4.0),
        ("sawtooth 8 MiB every 60 s", sawtooth(60), 4.0),
        ("sawtooth 8 MiB every 5 min", sawtooth(300), 4.0),
        ("sawtooth 8 MiB every 7 min", sawtooth(420), 4.0),
        ("step +8 MiB at 10 min, then flat", step(600), 3.0),
        ("step +8 MiB at 1 h, then flat", step(3600), 3.0),
        ("ramp +8 MiB over 3 min at 1 h, then flat", step(3600, ramp_s=180), 3.0),
        ("restart at 1 h (flat daemon)", restart_flat(3600), 3.0),
    ]


def limit_cases():
    """Shown, not asserted for "growing": a sawtooth whose rise lasts longer than the min span
    is a leak until its first drop, and a random walk of discrete jumps that happens to step up
    four times in a row in one window is a staircase leak while it lasts. The projection keeps
    them from a leak event."""
    return [
        ("sawtooth 8 MiB every 10 min", sawtooth(600), 3.0),
        ("sawtooth 8 MiB every 30 min", sawtooth(1800), 3.0),
        ("exact plateaus moving by 132 KiB at random", levels(), 4.0),
    ]


def table(seeds=(0, 1, 2)):
    """Rows of the detection table (worst case over seeds for latencies, sums for counts)."""
    rows = []
    for name, gen, hours, rate, level in leak_cases():
        res = [run(name, gen, hours, s, rate, stop_at_leak=False, true_level=level) for s in seeds]
        rows.append(("leak", name, rate, res))
    for name, gen, hours in non_leak_cases():
        rows.append(("non-leak", name, None, [run(name, gen, hours, s) for s in seeds]))
    for name, gen, hours in limit_cases():
        rows.append(("limit", name, None, [run(name, gen, hours, s) for s in seeds]))
    return rows


def _fmt_s(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x < 3600:
        return "%.1f min" % (x / 60)
    return "%.2f h" % (x / 3600)


def format_table(rows) -> str:
    lines = ["| series | trend confirmed after (worst of %d) | slope at confirmation (true) | leak event after "
             "| time left to the 64 MiB ceiling then | samples flagged growing "
             "| samples where the projection calls a leak |" % len(rows[0][3]),
             "|---|---|---|---|---|---|---|"]
    for kind, name, rate, res in rows:
        firsts = [r.first_growing_s for r in res]
        first = None if any(f is None for f in firsts) else max(firsts)
        if kind != "leak":
            first = max((f for f in firsts if f is not None), default=None)
        slopes = [r.slope_at_detection for r in res if r.slope_at_detection is not None]
        slope = "-" if not slopes else "%.1f-%.1f KiB/s%s" % (min(slopes), max(slopes),
                                                               " (%g)" % rate if rate else "")
        leaks = [r.first_leak_s for r in res]
        leak_at = "-" if all(x is None for x in leaks) else _fmt_s(max(x for x in leaks if x is not None))
        leads = [r.lead_s for r in res if r.lead_s is not None]
        lead = "-" if not leads else "%s" % _fmt_s(min(leads))
        grow = "%d / %d" % (sum(r.growing_samples for r in res), sum(r.samples for r in res))
        ev = "%d" % sum(r.leak_samples for r in res)
        label = name if kind != "limit" else name + " (limit)"
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (label, _fmt_s(first), slope, leak_at, lead, grow, ev))
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(table()))
