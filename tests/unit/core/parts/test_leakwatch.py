"""The leak watcher (guardian/core/parts/leakwatch.py) against made-up process tables and a fake clock:
schedule, identity across restarts, on_leak and its cooldown, results, persistence."""
import json
import os
import sys

import pytest

from guardian.core.parts import leakwatch as leaks
from guardian.config import MIB, Actions, Config, Critical, LeakWatch, Leaks, Match
from guardian.kernel.procs import ProcInfo
from guardian.core.parts.leakwatch import LeakWatcher
from guardian.core.match import Role
from tests.support.fakes import Clock, Tell

KIB = 1024


def proc(pid, rss, starttime=None, adj=0, comm="svc"):
    return ProcInfo(pid=pid, ppid=1, pgid=pid, comm=comm, cmdline=(comm,), uid=0, rss=int(rss), rss_anon=int(rss),
                    oom_score=10, oom_score_adj=adj, kthread=False, cgroup="", starttime=starttime or pid * 10)


def config(on_leak="notify", command=(), max_rss_mib=64.0, interval=10.0, window=1800.0, cooldown=3600.0,
           state_dir="", dry_run=False, **leaks_kw):
    crit = Critical("svc", Match(comm="svc"), oom_score_adj=-900,
                    leak=LeakWatch(interval_s=interval, window_s=window, horizon_s=1800.0, max_rss_mib=max_rss_mib,
                                   on_leak=on_leak, command=tuple(command), cooldown_s=cooldown))
    return Config(critical=(crit,), leaks=Leaks(state_dir=state_dir, **leaks_kw), actions=Actions(dry_run=dry_run))


def make(tmp_path, cfg, state=True, clock=None):
    tell = Tell()
    w = LeakWatcher(cfg, proc_root=str(tmp_path / "proc"), state_dir=str(tmp_path / "state") if state else None,
                    tell=tell, clock=clock)
    return w, tell


def feed(w, clock, procs_fn, seconds, step=10.0, headroom=None):
    """Drive the watcher like the daemon does: sample whenever due."""
    findings = []
    end = clock.t + seconds
    while clock.t < end:
        if w.due(clock.t):
            ps = procs_fn(clock.t)
            roles = {p.pid: Role("critical", w.config.critical[0]) for p in ps}
            findings.extend(w.sample(clock.t, ps, roles, headroom))
        clock.t += min(step, max(0.5, w.next_due(clock.t)))
    return findings


def test_schedule_due_and_next_due(tmp_path):
    w, tell = make(tmp_path, config(interval=10.0))
    assert w.due(0.0) and w.next_due(0.0) == 0.0
    w.sample(0.0, [proc(5, 10 * MIB)], {5: Role("critical", w.config.critical[0])}, None)
    assert not w.due(5.0)
    assert w.next_due(5.0) == pytest.approx(5.0)
    assert w.due(10.0)
    empty = LeakWatcher(Config(), proc_root=str(tmp_path), state_dir=None, tell=Tell())
    assert not empty.due(1e9) and empty.next_due(0.0) == float("inf")


def test_absent_process_breaks_nothing_and_is_tried_again(tmp_path):
    w, tell = make(tmp_path, config())
    assert w.sample(0.0, [], {}, None) == []
    assert w.next_due(0.0) == pytest.approx(10.0)
    out = w.sample(10.0, [proc(5, 10 * MIB)], {5: Role("critical", w.config.critical[0])}, None)
    assert [f.pid for f in out] == [5]


def test_steady_leak_fires_notify_once_per_cooldown_with_evidence(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(max_rss_mib=64))
    w.clock = clock
    findings = feed(w, clock, lambda t: [proc(5, 20 * MIB + 16 * KIB * t)], 3 * 3600)
    leaks_ = tell.kinds("leak")
    # first fire when the ceiling is within the 30 min horizon, again only after the cooldown
    fired_at = [f.time for f in findings if f.action == "notify"]
    assert len(leaks_) == len(fired_at) >= 2
    assert all(b - a >= 3600 for a, b in zip(fired_at, fired_at[1:]))
    kind, message, fields = leaks_[0]
    assert fields["action"] == "notify" and fields["name"] == "svc" and fields["pid"] == 5
    assert fields["slope_kib_min"] == pytest.approx(16 * 60, rel=0.02)
    assert fields["eta_ceiling_s"] <= 1800 and fields["ceiling_bytes"] == 64 * MIB
    assert fields["confidence"] > 0.99 and fields["samples"] >= 8
    assert "svc[5] grows at +960.0 KiB/min" in message
    assert any(f.action == "cooldown" for f in findings)
    fired = [f for f in findings if f.action == "notify"]
    assert fired and fired[0].leak


def test_restart_continues_the_series_under_the_same_identity(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(max_rss_mib=None))

    def procs(t):
        if t < 1800:
            return [proc(5, 20 * MIB + 8 * KIB * t)]
        return [proc(77, 12 * MIB + 8 * KIB * (t - 1800), starttime=9999)]

    feed(w, clock, procs, 3600)
    s = w.series["svc"]
    assert s.pid == 77 and s.segment == 1
    assert set(s.seg) == {0, 1}
    assert s.restarts[-1][1:] == (5, 77, False)
    assert s.trend.growing and s.trend.slope == pytest.approx(8 * KIB, rel=0.01)
    assert tell.kinds("leak_restart")[0][2]["old_pid"] == 5


def test_restart_action_runs_and_its_result_is_logged(tmp_path):
    clock = Clock(0.0)
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')", str(marker)]
    w, tell = make(tmp_path, config(on_leak="restart", command=cmd, max_rss_mib=40))
    w.clock = clock
    state = {"pid": 5, "base": 0.0}

    def procs(t):
        if marker.exists() and state["pid"] == 5:
            state.update(pid=6, base=t)
        if state["pid"] == 5:
            return [proc(5, 20 * MIB + 16 * KIB * t)]
        return [proc(6, 12 * MIB, starttime=60, adj=-900)]

    import time as _time
    end = clock.t + 3600
    while clock.t < end and not tell.kinds("leak_result"):
        if w.due(clock.t):
            ps = procs(clock.t)
            w.sample(clock.t, ps, {p.pid: Role("critical", w.config.critical[0]) for p in ps}, 100 * MIB)
        if w.pending_actions():
            _time.sleep(0.02)  # the command runs in a real thread
        clock.t += 1.0
    (_, _, leak), = tell.kinds("leak")
    assert leak["action"] == "restart" and leak["command"] == cmd
    (_, _, act), = tell.kinds("leak_action")
    assert act["ok"] and act["returncode"] == 0
    (_, message, res), = tell.kinds("leak_result")
    assert res["came_back"] and res["pid"] == 6 and res["old_pid"] == 5
    assert res["adj_applied"] and res["oom_score_adj"] == -900
    assert res["freed_bytes"] > 0 and res["ok"]
    assert "came back as pid 6 (was 5)" in message
    assert w.series["svc"].restarts[-1][3] is True  # the restart is marked as ours


def test_restart_result_says_when_the_daemon_did_not_come_back(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(on_leak="restart", command=[sys.executable, "-c", "raise SystemExit(3)"],
                                    max_rss_mib=40))
    w.clock = clock
    import time as _time
    end = clock.t + 3600
    while clock.t < end and not tell.kinds("leak_result"):
        gone = bool(tell.kinds("leak"))
        ps = [] if gone else [proc(5, 20 * MIB + 16 * KIB * clock.t)]
        if w.due(clock.t) or w.pending_actions():
            w.sample(clock.t, ps, {p.pid: Role("critical", w.config.critical[0]) for p in ps}, None)
        if w.pending_actions():
            _time.sleep(0.02)
        clock.t += 1.0
    (_, _, act), = tell.kinds("leak_action")
    assert not act["ok"] and act["returncode"] == 3 and "status 3" in act["error"]
    (_, message, res), = tell.kinds("leak_result")
    assert not res["came_back"] and not res["ok"] and "NOT running" in message


def test_dry_run_and_missing_command(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(on_leak="restart", command=["/nonexistent-guardian-test"], max_rss_mib=40,
                                    dry_run=True))
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB + 16 * KIB * t)], 1800)
    (_, message, fields), = tell.kinds("leak")
    assert fields["action"] == "dry_run" and "would run" in message
    assert not tell.kinds("leak_action")
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(on_leak="command", command=(), max_rss_mib=40), state=False)
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB + 16 * KIB * t)], 1800)
    (_, message, fields), = tell.kinds("leak")
    assert fields["action"] == "notify" and "no command" in message


def test_sawtooth_daemon_is_never_acted_on(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config(on_leak="restart", command=["/bin/false"], max_rss_mib=40))
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB + 8 * MIB * ((t % 300) / 300))], 4 * 3600, headroom=40 * MIB)
    assert not tell.kinds("leak") and not w.series["svc"].trend.growing


def test_update_config_keeps_series_and_drops_removed_entries(tmp_path):
    clock = Clock(0.0)
    w, tell = make(tmp_path, config())
    feed(w, clock, lambda t: [proc(5, 20 * MIB)], 300)
    n = len(w.series["svc"].t)
    w.update_config(config(interval=5.0))
    assert len(w.series["svc"].t) == n
    w.update_config(Config())
    assert w.series == {} and not w.due(1e12)


def test_size_watch_notifies_for_big_unlisted_processes(tmp_path):
    clock = Clock(0.0)
    cfg = Config(leaks=Leaks(state_dir="", watch_above_mib=100, watch_interval_s=10.0))
    w, tell = make(tmp_path, cfg, state=False)
    w.clock = clock

    def procs(t):
        return [proc(9, 150 * MIB + 64 * KIB * t, comm="bigapp"), proc(10, 5 * MIB, comm="small")]

    end = 3600
    while clock.t < end:
        if w.due(clock.t):
            w.sample(clock.t, procs(clock.t), {}, 200 * MIB - 64 * KIB * clock.t)
        clock.t += 10
    assert list(w.series) == ["pid:9:90"]
    (_, message, fields), = tell.kinds("leak")
    assert fields["watched_as"] == "size" and fields["action"] == "notify" and fields["name"] == "bigapp[9]"
    w.sample(clock.t + 100, [proc(10, 5 * MIB, comm="small")], {}, None)
    assert w.series == {}


def boot_id(tmp_path, value="0b5e2c7a-boot"):
    d = tmp_path / "proc" / "sys" / "kernel" / "random"
    d.mkdir(parents=True, exist_ok=True)
    (d / "boot_id").write_text(value + "\n")


def test_state_round_trip_and_rate_limit(tmp_path):
    boot_id(tmp_path)
    clock = Clock(5000.0)
    cfg = config(max_rss_mib=40, state_dir=str(tmp_path / "state"))
    w, tell = make(tmp_path, cfg)
    w.clock = clock

    def procs(t):
        if t < 6000:
            return [proc(5, 20 * MIB + 4 * KIB * (t - 5000))]
        return [proc(6, 18 * MIB + 4 * KIB * (t - 6000), starttime=66)]

    feed(w, clock, procs, 1500)
    assert w.writes >= 1
    path = tmp_path / "state" / "leaks.json"
    assert path.exists() and sorted(os.listdir(str(tmp_path / "state"))) == ["leaks.json"]  # no temp file left
    # at most one write per save interval (60 s) while sampling every 10 s
    assert 2 <= w.writes <= 1500 / 60 + 2
    assert w.save(clock.t, force=True)
    assert not w.save(clock.t + 600, force=True)  # nothing new
    w.series["svc"].add(clock.t, 6, 66, 30 * MIB, 30 * MIB, -1)
    w._dirty = True
    assert not w.save(clock.t + 1)  # too soon
    assert w.save(clock.t + 1, force=True)
    old = w.series["svc"]
    clock.t += 1
    w2, tell2 = make(tmp_path, cfg, clock=clock)
    new = w2.series["svc"]
    assert w2.loaded and "loaded 1 series" in tell2.kinds("leak_state")[0][1]
    assert list(new.rss) == list(old.rss) and list(new.anon) == list(old.anon)
    assert list(new.seg) == list(old.seg) and new.segment == old.segment
    # same boot: the ages are measured on the monotonic clock, to a tenth of a second
    assert max(abs(a - b) for a, b in zip(new.t, old.t)) <= 0.051
    assert (new.pid, new.starttime) == (6, 66)
    assert new.restarts[-1][1:] == (5, 6, False)


def test_state_from_another_boot_starts_a_new_segment_or_is_dropped(tmp_path):
    boot_id(tmp_path)
    clock = Clock(100.0)
    cfg = config(state_dir=str(tmp_path / "state"))
    w, _ = make(tmp_path, cfg)
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB)], 300)
    w.save(clock.t, force=True)
    path = tmp_path / "state" / "leaks.json"
    doc = json.loads(path.read_text())
    doc["boot_id"] = "another-boot"
    path.write_text(json.dumps(doc))
    w2, tell2 = make(tmp_path, cfg)
    s = w2.series["svc"]
    assert s.pid is None and len(s.t) > 0  # continues, but the next process is a new segment
    s.add(1e6, 5, 50, 20 * MIB, 20 * MIB, -1)
    assert s.seg[-1] == s.seg[0] + 1
    doc["wall"] = doc["wall"] - 400 * 86400.0  # no usable clock across the reboot
    path.write_text(json.dumps(doc))
    w3, tell3 = make(tmp_path, cfg)
    assert w3.series == {} and "history dropped" in tell3.kinds("leak_state")[0][1]


@pytest.mark.parametrize("content", [
    b"", b"{", b"\x00\x00\x00garbage", b'{"format": 1, "series": [{"key": "svc"}]}',
    b'{"format": 99}', b"[]", b'{"format": 1, "boot_id": "", "mono": 0, "wall": 0, "series": 5}',
])
def test_torn_or_garbled_state_is_ignored_with_a_message(tmp_path, content):
    d = tmp_path / "state"
    d.mkdir()
    (d / "leaks.json").write_bytes(content)
    w, tell = make(tmp_path, config(state_dir=str(d)))
    assert not w.loaded and w.series == {}
    (_, message, fields), = tell.kinds("leak_state")
    assert "ignored" in message and str(d / "leaks.json") in message and fields["ok"] is False


def test_a_truncated_real_state_file_is_ignored(tmp_path):
    clock = Clock(0.0)
    cfg = config(state_dir=str(tmp_path / "state"))
    w, _ = make(tmp_path, cfg)
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB + KIB * t)], 600)
    w.save(clock.t, force=True)
    path = tmp_path / "state" / "leaks.json"
    data = path.read_bytes()
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        w2, tell2 = make(tmp_path, cfg)
        assert not w2.loaded and "ignored" in tell2.kinds("leak_state")[0][1]


def test_unwritable_state_dir_is_a_message_not_a_crash(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = config(state_dir=str(blocker / "sub"))
    tell = Tell()
    w = LeakWatcher(cfg, proc_root=str(tmp_path), state_dir=str(blocker / "sub"), tell=tell)
    clock = Clock(0.0)
    w.clock = clock
    feed(w, clock, lambda t: [proc(5, 20 * MIB)], 200)
    msgs = [m for k, m, f in tell.events if k == "leak_state" and "cannot write" in m]
    assert len(msgs) == 1  # said once, not at every attempt
    assert len(w.series["svc"].t) == 20  # the trend goes on in memory


def test_state_bytes_per_day(tmp_path, capsys):
    """The figure for the README: three watched daemons with full 30 min windows at 10 s."""
    import random
    r = random.Random(1)
    figures = {}
    cases = (("exact plateaus", lambda t: 0), ("4 KiB page noise", lambda t: r.choice((-1, 0, 1)) * 4 * KIB),
             ("256 KiB noise", lambda t: int(r.gauss(0, 256 * KIB)) // 4096 * 4096),
             ("256 KiB noise, one leaking 1 KiB/s", lambda t: int(r.gauss(0, 256 * KIB)) // 4096 * 4096))
    for label, noise in cases:
        crit = tuple(Critical("svc%d" % i, Match(comm="svc%d" % i)) for i in range(3))
        cfg = Config(critical=crit, leaks=Leaks(state_dir=str(tmp_path / label.replace(" ", "_"))))
        clock = Clock(0.0)
        w = LeakWatcher(cfg, proc_root=str(tmp_path), state_dir=cfg.leaks.state_dir, tell=Tell(), clock=clock)
        ps = [proc(10 + i, 0, comm="svc%d" % i) for i in range(3)]
        roles = {p.pid: Role("critical", c) for p, c in zip(ps, crit)}
        hours = 6
        while clock.t < hours * 3600:
            if w.due(clock.t):
                cur = []
                for i, p in enumerate(ps):
                    n = noise(clock.t)  # anonymous memory is what moves; file-backed pages stay
                    if "leaking" in label and i == 0:
                        n += int(KIB * clock.t) // 4096 * 4096
                    cur.append(p.__class__(**dict(p.__dict__, rss=20 * MIB + n, rss_anon=16 * MIB + n)))
                w.sample(clock.t, cur, roles, None)
            clock.t += 1.0
        size = os.path.getsize(os.path.join(cfg.leaks.state_dir, "leaks.json"))
        writes_per_day = w.writes / (hours * 3600) * 86400
        figures[label] = (size, writes_per_day, w.bytes_written / (hours * 3600) * 86400)
    with capsys.disabled():
        print()
        for label, (size, writes, per_day) in figures.items():
            print("state file, 3 daemons, %s: %d bytes, %.0f writes/day, %.2f MB/day of file content, "
                  "~%.0f MiB/day at the block layer (20 KiB per save on ext4)" % (
                      label, size, writes, per_day / 1e6, writes * 20 / 1024))
    for label, (size, writes, _per_day) in figures.items():
        assert size < 8192
        assert writes <= 1441
        if "leaking" not in label:
            assert writes <= 145  # nothing grows: once per 10 min
    assert figures["256 KiB noise, one leaking 1 KiB/s"][1] > 1000  # something grows: once a minute


def test_a_surprise_inside_sample_is_logged_not_raised(tmp_path, monkeypatch, guardian_log):
    w, tell = make(tmp_path, config())

    def boom(*a, **k):
        raise RuntimeError("surprise")

    monkeypatch.setattr(leaks, "read_rollup", boom)
    assert w.sample(0.0, [proc(5, 10 * MIB)], {5: Role("critical", w.config.critical[0])}, None) == []
    assert "surprise" in guardian_log.text
    assert not w.due(1.0) and w.due(10.0)  # tried again later, not on every tick


FLAT_THEN_LEAK = r"""
import pathlib, sys, tempfile
from tests.unit.core.parts.test_leakwatch import KIB, MIB, Clock, config, feed, make, proc
clock = Clock(0.0)
w, tell = make(pathlib.Path(tempfile.mkdtemp()), config(max_rss_mib=64))
w.clock = clock
# two hours flat, a page up and down from sample to sample
feed(w, clock, lambda t: [proc(5, 20 * MIB + (4096 if int(t / 10) % 2 else 0))], 2 * 3600)
flat = "guardian.core.parts.leakact" in sys.modules
feed(w, clock, lambda t: [proc(5, 20 * MIB + 16 * KIB * (t - 7200))], 3600)
print(flat, "guardian.core.parts.leakact" in sys.modules, len(tell.kinds("leak")))
"""


def test_the_act_module_is_loaded_only_once_a_process_rises():
    """guardian/core/parts/leakact.py (smaps evidence, the leak event, on_leak and its outcome)
    stays out of a daemon whose watched processes are flat, and is there when one leaks."""
    import subprocess

    from tests.support import REPO

    out = subprocess.run([sys.executable, "-c", FLAT_THEN_LEAK], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    flat, leaking, leaks_ = out.stdout.split()[-3:]
    assert (flat, leaking) == ("False", "True") and int(leaks_) >= 1, out.stdout[-3000:]
