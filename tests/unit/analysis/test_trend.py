"""The growth estimate (guardian/analysis/trend.py): slopes, gates, restarts, projection, cost, and the
detection table over synthetic series (tests/support/leak_sim.py)."""
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.analysis import trend
from guardian.analysis.trend import duration, estimate, judge, project
from tests.support import leak_sim


KIB = 1024
MIB = 1024 * 1024


def series(n, f, interval=10.0, seg=None):
    t = [i * interval for i in range(n)]
    return t, [f(x) for x in t], seg


def test_exact_linear_leak_has_its_slope_and_is_growing():
    t, v, _ = series(100, lambda x: 20 * MIB + 3 * KIB * x)
    tr = estimate(t, v, min_span_s=450)
    assert tr.slope == pytest.approx(3 * KIB)
    assert tr.growing, tr.why
    assert tr.p < 1e-6 and tr.agree == 1.0 and tr.tau == 1.0 and tr.steady == 3
    assert tr.level == pytest.approx(v[-1])
    assert tr.confidence > 0.999999


def test_flat_with_noise_is_not_growing():
    r = random.Random(3)
    t, v, _ = series(180, lambda x: 20 * MIB + r.gauss(0, 256 * KIB))
    tr = estimate(t, v, min_span_s=450)
    assert not tr.growing
    assert abs(tr.slope) < 0.5 * KIB


def test_too_few_samples_and_too_short_a_span_are_not_growing():
    t, v, _ = series(5, lambda x: 20 * MIB + 10 * KIB * x)
    assert not estimate(t, v).growing
    assert "too few" in estimate(t, v).why
    t, v, _ = series(20, lambda x: 20 * MIB + 10 * KIB * x)
    tr = estimate(t, v, min_span_s=450)
    assert not tr.growing and "span" in tr.why
    assert estimate(t, v, min_span_s=100).growing


def test_empty_and_single_sample():
    assert not estimate([], []).growing
    tr = estimate([0.0], [5.0])
    assert tr.slope == 0.0 and tr.level == 5.0 and not tr.growing


def test_sawtooth_is_rejected_by_its_shape():
    t, v, _ = series(180, lambda x: 20 * MIB + 8 * MIB * ((x % 300) / 300))
    tr = estimate(t, v, min_span_s=450)
    assert not tr.growing, tr.why


def test_a_single_step_then_plateau_is_rejected():
    for at in (300, 900, 1500):
        t, v, _ = series(180, lambda x, at=at: 20 * MIB + (8 * MIB if x >= at else 0))
        tr = estimate(t, v, min_span_s=450)
        assert not tr.growing, (at, tr.why)


def test_restart_offset_is_not_a_fall_and_pairs_never_straddle_it():
    # a 16 KiB/s leak restarted in the middle: back to the base, leaking again
    t = [i * 10.0 for i in range(180)]
    seg = [0 if x < 900 else 1 for x in t]
    v = [20 * MIB + 16 * KIB * (x if x < 900 else x - 900) for x in t]
    tr = estimate(t, v, seg, min_span_s=450)
    assert tr.slope == pytest.approx(16 * KIB)
    assert tr.growing, tr.why
    assert tr.segments == 2
    # the level is the current process's, not the old one's
    assert tr.level == pytest.approx(v[-1])
    # the same series without the restart marked is a sawtooth with one drop: rejected
    assert not estimate(t, v, None, min_span_s=450).growing


def test_flat_daemon_restarted_is_not_growing():
    t = [i * 10.0 for i in range(180)]
    seg = [0 if x < 900 else 1 for x in t]
    v = [20 * MIB if x < 900 else 12 * MIB for x in t]
    tr = estimate(t, v, seg, min_span_s=450)
    assert tr.slope == 0.0 and not tr.growing


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=64 * MIB), min_size=2, max_size=120),
       st.integers(min_value=0, max_value=119))
def test_property_a_series_that_never_rises_is_never_growing(values, cut):
    values = sorted(values, reverse=True)
    t = [i * 10.0 for i in range(len(values))]
    seg = [0 if i < cut else 1 for i in range(len(values))]
    assert not estimate(t, values, seg).growing


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=-8 * MIB, max_value=8 * MIB), st.integers(min_value=10, max_value=170),
       st.integers(min_value=0, max_value=2 ** 32))
def test_property_a_segment_offset_does_not_change_the_slope(offset, cut, seed):
    r = random.Random(seed)
    t = [i * 10.0 for i in range(180)]
    base = [20 * MIB + 4 * KIB * x + r.gauss(0, 64 * KIB) for x in t]
    seg = [0 if i < cut else 1 for i in range(180)]
    shifted = [b + (offset if s == 1 else 0) for b, s in zip(base, seg)]
    a = estimate(t, base, seg, min_span_s=450)
    b = estimate(t, shifted, seg, min_span_s=450)
    assert a.slope == pytest.approx(b.slope, rel=1e-9, abs=1e-6)
    assert a.growing == b.growing


def test_projection_to_ceiling_and_terminate_line():
    t, v, _ = series(100, lambda x: 20 * MIB + 16 * KIB * x)  # at 990 s: 35.5 MiB, 1826 s to 64 MiB
    tr = estimate(t, v, min_span_s=450)
    assert not project(tr, 64 * MIB, 100 * MIB, 1800.0, v[-3:]).leak  # just beyond a 30 min horizon
    pr = project(tr, 64 * MIB, 100 * MIB, 2000.0, v[-3:])
    assert pr.eta_ceiling_s == pytest.approx((64 * MIB - v[-1]) / (16 * KIB))
    assert pr.eta_terminate_s == pytest.approx(100 * MIB / (16 * KIB))
    assert pr.leak and "ceiling" in pr.reason and not pr.crossed
    far = project(tr, 640 * MIB, None, 1800.0, v[-3:])
    assert not far.leak and "beyond the horizon" in far.reason
    near_line = project(tr, None, 8 * MIB, 1800.0, v[-3:])
    assert near_line.leak and "terminate line" in near_line.reason
    below = project(tr, None, -MIB, 1800.0)
    assert below.eta_terminate_s == 0.0 and below.leak


def test_ceiling_crossed_needs_the_median_of_the_last_samples():
    tr = estimate([0.0, 10.0], [1.0, 1.0])
    assert not project(tr, 10 * MIB, None, 1800, [5 * MIB, 5 * MIB, 11 * MIB]).crossed  # one spike
    crossed = project(tr, 10 * MIB, None, 1800, [11 * MIB, 5 * MIB, 11 * MIB])
    assert crossed.crossed and crossed.leak and crossed.eta_ceiling_s == 0.0
    # without a trend it is still a leak: the board said this process must stay below
    assert not tr.growing


def test_judge_confirms_early_only_when_a_line_is_close():
    t, v, _ = series(20, lambda x: 40 * MIB + 64 * KIB * x)  # 190 s of a fast leak
    tr, pr = judge(t, v, None, 450, 150, 64 * MIB, None, 1800, v[-3:])
    assert tr.growing and pr.leak  # ceiling ~4 min away: waiting for 7.5 min would be too late
    tr, pr = judge(t, v, None, 450, 150, 640 * MIB, None, 1800, v[-3:])
    assert not tr.growing and "need 450 s" in tr.why and not pr.leak


def test_duration_words():
    assert duration(None) == "-"
    assert duration(5) == "5 s"
    assert duration(600) == "10 min"
    assert duration(3 * 3600) == "3.0 h"
    assert duration(3 * 86400) == "3.0 d"


def test_cost_of_one_estimate_on_a_full_window(capsys):
    r = random.Random(0)
    t = [i * 10.0 for i in range(180)]
    v = [20 * MIB + KIB * x + r.gauss(0, 200 * KIB) for x in t]
    timings = {}
    for points in (trend.MAX_POINTS, 180):
        n = 30
        start = time.perf_counter()
        for _ in range(n):
            tr = estimate(t, v, None, min_span_s=450, max_points=points)
        timings[points] = (time.perf_counter() - start) / n
        assert tr.growing and tr.slope == pytest.approx(KIB, rel=0.15)
    with capsys.disabled():
        print("\nestimate on 180 samples: thinned to %d points %.2f ms, all 16110 pairs %.2f ms" % (
            trend.MAX_POINTS, timings[trend.MAX_POINTS] * 1e3, timings[180] * 1e3))
    assert timings[trend.MAX_POINTS] < timings[180] / 3
    assert timings[trend.MAX_POINTS] < 0.02  # 20 ms: generous for a loaded CI machine


@pytest.fixture(scope="module")
def table():
    return leak_sim.table(seeds=(0, 1, 2))


def test_detection_table(table, capsys):
    with capsys.disabled():
        print("\n" + leak_sim.format_table(table))
    for kind, name, rate, results in table:
        for r in results:
            if kind == "leak":
                assert r.first_growing_s is not None, name
                limit = 20 * 60 if rate == 1 else 8 * 60
                assert r.first_growing_s <= limit, (name, r.first_growing_s)
                tolerance = 0.6 if rate == 1 else 0.15
                assert r.slope_at_detection == pytest.approx(rate, rel=tolerance), name
                assert r.first_leak_s is not None, name
                if r.lead_s is not None:
                    assert r.lead_s > 0, (name, r.lead_s)  # before the ceiling, never after
            elif kind == "non-leak":
                assert r.growing_samples == 0, (name, r.first_growing_s)
                assert r.leak_samples == 0, name
            else:
                assert r.leak_samples == 0, name


def test_leak_restarted_keeps_its_slope(table):
    for _kind, name, rate, results in table:
        if "restarted" in name:
            for r in results:
                assert r.final_slope == pytest.approx(rate, rel=0.1)
