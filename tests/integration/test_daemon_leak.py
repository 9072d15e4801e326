"""The whole daemon and a leaking critical daemon: `guardian run` notices the leak, restarts it
through its restart command, never kills it, and follows the new PID."""
import json
import os
import sys
import uuid

import pytest

from tests.integration.test_leaks import RESTART, leaker_argv, start

pytestmark = pytest.mark.integration


def test_guardian_run_restarts_a_leaking_critical_daemon(tmp_path, guardian_factory):
    token = "guardian-daemonleak-%s" % uuid.uuid4().hex[:8]
    argv = leaker_argv(token, max_mib=300)
    child = start(argv)
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
leak = {interval_s = 0.5, window_s = 20, horizon_s = 60, max_rss_mib = 60, on_leak = "restart", command = %s, cooldown_s = 600}
""" % (token, json.dumps([sys.executable, RESTART, pidfile, "500"])))
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
        if child.poll() is None:
            child.kill()
            child.wait()
        try:
            with open(pidfile) as f:
                new_pid = int(f.read())
        except (OSError, ValueError):
            pass
        if new_pid and new_pid != child.pid:
            try:
                os.kill(new_pid, 9)
            except ProcessLookupError:
                pass
