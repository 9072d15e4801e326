"""Leak watch on real processes: a child that leaks at a known rate is detected with the right
slope, its on_leak restart runs, and the restarted daemon continues the same series."""
import json
import re
import sys
import time
import uuid

import pytest

from guardian.config import MIB, Config, Critical, LeakWatch, Leaks, Match
from guardian.kernel.procs import read_procs
from guardian.core.parts.leakwatch import LeakWatcher
from guardian.kernel.smaps import read_rollup
from guardian.core.match import classify
from tests.support.fakes import Tell
from tests.support.processes import LEAK_RESTART, LEAKER_RATE_KIB_S, end_restarted_leaker, leaker_argv, start_ready


KIB = 1024


def watch_config(token, **leak):
    leak.setdefault("interval_s", 0.5)
    leak.setdefault("window_s", 20.0)
    leak.setdefault("horizon_s", 60.0)
    crit = Critical("leaky", Match(cmdline=re.escape(token)), oom_score_adj=500, leak=LeakWatch(**leak))
    return Config(critical=(crit,), leaks=Leaks(state_dir=""))


def drive(w, config, stop, timeout):
    """The daemon's part: sleep until a sample is due, read the process table, sample."""
    findings = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if w.due(now):
            procs = read_procs()
            findings.extend(w.sample(now, procs, classify(procs, config), None))
            if stop(findings):
                return findings
        time.sleep(max(0.0, min(0.1, w.next_due(time.monotonic()))))
    raise AssertionError("timed out after %s s; events: %s" % (timeout, [e[:2] for e in w.tell.events]))


def test_a_real_leak_is_detected_with_its_slope(capsys):
    token = "guardian-leaktest-%s" % uuid.uuid4().hex[:8]
    child = start_ready(leaker_argv(token))
    try:
        start_rss = read_rollup(child.pid).rss
        config = watch_config(token, max_rss_mib=start_rss / MIB + 80, on_leak="notify")
        tell = Tell()
        w = LeakWatcher(config, state_dir=None, tell=tell)
        t0 = time.monotonic()
        findings = drive(w, config, lambda fs: any(f.leak for f in fs), 20)
        detected = next(f for f in findings if f.trend.growing)
        after = time.monotonic() - t0
        # keep going until the window holds 12 s, for a second, better measured slope
        more = drive(w, config, lambda fs: fs and fs[-1].trend.span_s >= 12, 20)
        with capsys.disabled():
            print("\nreal leak at %d KiB/s: confirmed after %.1f s with %.0f KiB/s (%d samples), "
                  "%.0f KiB/s over %.0f s" % (LEAKER_RATE_KIB_S, after, detected.trend.slope / KIB, detected.trend.n,
                                             more[-1].trend.slope / KIB, more[-1].trend.span_s))
        assert detected.pid == child.pid and detected.name == "leaky"
        assert detected.trend.slope == pytest.approx(LEAKER_RATE_KIB_S * KIB, rel=0.10)
        assert more[-1].trend.slope == pytest.approx(LEAKER_RATE_KIB_S * KIB, rel=0.10)
        assert after < 10
        (_, message, fields), = tell.kinds("leak")
        assert fields["action"] == "notify" and fields["pid"] == child.pid
        assert fields["slope_kib_min"] == pytest.approx(LEAKER_RATE_KIB_S * 60, rel=0.10)
        assert fields["pss_bytes"] and fields["anon_bytes"]
        assert fields["anon_slope_kib_min"] == pytest.approx(LEAKER_RATE_KIB_S * 60, rel=0.15)
        # the growth was seen, so smaps was read; at the event the diff names the anonymous memory
        grew = {g["mapping"] for g in fields["grew"]}
        assert grew and any(m == "[heap]" or m.startswith("anon") or "anonymous" in m for m in grew), grew
    finally:
        child.kill()
        child.wait()


def test_on_leak_restart_runs_and_the_new_pid_continues_the_series(tmp_path, capsys):
    token = "guardian-leaktest-%s" % uuid.uuid4().hex[:8]
    argv = leaker_argv(token)
    child = start_ready(argv)
    pidfile = str(tmp_path / "leaker.pid")
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    with open(pidfile + ".argv", "w") as f:
        json.dump(argv, f)
    new_pid = None
    try:
        start_rss = read_rollup(child.pid).rss
        command = [sys.executable, LEAK_RESTART, pidfile, "500"]
        config = watch_config(token, max_rss_mib=start_rss / MIB + 40, on_leak="restart", command=command,
                              cooldown_s=600)
        tell = Tell()
        w = LeakWatcher(config, state_dir=None, tell=tell)
        t0 = time.monotonic()
        drive(w, config, lambda fs: bool(tell.kinds("leak_result")), 40)
        took = time.monotonic() - t0
        with open(pidfile) as f:
            new_pid = int(f.read())
        child.wait(5)  # the restart killed it; reap the zombie
        (_, _, leak), = tell.kinds("leak")
        assert leak["action"] == "restart" and leak["command"] == command and leak["pid"] == child.pid
        assert leak["slope_kib_min"] == pytest.approx(LEAKER_RATE_KIB_S * 60, rel=0.10)
        (_, _, act), = tell.kinds("leak_action")
        assert act["ok"], act
        (_, message, res), = tell.kinds("leak_result")
        assert res["came_back"] and res["pid"] == new_pid != child.pid, message
        assert res["adj_applied"] and res["oom_score_adj"] == 500, message
        assert res["freed_bytes"] > 0, message
        (_, _, restart), = tell.kinds("leak_restart")
        assert restart["old_pid"] == child.pid and restart["pid"] == new_pid and restart["planned"]

        # the new PID continues the same series: both processes' samples, the restart marked
        s = w.series["leaky"]
        assert s.pid == new_pid and set(s.seg) == {0, 1}
        assert s.restarts[-1][1:] == (child.pid, new_pid, True)
        # ... and the estimate stays right across the restart (pairs never straddle it)
        findings = drive(w, config, lambda fs: fs and s.seg.count(1) >= 12, 20)
        tr = findings[-1].trend
        with capsys.disabled():
            print("\nrestart: leak event, command and result within %.1f s; after the restart the series has "
                  "%d samples in %d segments, slope %.0f KiB/s" % (took, tr.n, tr.segments, tr.slope / KIB))
        assert tr.segments == 2 and tr.slope == pytest.approx(LEAKER_RATE_KIB_S * KIB, rel=0.10)
        assert len(tell.kinds("leak")) == 1  # cooldown: no second restart
    finally:
        end_restarted_leaker(child, pidfile)
