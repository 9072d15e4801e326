"""The whole daemon (`guardian run`, a real process) against real processes.

In cgroup scope, against real growing processes in a real memory cgroup: each test asserts
the cgroup's own OOM killer never fired, the protected process lives, and the grower was ended
the way the ladder says. With a leaking critical daemon: the leak is noticed, the daemon
restarted through its restart command, never killed, and followed under its new PID.
"""
import json
import os
import signal
import sys
import time
import uuid

import pytest

from tests.support.processes import FORKER, HOG, LEAK_RESTART, end_restarted_leaker, leaker_argv, start_ready

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024 * 1024


BOARD = """
[board]
name = "test-board"

[[critical]]
name = "keeper"
match = { cmdline = "guardian-test-keeper" }
oom_score_adj = 0
"""


@pytest.fixture
def board(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(BOARD)
    os.chmod(str(path), 0o644)
    return str(path)


def protected_child(cg):
    """A daemon-like process holding 60 MiB, named [[critical]] in the board config. It holds
    more than the grower at first, so only the critical rule keeps it off the victim list."""
    child = cg.spawn([sys.executable, "-c",
                      "import time; x = b'\\x02' * (60 << 20); print('ready', flush=True); time.sleep(600)",
                      "guardian-test-keeper"])
    assert child.stdout.readline().strip() == b"ready"
    return child


def wait_exit(child, timeout):
    try:
        return child.wait(timeout)
    except Exception:
        raise AssertionError("pid %d still running after %s s" % (child.pid, timeout)) from None


@pytest.mark.parametrize("rate", [50, 200])
def test_grower_is_ended_before_the_cgroup_oom_killer(memcg, guardian_factory, board, rate):
    memcg.set_limit(LIMIT)
    keeper = protected_child(memcg)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", board)
    before = memcg.oom_kills()
    hog = memcg.hog(rate, 1024)  # would need 1 GiB: far past the 256 MiB limit
    code = wait_exit(hog, 60)
    assert code in (-signal.SIGTERM, -signal.SIGKILL), code
    assert memcg.oom_kills() == before, "the cgroup OOM killer fired first:\n" + g.log()
    assert keeper.poll() is None, "the protected process died"
    acted = [e for e in g.events() if e["event"] in ("terminate", "kill")]
    assert acted and all(e["pid"] == hog.pid for e in acted), acted
    assert "why" in acted[0] and acted[0]["rss_bytes"] > 100 * 1024 * 1024


def test_sigterm_first_a_clean_exit_is_never_killed(memcg, guardian_factory, board):
    memcg.set_limit(LIMIT)
    keeper = protected_child(memcg)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", board)
    before = memcg.oom_kills()
    hog = memcg.hog(20, 1024, "--trap-term")
    code = wait_exit(hog, 60)
    assert code == 0, "expected the hog's own clean exit, got %s" % code
    assert hog.stdout.read().strip().endswith(b"clean exit")
    assert memcg.oom_kills() == before
    assert keeper.poll() is None
    kinds = [e["event"] for e in g.events()]
    assert "terminate" in kinds and "kill" not in kinds, kinds
    term = next(e for e in g.events() if e["event"] == "terminate")
    assert 0 < term["available_bytes"] < LIMIT  # the reading that called for it


def test_a_grower_that_ignores_sigterm_is_killed(memcg, guardian_factory, board):
    memcg.set_limit(LIMIT)
    keeper = protected_child(memcg)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", board)
    before = memcg.oom_kills()
    hog = memcg.spawn([sys.executable, "-c",
                       "import signal, runpy, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                       "sys.argv = ['hog', '20', '1024']; runpy.run_path(%r, run_name='__main__')" % HOG])
    assert hog.stdout.readline().strip() == b"ready"
    code = wait_exit(hog, 60)
    assert code == -signal.SIGKILL
    assert memcg.oom_kills() == before
    assert keeper.poll() is None
    kill = g.wait_for(lambda e: e["event"] == "kill", 5)
    result = g.wait_for(lambda e: e["event"] == "kill_result", 5)
    assert kill["pid"] == result["pid"] == hog.pid and result["exited"] is True
    assert result["freed_bytes"] > 100 * 1024 * 1024
    events = [e["event"] for e in g.events()]
    assert events.index("kill") < events.index("kill_result")  # the reason is written before the act


def _forked_workers(memcg, *args, same_tick=True):
    """programs/forker.py in memcg: its workers' (pid, starttime), forked in one go. With
    same_tick, skips (saying why) when no two were forked in the same clock tick."""
    forker = memcg.spawn([sys.executable, FORKER] + [str(a) for a in args])
    words = forker.stdout.readline().split()
    assert words[0] == b"ready", words
    workers = [(int(pid), int(st)) for pid, st in zip(words[1::2], words[2::2])]
    if same_tick and len({st for _, st in workers}) == len(workers):
        pytest.skip("the workers were forked in different clock ticks (%s): no sibling shares a starttime"
                    % workers)
    return forker, workers


def _acts(g, count, timeout):
    g.wait_for(lambda e: len([x for x in g.events() if x["event"] in ("terminate", "kill")]) >= count, timeout)
    return [e for e in g.events() if e["event"] in ("terminate", "kill")]


def test_siblings_forked_in_the_same_tick_are_no_respawns_of_each_other(memcg, guardian_factory, board):
    """A pre-forking server's workers share their parent, name and starttime (clock ticks): once
    one is ended, the others are not its respawns (seen in a VM: the second worker was SIGTERMed
    "no time for a grace" as a respawn of the first, 10 s after both had started)."""
    memcg.set_limit(LIMIT)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", board)
    before = memcg.oom_kills()
    forker, workers = _forked_workers(memcg, 3, 40, 200)
    acts = _acts(g, 2, 60)
    assert memcg.oom_kills() == before, g.log()
    assert {e["pid"] for e in acts} <= {pid for pid, _ in workers}, acts
    assert not [e["why"] for e in acts if "respawn" in e["why"]], acts


def test_a_worker_forked_after_the_end_is_its_respawn_and_its_sibling_is_not(memcg, guardian_factory, board):
    memcg.set_limit(LIMIT)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", board)
    before = memcg.oom_kills()
    forker, workers = _forked_workers(memcg, 2, 40, 200, "--respawn")
    first = _acts(g, 1, 60)[0]
    assert first["pid"] in {pid for pid, _ in workers} and "respawn" not in first["why"], first
    line = forker.stdout.readline().split()
    assert line[0] == b"respawned", line
    respawned = int(line[1])
    second = _acts(g, 2, 60)[1]
    assert memcg.oom_kills() == before, g.log()
    # Born after the end and grown from nothing since: the same runaway, ended before the sibling.
    assert second["pid"] == respawned, (second, workers)
    assert "respawn of" in second["why"] and "[%d]" % first["pid"] in second["why"], second


LOW_PRIORITY_BOARD = """
[board]
name = "test-board"

[[low_priority]]
name = "lowprio"
match = { cmdline = "guardian-test-lowprio" }
"""


def test_without_a_culprit_the_low_priority_service_goes_first_though_the_workers_grow_in_bursts(
        memcg, guardian_factory, tmp_path):
    """Three workers growing alike (no culprit), 15 MiB each at the same moments every 5 s: the
    glances see MemAvailable fall 45 MiB at once, a rate at which the idle 40 MiB service would
    last under a second. The workers' own pace (9 MiB/s together) says it lasts over 4 s: it goes
    first, as the board asks (it was a worker, seen in a 512 MiB VM)."""
    path = tmp_path / "board.toml"
    path.write_text(LOW_PRIORITY_BOARD)
    memcg.set_limit(LIMIT)
    lowprio = memcg.spawn([sys.executable, "-c",
                           "import time; x = b'\\x03' * (40 << 20); print('ready', flush=True); time.sleep(600)",
                           "guardian-test-lowprio"])
    assert lowprio.stdout.readline().strip() == b"ready"
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", str(path))
    before = memcg.oom_kills()
    forker, workers = _forked_workers(memcg, 3, 3, 200, "--step", 15, same_tick=False)
    first = _acts(g, 1, 60)[0]
    assert memcg.oom_kills() == before, g.log()
    assert first["pid"] == lowprio.pid and "low priority 'lowprio'" in first["why"], first


def test_dry_run_acts_on_nothing(memcg, guardian_factory, board):
    memcg.set_limit(LIMIT)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--dry-run")
    hog = memcg.hog(100, 215, "--hold")  # stops short of the limit, past the terminate line
    # where it stops relative to the moving lines varies: either rung's "would" is the point
    g.wait_for(lambda e: e["event"] in ("kill", "terminate") and e.get("dry_run"), 30)
    time.sleep(0.5)
    assert hog.poll() is None, "dry run ended a process"


def test_guardian_run_restarts_a_leaking_critical_daemon(tmp_path, guardian_factory):
    token = "guardian-daemonleak-%s" % uuid.uuid4().hex[:8]
    argv = leaker_argv(token, max_mib=300)
    child = start_ready(argv)
    pidfile = str(tmp_path / "leaker.pid")
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    with open(pidfile + ".argv", "w") as f:
        json.dump(argv, f)
    board = tmp_path / "board.toml"
    board.write_text("""
[board]
name = "leak-test"

[leaks]
state_dir = ""

[[critical]]
name = "leaky"
match = {cmdline = "%s"}
oom_score_adj = 500

[critical.leak]
interval_s = 0.5
window_s = 20
horizon_s = 60
max_rss_mib = 60
on_leak = "restart"
command = %s
cooldown_s = 600
""" % (token, json.dumps([sys.executable, LEAK_RESTART, pidfile, "500"])))
    os.chmod(str(board), 0o644)
    new_pid = None
    try:
        g = guardian_factory("--config", str(board))
        leak = g.wait_for(lambda e: e["event"] == "leak", 60)
        assert leak["pid"] == child.pid and leak["action"] == "restart"
        result = g.wait_for(lambda e: e["event"] == "leak_result", 30)
        with open(pidfile) as f:
            new_pid = int(f.read())
        assert result["came_back"] and result["pid"] == new_pid != child.pid, result
        child.wait(5)
        assert child.returncode == -9  # killed by its own restart command, not by the guardian
        assert not [e for e in g.events() if e["event"] in ("kill", "terminate")]
        g.wait_for(lambda e: e["event"] == "leak_restart" and e["pid"] == new_pid, 30)
    finally:
        end_restarted_leaker(child, pidfile)
