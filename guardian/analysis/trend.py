"""Is this process's memory growing, how surely, and when does it hit a line?

Pure: no I/O and no clock. The input is a series of samples (time in seconds, value in bytes,
segment number); a new segment starts where the process was restarted (a new PID under the
same board entry), so the drop at a restart is an offset, not a fall.

The estimate:
- slope: Theil-Sen, the median of the slopes between every pair of samples of the same
  segment (pairs never straddle a restart). Robust to outliers and to a step: one step moves
  only the pairs that straddle it.
- significance: the Mann-Kendall test over the same pairs, stratified by segment (S and its
  variance summed over segments, ties corrected). One-sided: "is it rising".
- agreement: the fraction of those pairwise slopes with the same sign as the estimate.
- steadiness: the series (restart offsets removed) cut into four runs of samples; the median
  of each run must rise above the previous by at least a third of what the slope predicts.
- shape: the series smoothed into eight run medians (plus the first and last three samples):
  it must not give back more than half of what the window gained (a sawtooth: caches, GC),
  and no single rise between runs may be more than half of it (a step, then a plateau).
  Mann-Kendall alone calls a sawtooth significant (its samples are not independent); these
  gates are what tell a leak - rising in every part of the window, never giving back - from
  memory that rises and falls, or rose once.

"growing" needs all of: at least MIN_POINTS samples spanning at least min_span_s, a positive
slope, p < P_MAX, agreement >= AGREE_MIN, every quarter rising, and the shape of a leak.
What cannot be told apart inside one window: a sawtooth whose rise lasts longer than the min
span, until its first drop; a few discrete jumps that all happen to go up. judge() and the
projection keep those from acting unless they head for a line within the horizon.

Cost: pairs are quadratic, so a window of more than MAX_POINTS samples is thinned first into
MAX_POINTS groups of consecutive samples (median value, mean time) within each segment; the
median also takes out some noise. At 64 points that is at most 2016 pairs: about 0.3 ms per
estimate of a full 180-sample window on a 2 GHz x86 core in CPython (all 16110 pairs: 2.4 ms;
tests/unit/analysis/test_trend.py measures it), perhaps ten to twenty times that on a small ARM core,
once per sample interval per watched process.
"""
from __future__ import annotations

try:  # the extension's: the daemon then holds neither math (~70 KiB resident) nor the pages of
    from guardian._rest import erfc, sqrt  # libm that pow and erfc fault in (64-240 KiB, locked)
except ImportError:
    from math import erfc, sqrt

from guardian.record import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple

MAX_POINTS = 64  # pairwise work on at most this many (thinned) points
MIN_POINTS = 8
P_MAX = 0.01  # Mann-Kendall one-sided p below this
AGREE_MIN = 0.7  # at least this fraction of pairwise slopes rising
BLOCKS = 4  # steadiness: runs of samples that must each rise
BLOCK_RISE_MIN = 1.0 / 3.0  # each run's rise at least this fraction of what the slope predicts
RUNS = 8  # shape: the series as medians of this many runs of samples
GIVE_BACK_MAX = 0.5  # a fall from an earlier high of more than this share of the window's rise
STEP_MAX = 0.5  # one rise between consecutive runs of more than this share of the window's rise


@record
class Trend:
    slope: float  # bytes/s (Theil-Sen); 0.0 when there is too little data
    level: float  # bytes: the fitted value at the last sample (current segment), robust to noise
    last_time: float  # time of the last sample
    n: int  # samples used
    points: int  # points after thinning (what the pairs were built from)
    span_s: float  # time covered by samples of all segments
    segments: int
    tau: float  # Kendall's tau over within-segment pairs, -1..1
    p: float  # Mann-Kendall one-sided p-value for "rising" (1.0 when unknown)
    agree: float  # fraction of pairwise slopes with the sign of the slope, 0..1
    steady: int  # how many of the BLOCKS-1 steps between runs rose enough
    growing: bool  # all the gates passed
    why: str  # what decided "growing", in words

    @property
    def confidence(self) -> float:
        """1 - p of the Mann-Kendall test (how surely the series rises), 0..1."""
        return max(0.0, min(1.0, 1.0 - self.p))

    def at(self, t: float) -> float:
        """The fitted value at time t (current segment)."""
        return self.level + self.slope * (t - self.last_time)


EMPTY = Trend(0.0, 0.0, 0.0, 0, 0, 0.0, 0, 0.0, 1.0, 0.0, 0, False, "no samples")


_SQRT2 = 1.4142135623730951  # math.sqrt(2.0)


def _count_below(ordered: Sequence[float], x: float, or_equal: bool = False) -> int:
    """How many of the sorted values are below x (or at most x): bisect's left (right) point."""
    lo, hi = 0, len(ordered)
    while lo < hi:
        mid = (lo + hi) // 2
        if ordered[mid] < x or (or_equal and ordered[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return 0.0
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def _thin(t: Sequence[float], v: Sequence[float], seg: Sequence[int],
          max_points: int) -> Tuple[List[float], List[float], List[int]]:
    """At most about max_points points: groups of consecutive samples of one segment become
    (mean time, median value). Groups never span a restart."""
    n = len(t)
    if n <= max_points:
        return [float(x) for x in t], [float(x) for x in v], list(seg)
    size = -(-n // max_points)  # ceil
    T: List[float] = []
    V: List[float] = []
    S: List[int] = []
    i = 0
    while i < n:
        s = seg[i]
        j = i + 1
        while j < n and j - i < size and seg[j] == s:
            j += 1
        T.append(sum(t[i:j]) / (j - i))
        V.append(_median(v[i:j]))
        S.append(s)
        i = j
    return T, V, S


def _segments(S: Sequence[int]) -> List[Tuple[int, int]]:
    """[start, end) index ranges of consecutive equal segment numbers."""
    out = []
    start = 0
    for i in range(1, len(S) + 1):
        if i == len(S) or S[i] != S[start]:
            out.append((start, i))
            start = i
    return out


def _tie_term(values: Sequence[float]) -> float:
    counts = {}
    for x in values:
        counts[x] = counts.get(x, 0) + 1
    return sum(c * (c - 1) * (2 * c + 5) for c in counts.values() if c > 1)


def estimate(t: Sequence[float], v: Sequence[float], seg: Optional[Sequence[int]] = None,
             min_span_s: float = 0.0, max_points: int = MAX_POINTS) -> Trend:
    """The trend of samples (t ascending, seconds; v bytes; seg the segment of each sample,
    non-decreasing; None means one segment)."""
    n = len(t)
    if n == 0:
        return EMPTY
    if seg is None:
        seg = [0] * n
    T, V, S = _thin(t, v, seg, max_points)
    m = len(T)
    ranges = _segments(S)
    span = sum(T[b - 1] - T[a] for a, b in ranges)
    if n != len(T):  # thinning moved the ends inwards; the samples themselves span this much
        raw = _segments(seg)
        span = sum(t[b - 1] - t[a] for a, b in raw)

    slopes: List[float] = []
    var = 0.0
    for a, b in ranges:
        k = b - a
        if k < 2:
            continue
        for i in range(a, b - 1):
            ti, vi = T[i], V[i]
            slopes.extend([(V[j] - vi) / (T[j] - ti) for j in range(i + 1, b) if T[j] > ti])
        var += (k * (k - 1) * (2 * k + 5) - _tie_term(V[a:b])) / 18.0

    last_a, last_b = ranges[-1]
    if not slopes:
        level = _median(V[last_a:last_b])
        return Trend(0.0, level, float(t[-1]), n, m, span, len(ranges), 0.0, 1.0, 0.0, 0, False,
                     "too few samples (%d)" % n)

    slopes.sort()
    pairs = len(slopes)
    neg = _count_below(slopes, 0.0)
    pos = pairs - _count_below(slopes, 0.0, True)
    slope = _median(slopes)
    S_mk = pos - neg
    tau = S_mk / pairs
    if var > 0 and S_mk > 0:
        z = (S_mk - 1) / sqrt(var)
        p = 0.5 * erfc(z / _SQRT2)
    elif var > 0 and S_mk < 0:
        z = (S_mk + 1) / sqrt(var)
        p = 0.5 * erfc(z / _SQRT2)
    else:
        p = 1.0 if S_mk <= 0 else 0.5
    if slope > 0:
        agree = pos / pairs
    elif slope < 0:
        agree = neg / pairs
    else:
        agree = (pairs - pos - neg) / pairs

    # Offsets: each segment's intercept against the common slope; the series is then laid
    # on one line, as if no restart had happened, ending at the current segment's level.
    intercepts = [_median([V[i] - slope * T[i] for i in range(a, b)]) for a, b in ranges]
    last_b0 = intercepts[-1]
    level = last_b0 + slope * t[-1]
    aligned: List[float] = []
    for (a, b), b0 in zip(ranges, intercepts):
        shift = last_b0 - b0
        aligned.extend(V[i] + shift for i in range(a, b))

    steady = _steadiness(T, aligned, slope)
    drawdown, step = _shape(aligned)
    rise = slope * (T[-1] - T[0]) if slope > 0 else 0.0  # what the fit says the window gained

    if m < MIN_POINTS:
        why = "too few samples (%d, need %d)" % (m, MIN_POINTS)
    elif span < min_span_s:
        why = "samples span %.0f s, need %.0f s" % (span, min_span_s)
    elif slope <= 0:
        why = "not rising (slope %.1f KiB/min)" % (slope * 60 / 1024)
    elif p >= P_MAX:
        why = "not significant (Mann-Kendall p %.3g >= %g)" % (p, P_MAX)
    elif agree < AGREE_MIN:
        why = "pairwise slopes disagree (%.0f%% rising, need %.0f%%)" % (agree * 100, AGREE_MIN * 100)
    elif steady < BLOCKS - 1:
        why = "not steady: %d of %d quarters rose enough" % (steady, BLOCKS - 1)
    elif drawdown > GIVE_BACK_MAX * rise:
        why = "gives memory back: fell %.0f KiB after a rise, %.0f%% of the %.0f KiB the window gained " \
              "(a sawtooth: caches or GC)" % (drawdown / 1024, 100 * drawdown / rise, rise / 1024)
    elif step > STEP_MAX * rise:
        why = "one step of %.0f KiB is %.0f%% of the %.0f KiB the window gained (a step, then flat)" % (
            step / 1024, 100 * step / rise, rise / 1024)
    else:
        why = ""
    growing = not why
    if growing:
        why = "rising %.1f KiB/min, p %.2g, %.0f%% of pairwise slopes rising, every quarter higher" % (
            slope * 60 / 1024, p, agree * 100)
    return Trend(slope, level, float(t[-1]), n, m, span, len(ranges), tau, p, agree, steady, growing, why)


def _steadiness(T: Sequence[float], aligned: Sequence[float], slope: float) -> int:
    """How many of the BLOCKS-1 steps between consecutive runs of samples rose by at least
    BLOCK_RISE_MIN of what the slope predicts between the runs' middle times."""
    m = len(T)
    if m < BLOCKS * 2 or slope <= 0:
        return 0
    bounds = [round(k * m / BLOCKS) for k in range(BLOCKS + 1)]
    mids = []
    for k in range(BLOCKS):
        a, b = bounds[k], bounds[k + 1]
        mids.append((_median(T[a:b]), _median(aligned[a:b])))
    good = 0
    for (t0, v0), (t1, v1) in zip(mids, mids[1:]):
        expect = slope * (t1 - t0)
        if v1 - v0 >= BLOCK_RISE_MIN * expect:
            good += 1
    return good


def _shape(aligned: Sequence[float]) -> Tuple[float, float]:
    """(largest fall from an earlier high, largest single rise) of the series smoothed into
    RUNS medians of consecutive samples, with the first and last few samples as runs of their
    own (a drop just after the window starts, or just before it ends, still shows). A leak
    has neither: it never gives memory back and its rise is spread over the window."""
    m = len(aligned)
    runs = min(RUNS, m // 2)
    if runs < 2:
        return 0.0, 0.0
    bounds = [round(k * m / runs) for k in range(runs + 1)]
    meds = [_median(aligned[bounds[k]:bounds[k + 1]]) for k in range(runs)]
    step = max(cur - prev for prev, cur in zip(meds, meds[1:]))
    edge = 3
    if m >= 4 * edge:
        meds = [_median(aligned[:edge])] + meds + [_median(aligned[-edge:])]
    high = meds[0]
    drawdown = 0.0
    for cur in meds[1:]:
        high = max(high, cur)
        drawdown = max(drawdown, high - cur)
    return drawdown, step


def seconds_to(trend: Trend, limit: Optional[float], now: Optional[float] = None) -> Optional[float]:
    """Seconds from now until the fitted level reaches limit at the current slope: 0.0 when it
    is there already, None when it never will (no limit, or not rising)."""
    if limit is None:
        return None
    level = trend.at(now) if now is not None else trend.level
    if level >= limit:
        return 0.0
    if trend.slope <= 0:
        return None
    return (limit - level) / trend.slope


@record
class Projection:
    """Where the trend leads, and whether that calls for the leak action."""

    eta_ceiling_s: Optional[float]  # until the process reaches its own ceiling; None: never/none set
    eta_terminate_s: Optional[float]  # until the system reaches the terminate line (this process alone)
    crossed: bool  # the ceiling is crossed now (the median of the last samples is above it)
    leak: bool  # crossed, or growing with a projection inside the horizon
    reason: str


def project(trend: Trend, ceiling: Optional[float], headroom: Optional[float], horizon_s: float,
            recent: Sequence[float] = ()) -> Projection:
    """The projection of a trend. ceiling: the process's own limit in bytes (None: none);
    headroom: bytes of MemAvailable above the terminate line now (None: unknown); recent: the
    last few raw values of the current process (the ceiling counts as crossed when their
    median is above it, so one spike does not count)."""
    crossed = ceiling is not None and len(recent) > 0 and _median(recent) >= ceiling
    eta_c = seconds_to(trend, ceiling) if trend.slope > 0 or crossed else None
    eta_t = None
    if headroom is not None and trend.slope > 0:
        eta_t = max(0.0, headroom) / trend.slope
    if crossed:
        return Projection(0.0, eta_t, True, True, "RSS %.1f MiB is above its ceiling %.1f MiB" % (
            _median(recent) / 1048576, ceiling / 1048576))
    if not trend.growing:
        return Projection(eta_c, eta_t, False, False, trend.why)
    hits = []
    if eta_c is not None and eta_c <= horizon_s:
        hits.append("reaches its ceiling %.1f MiB in %s" % (ceiling / 1048576, duration(eta_c)))
    if eta_t is not None and eta_t <= horizon_s:
        hits.append("takes the system to the terminate line in %s" % duration(eta_t))
    if hits:
        return Projection(eta_c, eta_t, False, True, " and ".join(hits) + " (horizon %s)" % duration(horizon_s))
    far = []
    if eta_c is not None:
        far.append("ceiling in %s" % duration(eta_c))
    if eta_t is not None:
        far.append("terminate line in %s" % duration(eta_t))
    return Projection(eta_c, eta_t, False, False, "growing, but %s: beyond the horizon %s" % (
        ", ".join(far) if far else "no ceiling or line to reach", duration(horizon_s)))


def duration(seconds: Optional[float]) -> str:
    """3 s, 12 min, 4.5 h, 3.2 d: short and readable; "-" for None."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return "%.0f s" % seconds
    if seconds < 7200:
        return "%.0f min" % (seconds / 60)
    if seconds < 172800:
        return "%.1f h" % (seconds / 3600)
    return "%.1f d" % (seconds / 86400)


def judge(t: Sequence[float], v: Sequence[float], seg: Optional[Sequence[int]], min_span_s: float,
          early_span_s: float, ceiling: Optional[float], headroom: Optional[float], horizon_s: float,
          recent: Sequence[float] = ()) -> Tuple[Trend, Projection]:
    """The estimate and its projection, with the watcher's rule for how much history a trend
    needs: min_span_s normally; early_span_s (shorter) when the projection says that waiting
    for min_span_s would already be too late (a line within min_span_s). A sawtooth whose
    rise outlasts early_span_s is then taken for a leak only if its peak heads for a line
    within min_span_s - which is close enough to act on anyway."""
    tr = estimate(t, v, seg, min_span_s=min(early_span_s, min_span_s))
    if tr.growing and tr.span_s < min_span_s:
        pr = project(tr, ceiling, headroom, horizon_s, recent)
        soonest = min((x for x in (pr.eta_ceiling_s, pr.eta_terminate_s) if x is not None), default=None)
        if soonest is not None and soonest <= min_span_s:
            return tr, pr
        tr = replace(tr, growing=False, why="samples span %.0f s, need %.0f s (%.0f s when a line is that close)" % (
            tr.span_s, min_span_s, early_span_s))
    return tr, project(tr, ceiling, headroom, horizon_s, recent)
