"""Fill rate and growth history: pure, fed with times."""
from guardian.core.history import MIN_WATCHED_S, FillRate, Growth
from guardian.config import MIB
from tests.support.fakes import procinfo


def test_fill_rate_measures_over_a_minimum_interval():
    f = FillRate(half_life_s=10.0, min_interval_s=0.2)
    f.add(0.0, 500 * MIB)
    f.add(0.001, 499 * MIB)  # 1 MiB in 1 ms would read as 1 GiB/s: ignored
    assert f.peak(0.001) == 0.0
    f.add(0.5, 490 * MIB)  # 10 MiB in 0.5 s
    assert abs(f.peak(0.5) - 20 * MIB) < 1


def test_fill_rate_peak_decays_and_memory_coming_back_is_no_rate():
    f = FillRate(half_life_s=10.0)
    f.add(0.0, 500 * MIB)
    f.add(1.0, 400 * MIB)
    assert abs(f.peak(1.0) - 100 * MIB) < 1
    assert abs(f.peak(11.0) - 50 * MIB) < 1
    f.add(12.0, 600 * MIB)
    assert f.current < 0 and abs(f.peak(12.0) - 100 * MIB * 0.5 ** 1.1) < MIB


def test_the_pace_now_spans_the_last_second_and_forgets_a_burst_once_it_is_over():
    f = FillRate(half_life_s=10.0, min_interval_s=0.2, span_s=1.0)
    f.add(0.0, 500 * MIB)
    assert f.recent() == 0.0  # one sample: no pace yet
    # A fill of 40 MiB/s read every 0.25 s, one reading of it stalled (nothing moved for it).
    for i, avail in enumerate((490, 480, 480, 460, 450)):
        f.add(0.25 * (i + 1), avail * MIB)
    assert f.current == 40 * MIB  # the last interval alone
    assert abs(f.recent() - 40 * MIB) < 1  # 490 at 0.25 s to 450 at 1.25 s
    f.add(1.5, 450 * MIB)
    f.add(2.0, 450 * MIB)
    f.add(2.6, 450 * MIB)
    assert f.recent() == 0.0  # still for a second: the burst is over...
    assert f.peak(2.6) > 30 * MIB  # ...though its peak decays for seconds yet
    # A sample alone in the span (the last a while ago): the pace of that last interval.
    f.add(10.0, 370 * MIB)
    assert abs(f.recent() - 80 * MIB / 7.4) < 1
    f.reset_peak()
    assert f.recent() == 0.0


def test_growth_over_the_window_and_newborns_count_whole():
    g = Growth(window_s=30.0)
    g.add(0.0, [procinfo(10, rss_mib=100), procinfo(11, rss_mib=50)])
    g.add(10.0, [procinfo(10, rss_mib=300), procinfo(11, rss_mib=40), procinfo(12, rss_mib=70)])
    grown = g.growth()
    assert grown[10] == 200 * MIB and grown[11] == -10 * MIB and grown[12] == 70 * MIB
    assert g.span_s() == 10.0


def test_growth_forgets_samples_older_than_the_window_and_pid_reuse():
    g = Growth(window_s=30.0)
    g.add(0.0, [procinfo(10, rss_mib=100, starttime=1)])
    g.add(20.0, [procinfo(10, rss_mib=150, starttime=1)])
    g.add(50.0, [procinfo(10, rss_mib=160, starttime=1)])
    assert g.growth()[10] == 10 * MIB  # since t=20, the oldest sample inside the window
    g.add(55.0, [procinfo(10, rss_mib=5, starttime=2)])  # a new process under the same PID
    assert g.growth()[10] == 5 * MIB


def test_reset_peak_after_a_kill_returns_the_lines_to_the_boards_own():
    f = FillRate(half_life_s=10.0)
    f.add(0.0, 500 * MIB)
    f.add(1.0, 300 * MIB)
    assert f.peak(1.0) > 0
    f.reset_peak()
    f.reset_baseline()
    assert f.peak(1.0) == 0.0
    f.add(2.0, 600 * MIB)  # memory came back: no rate
    assert f.peak(2.0) == 0.0


def test_a_newborn_counts_whole_from_the_first_sample():
    # Boot clock 1000 s, 100 ticks/s: pid 12 was born 2 s ago, pid 10 at boot.
    g = Growth(window_s=30.0, clock_ticks=100)
    g.add(5.0, [procinfo(10, rss_mib=15, starttime=100), procinfo(12, rss_mib=6, starttime=99800)], uptime_s=1000.0)
    assert g.growth() == {12: 6 * MIB}
    # Without a boot clock, one sample says nothing about growth.
    g = Growth(window_s=30.0)
    g.add(5.0, [procinfo(12, rss_mib=6, starttime=99800)])
    assert g.growth() == {}


def test_growth_rate_is_each_growers_growth_over_the_time_it_was_watched():
    # Boot clock 1000 s at the second sample, 100 ticks/s.
    g = Growth(window_s=30.0, clock_ticks=100)
    assert g.rate() == 0.0
    g.add(0.0, [procinfo(10, rss_mib=100, starttime=100), procinfo(11, rss_mib=50, starttime=100)], uptime_s=990.0)
    # 10 grew 30 MiB in 10 s, 11 shrank (no rate), 12 was born 2 s ago and holds 8 MiB (4 MiB/s).
    g.add(10.0, [procinfo(10, rss_mib=130, starttime=100), procinfo(11, rss_mib=40, starttime=100),
                 procinfo(12, rss_mib=8, starttime=99_800)], uptime_s=1000.0)
    assert abs(g.rate() - 7 * MIB) < 1
    # One look: only the newborn has a rate; a fork of a moment ago is watched at least MIN_WATCHED_S.
    g = Growth(window_s=30.0, clock_ticks=100)
    g.add(5.0, [procinfo(10, rss_mib=15, starttime=100), procinfo(12, rss_mib=6, starttime=99_990)], uptime_s=1000.0)
    assert abs(g.rate() - 6 * MIB / MIN_WATCHED_S) < 1
    g = Growth(window_s=30.0)  # no boot clock: one sample says nothing
    g.add(5.0, [procinfo(12, rss_mib=6, starttime=99_800)])
    assert g.rate() == 0.0


def test_growth_rate_averages_out_a_stall_and_the_burst_after_it():
    """Three workers at 3 MiB/s each, held 2 s in reclaim and catching up at once: MemAvailable
    fell 18 MiB between two glances 0.3 s apart (60 MiB/s); their growth says 9 MiB/s."""
    g = Growth(window_s=30.0, clock_ticks=100)
    workers = (10, 11, 12)
    for t in (0.0, 5.0, 10.0):
        g.add(t, [procinfo(pid, rss_mib=30 + 3 * t, starttime=100) for pid in workers], uptime_s=1000.0 + t)
    assert abs(g.rate() - 9 * MIB) < 1
    f = FillRate(half_life_s=10.0)
    f.add(9.7, 118 * MIB)
    f.add(10.0, 100 * MIB)
    assert f.peak(10.0) >= 59 * MIB


def test_a_table_a_second_keeps_a_few_samples_and_the_same_growth():
    """Under pressure the table is read every second: the samples between the oldest and the
    newest are thinned to about one per window / KEPT_PER_WINDOW (they were 0.3 MiB for 100
    processes over 30 s, taken while memory is shortest), and growth and rate still span the
    window."""
    from guardian.core import history

    g = Growth(window_s=30.0, clock_ticks=100)
    procs = [procinfo(10 + i, rss_mib=10, starttime=100) for i in range(100)]
    for second in range(120):
        grower = procinfo(7, "grower", rss_mib=20 + second, starttime=100)  # 1 MiB/s
        g.add(float(second), procs + [grower], uptime_s=1000.0 + second)
        assert len(g._samples) <= history.KEPT_PER_WINDOW + 3
    span = g.span_s()
    assert 30.0 <= span <= 30.0 + 30.0 / history.KEPT_PER_WINDOW + 1
    assert g.growth()[7] == int(span) * MIB and g.growth()[10] == 0
    assert abs(g.rate() - MIB) < 1
