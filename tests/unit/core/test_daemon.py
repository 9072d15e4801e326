"""The loop against a fake /proc: it decides, survives garbled and vanishing files, and keeps
what it knew. (Behaviour with real processes is in
tests/integration/core/test_daemon.py.)"""
import json
import os
import shutil
import time

import pytest

from guardian import logger
from guardian.config import Config, Wait
from guardian.core import daemon as daemon_module
from guardian.core.daemon import Daemon
from guardian.core.telemetry import Telemetry
from tests.support import fakeproc


def make_daemon(basic_tree, tmp_path, **kw):
    events = str(tmp_path / "events.jsonl")
    d = Daemon(kw.pop("config", Config()), proc_root=basic_tree, sys_root=str(tmp_path / "sys"),
               dry_run=kw.pop("dry_run", True),
               telemetry=Telemetry(state_file=str(tmp_path / "state.json"), events_file=events),
               protect_self=False, **kw)
    d.setup(signals=False)
    return d, events


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_idle_then_shortage_picks_the_culprit_in_dry_run(basic_tree, tmp_path):
    d, events = make_daemon(basic_tree, tmp_path)
    try:
        assert d.tick(0.0) > 0.1
        assert d.last_plan.action == "none"
        # the hog grows by 600 MiB, memory runs short
        fakeproc.process(basic_tree, 100, "hog", 700, oom_score=800)
        fakeproc.meminfo(basic_tree, avail_mib=30)
        d.tick(1.0)
        assert d.last_plan.action == "kill" and d.last_plan.victim.pid == 100
        kill = [e for e in read_events(events) if e["event"] == "kill"]
        assert kill and kill[0]["dry_run"] and "culprit" in kill[0]["why"] and "webui" in kill[0]["runner_up"]
        with open(str(tmp_path / "state.json")) as f:
            state = json.load(f)
        assert state["rung"] == "kill" and state["wait_mode"] in ("psi-trigger", "psi-trigger-2s", "poll")
    finally:
        d.close()


@pytest.mark.parametrize("garble", [
    "MemTotal: lots kB\n",
    "",
    "MemTotal:       1048576 kB\nMemFr",
    "\x00\x01\x02 garbage\n",
])
def test_garbled_meminfo_keeps_the_last_reading(basic_tree, tmp_path, garble):
    d, _ = make_daemon(basic_tree, tmp_path)
    try:
        d.tick(0.0)
        good = d.sensor.last_meminfo
        fakeproc.write(os.path.join(basic_tree, "meminfo"), garble)
        d.tick(1.0)
        assert d.sensor.last_meminfo == good
        assert d.last_plan.action == "none"
    finally:
        d.close()


def test_missing_files_degrade_without_a_crash(basic_tree, tmp_path):
    os.remove(os.path.join(basic_tree, "pressure", "memory"))
    os.remove(os.path.join(basic_tree, "buddyinfo"))
    d, _ = make_daemon(basic_tree, tmp_path)
    try:
        assert d.waiter.mode == "poll"
        fakeproc.meminfo(basic_tree, avail_mib=30)
        d.tick(0.0)
        assert d.last_plan.action in ("kill", "terminate")
        os.remove(os.path.join(basic_tree, "meminfo"))
        d.tick(1.0)  # no meminfo at all: the last reading stands, nothing raised
    finally:
        d.close()


def test_a_victim_vanishing_mid_read_is_normal(basic_tree, tmp_path):
    d, _ = make_daemon(basic_tree, tmp_path, dry_run=False)
    try:
        fakeproc.meminfo(basic_tree, avail_mib=30)
        # the hog's stat is there but the rest of its directory is gone
        for name in ("status", "cmdline", "oom_score", "oom_score_adj", "cgroup"):
            os.remove(os.path.join(basic_tree, "100", name))
        shutil.rmtree(os.path.join(basic_tree, "200"))
        d.tick(0.0)
        # nothing left that may be ended (init, a kernel thread): said, not crashed
        assert d.last_plan.action == "none" and "no process" in d.last_plan.reason
    finally:
        d.close()


def until_reloaded(d, timeout=20.0):
    """The reload runs in a child: the loop's waits deliver its answer."""
    deadline = time.monotonic() + timeout
    while d.reloader.busy and time.monotonic() < deadline:
        d.waiter.wait_for(0.1)
        for part in d.parts:
            part.on_wake(time.monotonic())
    assert not d.reloader.busy


def test_reload_refused_keeps_the_old_config(basic_tree, tmp_path):
    def bad():
        raise ValueError("board.toml: thresholds.kil: unknown key (did you mean 'kill'?)")

    d, events = make_daemon(basic_tree, tmp_path, reload=bad)
    try:
        old = d.config
        d.tick(0.0)
        d.growth.add(0.5, ())
        d.reload()
        until_reloaded(d)
        assert d.config is old
        refused = [e for e in read_events(events) if e["event"] == "reload"]
        assert refused and refused[0]["ok"] is False and "kil" in refused[0]["message"]
        assert refused[0]["message"].startswith("config refused, keeping the old one: ")
        assert d.growth.last_time() == 0.5  # what it knew is kept
    finally:
        d.close()


def test_reload_takes_the_config_the_child_loaded(basic_tree, tmp_path):
    from guardian.config import Victims

    d, events = make_daemon(basic_tree, tmp_path, reload=lambda: Config(board="b", victims=Victims(growth_window_s=7)))
    try:
        d.tick(0.0)
        d.reload()
        d.reload()  # while one runs: queued, one more follows
        assert d.reloader.queued
        until_reloaded(d)
        until_reloaded(d)
        assert d.config.board == "b" and d.growth.window_s == 7
        done = [e for e in read_events(events) if e["event"] == "reload"]
        assert [e["ok"] for e in done] == [True, True] and done[0]["board"] == "b"
    finally:
        d.close()
    assert not d.reloader.exiting and d.reloader.pid is None


def test_once_a_stopped_victim_is_gone_the_lines_return_to_the_boards_own(basic_tree, tmp_path):
    """The burst a stopped runaway made raised every line by its fill rate; once it exits within
    its grace the raised lines would stop a bystander at idle (seen on an 80 MiB VM)."""
    from guardian.core import policy

    d, _ = make_daemon(basic_tree, tmp_path, dry_run=False)
    try:
        d.tick(0.0)
        base = d.last_plan.lines
        d.fill.add(0.5, 800 * 1024 * 1024)
        d.fill.add(1.0, 700 * 1024 * 1024)  # 200 MiB/s
        assert d.fill.peak(1.0) > 0
        d.state = policy.after_terminate(d.state, policy.Victim(
            pid=100, starttime=0, pgid=100, name="hog", rss=0, oom_score=0, growth=0, score=0, why="",
            runner_up=""), 1.0, 5.0)
        shutil.rmtree(os.path.join(basic_tree, "100"))
        d.tick(1.5)
        assert d.state.pending is None and "stopped" in d.last_plan.reason
        assert d.fill.peak(1.5) == 0.0
        d.tick(2.0)
        assert d.last_plan.lines == base
    finally:
        d.close()


def test_a_quiet_wake_only_glances_at_memavailable_until_something_calls_for_a_tick(basic_tree, tmp_path):
    d, _ = make_daemon(basic_tree, tmp_path)
    try:
        d.tick(0.0)
        assert d.last_plan.action == "none"
        reads = []
        real = d.sensor.read
        d.sensor.read = lambda *a, **k: reads.append(1) or real(*a, **k)
        timeout = d._glance(1.0)
        assert timeout is not None and 0 < timeout <= d.config.wait.max_timeout_s and not reads
        # a garbled meminfo keeps the last reading: that is no news, so a full tick decides
        fakeproc.write(os.path.join(basic_tree, "meminfo"), "MemTotal: lots kB\n")
        assert d._glance(1.5) is None
        fakeproc.meminfo(basic_tree, avail_mib=800)
        assert d._glance(2.0) is not None
        # memory near the reclaim line: a full tick decides
        fakeproc.meminfo(basic_tree, avail_mib=150)
        assert d._glance(3.0) is None
        fakeproc.meminfo(basic_tree, avail_mib=800)
        assert d._glance(4.0) is not None
        # no full tick for max_timeout_s: one is due whatever memory says
        assert d._glance(0.0 + d.config.wait.max_timeout_s) is None
        d.tick(6.0)
        assert d._glance(6.5) is not None
        # not at ease (a shortage episode, an act in progress): always a full tick
        fakeproc.meminfo(basic_tree, avail_mib=30)
        d.tick(7.0)
        fakeproc.meminfo(basic_tree, avail_mib=800)
        assert d._glance(7.5) is None
    finally:
        d.close()


@pytest.fixture(params=["c", "python"])
def rest_loop(request, monkeypatch):
    """Daemon._rest both ways: its loop in C (guardian._rest), and the same in Python."""
    if request.param == "python":
        monkeypatch.setattr(daemon_module, "rest_in_c", None)
    elif daemon_module.rest_in_c is None:
        if os.environ.get("GUARDIAN_PURE_PYTHON") == "1":
            pytest.skip("GUARDIAN_PURE_PYTHON=1: no guardian._rest")
        pytest.fail("guardian._rest not built (tests/unit/test_rest_c.py)")
    else:  # count the calls: the C loop, not the Python one, ran
        real, calls = daemon_module.rest_in_c, []
        monkeypatch.setattr(daemon_module, "rest_in_c", type("Counted", (), {
            "rest": staticmethod(lambda *a: calls.append(a) or real.rest(*a))}))
        yield calls
        assert calls, "the C loop never ran"
        return
    yield None


def _resting(basic_tree, tmp_path, max_timeout_s=2.0):
    cfg = Config(wait=Wait(use_psi=False, min_timeout_s=0.01, max_timeout_s=max_timeout_s,
                           max_timeout_poll_s=max_timeout_s))
    d, _ = make_daemon(basic_tree, tmp_path, config=cfg)
    now = time.monotonic()
    d.tick(now)
    assert d.last_plan.action == "none" and d._glance_until == now + max_timeout_s
    return d


def test_at_rest_quiet_wakes_stay_in_the_rest_loop_until_a_full_tick_is_due(basic_tree, tmp_path, rest_loop):
    d = _resting(basic_tree, tmp_path, max_timeout_s=0.3)
    try:
        looked = d._glance_last[0]
        assert d._rest(0.01) == []
        assert time.monotonic() >= d._glance_until  # it waited again after each quiet glance
        assert d._glance_last[0] > looked
        assert d._glance(time.monotonic()) is None  # and the loop's own glance then calls a full tick
    finally:
        d.close()


def test_the_rest_loop_hands_a_shortage_or_a_fall_to_the_loop_at_the_first_wake(basic_tree, tmp_path, rest_loop):
    d = _resting(basic_tree, tmp_path)
    try:
        looked = d._glance_last
        fakeproc.meminfo(basic_tree, avail_mib=150)  # near the reclaim line
        assert d._rest(0.01) == []
        assert time.monotonic() < d._glance_until and d._glance_last == looked
        assert d._glance(time.monotonic()) is None
        d.tick(time.monotonic())
        fakeproc.meminfo(basic_tree, avail_mib=800)
        d.tick(time.monotonic())
        looked = d._glance_last
        fakeproc.meminfo(basic_tree, avail_mib=780)  # at ease, but 20 MiB (2 %) gone since the last look
        assert d._rest(0.01) == []
        assert d._glance_last == looked
        assert d._glance(time.monotonic()) is None
    finally:
        d.close()


def test_the_rest_loop_returns_what_a_descriptor_woke_and_runs_its_callback(basic_tree, tmp_path, rest_loop):
    d = _resting(basic_tree, tmp_path)
    r, w = os.pipe()
    seen = []
    try:
        d.waiter.add(r, lambda: seen.append(os.read(r, 8)))
        os.write(w, b"x")
        assert d._rest(1.0) == ["fd"] and seen == [b"x"]
    finally:
        d.close()
        os.close(r)
        os.close(w)


def test_after_the_kernel_oom_killer_ended_the_runaway_the_lines_return_to_the_boards_own(basic_tree, tmp_path):
    """Seen on an 80 MiB VM: the guardian waited out the kernel's kill, then stopped the
    low-priority service on lines still raised by the dead runaway's fill rate."""
    fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 3\n")
    d, _ = make_daemon(basic_tree, tmp_path)
    try:
        d.tick(0.0)
        base = d.last_plan.lines
        d.fill.add(0.5, 800 * 1024 * 1024)
        d.fill.add(1.0, 700 * 1024 * 1024)  # 200 MiB/s
        fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 4\n")
        fakeproc.meminfo(basic_tree, avail_mib=800)
        d.tick(1.2)
        assert d.last_plan.action == "none"
        assert d.fill.peak(1.2) == 0.0
        d.tick(2.0)
        assert d.last_plan.lines == base
    finally:
        d.close()


def test_after_a_kernel_oom_kill_a_reading_still_short_is_acted_on_in_the_same_tick(basic_tree, tmp_path):
    """A load generator respawns what the kernel killed: the guardian must not stand aside."""
    fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 3\n")
    d, _ = make_daemon(basic_tree, tmp_path)
    try:
        d.tick(0.0)
        fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 4\n")
        fakeproc.meminfo(basic_tree, avail_mib=30)
        d.tick(1.2)
        assert d.last_plan.action in ("terminate", "kill"), d.last_plan.reason
        assert "kernel OOM killer ended 1" in d.last_plan.reason
    finally:
        d.close()


def test_with_swap_on_zram_the_rest_loop_glances_at_the_headroom(basic_tree, tmp_path, rest_loop):
    """zram's share of swap counts as headroom in the loop at rest too (in C; the Python loop
    leaves zram to a full glance at each wake): 64 MiB of zram, 48 free, at 3:1 is 32 MiB of
    relief; zram filling up takes it away, a fall of more than 1 % of the total: a look."""
    meminfo = os.path.join(basic_tree, "meminfo")

    def swap_free(kib):
        fakeproc.meminfo(basic_tree)
        with open(meminfo) as f:
            text = f.read().replace("SwapTotal:      0 kB", "SwapTotal: 65532 kB")
        fakeproc.write(meminfo, text.replace("SwapFree:       0 kB", "SwapFree: %d kB" % kib))

    fakeproc.write(os.path.join(basic_tree, "swaps"), "".join(fakeproc.ZRAM_SWAPS.splitlines(True)[:2]))  # no disk
    fakeproc.write(str(tmp_path / "sys" / "block" / "zram0" / "mm_stat"),
                   "33554432 11184810 11184810 0 11184810 10 0 0\n")  # 3:1
    swap_free(65532 - 16384)
    d = _resting(basic_tree, tmp_path, max_timeout_s=0.3)
    try:
        z = d.sensor.last_zram
        assert z is not None and abs(z.relief - (65532 - 16384) * 1024 * 2 // 3) <= 1
        assert d._glance_last[1] == 800 * 1024 * 1024 + z.relief  # the headroom, not MemAvailable
        looked = d._glance_last[0]
        assert d._rest(0.01) == []
        if rest_loop is not None:  # in C: quiet glances at the headroom until the full tick is due
            assert time.monotonic() >= d._glance_until and d._glance_last[0] > looked
            assert rest_loop[-1][-1] == (z.total, z.free, z.relief)
        d.tick(time.monotonic())
        looked = d._glance_last
        swap_free(0)
        assert d._rest(0.01) == [] and d._glance_last == looked and time.monotonic() < d._glance_until
    finally:
        d.close()


def test_a_part_that_holds_the_loop_up_is_said_at_info(guardian_log):
    """Blind while a part's call runs (a /proc read that blocked, a slow disk): the log says which
    call and how long, at info (`journalctl -p warning` keeps to the decisions)."""
    class Part:
        name = "slow part"

        def on_wake(self, now):
            time.sleep(now)
            return now

    guardian_log.set_level(logger.INFO)
    part = Part()
    assert Daemon.guarded(part, part.on_wake, 0.0) == 0.0
    assert not guardian_log.records
    slow = daemon_module.SLOW_PART_S + 0.05
    assert Daemon.guarded(part, part.on_wake, slow) == slow
    said = [r for r in guardian_log.records if "slow part: on_wake took" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logger.INFO and "the loop waiting" in said[0].getMessage()
