"""Graceful stop of real processes (stop.py): SIGTERM, a stop command, and SIGTERM again when
the command is missing, fails, hangs (killed with its children) or is not an argv list."""
import signal
import sys
import time

import pytest

from guardian.actions.signals import kill, open_process, wait_exit
from guardian.actions.run import OUTPUT_LIMIT
from guardian.actions.stop import graceful_stop
from tests.support.processes import TERM_TRAPPER, child_handle, stat_fields, starttime_of, wait_dead

pytestmark = pytest.mark.integration


def test_sigterm_lets_the_child_exit_cleanly(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, None)
    assert (r.method, r.ok, r.returncode, r.error, r.output) == ("sigterm", True, None, None, "")
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3  # its own exit code, not -9


def test_stop_command_stops_the_child(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["kill", "-TERM", str(p.pid)], timeout_s=10)
    assert (r.method, r.ok, r.returncode, r.error) == ("command", True, 0, None)
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3


def test_missing_stop_command_falls_back_to_sigterm(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["/nonexistent/guardian-stop-helper", "--now"])
    assert r.method == "sigterm" and r.ok and r.returncode is None
    assert "/nonexistent/guardian-stop-helper" in r.error
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3


def test_failing_stop_command_falls_back_to_sigterm(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["sh", "-c", "echo cannot stop it >&2; exit 4"])
    assert r.method == "sigterm" and r.ok and r.returncode == 4
    assert "status 4" in r.error and "cannot stop it" in r.output
    assert p.wait(timeout=5) == 3


def test_hanging_stop_command_times_out_is_killed_with_its_children_and_falls_back(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    r = graceful_stop(h, ["sh", "-c", 'sleep 60 & echo $! > "$1"; wait', "sh", str(pidfile)], timeout_s=0.5)
    assert time.monotonic() - t0 < 4
    assert r.method == "sigterm" and r.ok and r.returncode == -signal.SIGKILL
    assert "timed out" in r.error and "sh" in r.error
    assert p.wait(timeout=5) == 3
    bg = int(pidfile.read_text())
    assert wait_dead(bg, starttime_of(bg) if stat_fields(bg) else 0), "the stop command's child survived"


def test_stop_command_exit_is_not_held_up_by_a_descendant_holding_the_pipe(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    try:
        r = graceful_stop(h, ["sh", "-c", 'sleep 60 & echo $! > "$1"; echo stopping; kill -TERM "$2"',
                              "sh", str(pidfile), str(p.pid)], timeout_s=20)
        assert time.monotonic() - t0 < 5
        assert (r.method, r.ok, r.returncode, r.error) == ("command", True, 0, None)
        assert r.output.strip() == "stopping"
        assert p.wait(timeout=5) == 3
    finally:
        bg = int(pidfile.read_text())
        bh = open_process(bg, starttime_of(bg)) if stat_fields(bg) else None
        kill(bh)
        if bh:
            bh.close()


def test_stop_command_output_is_truncated(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, [sys.executable, "-c", "import os, sys\nprint('x' * 200000)\nos.kill(%d, 15)" % p.pid])
    assert r.method == "command" and r.ok
    assert r.output == "x" * OUTPUT_LIMIT
    assert p.wait(timeout=5) == 3


def test_string_argv_is_not_run_through_a_shell(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    marker = tmp_path / "ran"
    r = graceful_stop(h, "touch %s" % marker)
    assert r.method == "sigterm" and r.ok and "argv list" in r.error
    assert not marker.exists()
    assert p.wait(timeout=5) == 3
