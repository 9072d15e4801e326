"""Running a command a board config names (run.py), for real: its oom_score_adj is not the
guardian's, and a command that cannot start, is no argv list or times out is an outcome in words."""
import os
import signal
import subprocess
import sys
import time

import pytest

from guardian.actions.run import COMMAND_ENV, OUTPUT_LIMIT, run
from tests.support import REPO

pytestmark = pytest.mark.integration


def _run_from_minus_1000(tmp_path, command_code, **run_args):
    """run() called by a process at oom_score_adj -1000, as the guardian is, on a Python
    command given the path tmp_path/adj as argv[1]; the path."""
    out = tmp_path / "adj"
    code = ("import os, sys; open('/proc/self/oom_score_adj', 'w').write('-1000')\n"
            "if open('/proc/self/oom_score_adj').read().strip() != '-1000': sys.exit(77)\n"
            "from guardian.actions.run import run\n"
            "o = run([sys.executable, '-c', sys.argv[2], sys.argv[1]], 10, **%r); assert o.problem is None, o"
            % (run_args,))
    done = subprocess.run([sys.executable, "-c", code, str(out), command_code],
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=30)
    if done.returncode == 77:  # a child at 0 would prove nothing
        pytest.skip("this kernel did not keep oom_score_adj -1000 (it reads back otherwise): nothing to reset")
    assert done.returncode == 0
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering oom_score_adj needs root")
def test_the_command_does_not_inherit_the_guardians_oom_score_adj(tmp_path):
    own_adj = "import sys; open(sys.argv[1], 'w').write(open('/proc/self/oom_score_adj').read())"
    out = _run_from_minus_1000(tmp_path, own_adj, may_start_service=True)
    assert out.read_text().strip() == "0"


def test_command_problems_are_words_not_exceptions():
    outcome = run(["/nonexistent/guardian-restart"], 5, may_start_service=True)
    assert outcome.returncode is None and "not found" in outcome.problem
    outcome = run("systemctl restart x", 5, may_start_service=True)
    assert outcome.returncode is None and "argv list" in outcome.problem
    outcome = run([sys.executable, "-c", "import time; time.sleep(30)"], 0.5, may_start_service=True)
    assert outcome.timed_out and "timed out" in outcome.problem and outcome.seconds < 10


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering oom_score_adj needs root")
def test_nothing_of_the_command_runs_at_the_guardians_oom_score_adj(tmp_path):
    """Not even a child it forks at once: the reset comes before the command's exec."""
    child = ("import os, sys; pid = os.fork()\n"
             "if pid == 0:\n"
             "    open(sys.argv[1] + '.child', 'w').write(open('/proc/self/oom_score_adj').read()); os._exit(0)\n"
             "os.waitpid(pid, 0); open(sys.argv[1], 'w').write(open('/proc/self/oom_score_adj').read())")
    out = _run_from_minus_1000(tmp_path, child)
    assert out.read_text().strip() == "0"
    assert (tmp_path / "adj.child").read_text().strip() == "0"


def test_the_command_gets_the_fixed_environment_cwd_and_session(monkeypatch):
    monkeypatch.setenv("GUARDIAN_SECRET", "not for commands")
    outcome = run(["env"], 10)
    assert outcome.problem is None and sorted(outcome.output.splitlines()) == sorted(
        "%s=%s" % item for item in COMMAND_ENV.items())
    code = "import os; print(os.getcwd()); print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
    outcome = run([sys.executable, "-c", code], 10)
    assert outcome.problem is None and outcome.output.splitlines() == ["/", "True True"]


def test_no_descriptor_leaks_into_the_command_and_sigpipe_is_default(tmp_path):
    leaked = os.open(str(tmp_path), os.O_RDONLY)  # inheritable, as one a starter leaked would be
    os.set_inheritable(leaked, True)
    try:
        outcome = run(["sh", "-c", "ls /proc/self/fd; grep SigIgn /proc/self/status"], 10)
    finally:
        os.close(leaked)
    assert outcome.returncode == 0, outcome
    lines = outcome.output.split()
    # 0-2, and the descriptor ls reads the directory with
    assert str(leaked) not in lines[:-2] and len(lines) - 2 <= 4, lines
    ignored = int(lines[-1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # not ignored, as Python's own are
        assert not ignored & (1 << (signum - 1)), lines[-1]


def test_output_is_kept_up_to_the_limit_and_the_exit_status_said():
    outcome = run([sys.executable, "-c", "import sys; print('x' * 5000); sys.stderr.write('err'); sys.exit(3)"], 10)
    assert outcome.started and outcome.returncode == 3 and outcome.problem == "exited with status 3"
    assert outcome.output == "x" * OUTPUT_LIMIT
    outcome = run(["sh", "-c", "echo out; echo err >&2; kill -9 $$"], 10)
    assert outcome.returncode == -9 and outcome.problem == "killed by signal 9"
    assert outcome.output.split() == ["out", "err"]


def test_not_executable_and_searched_in_the_commands_path(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    outcome = run([str(script)], 5)
    assert not outcome.started and outcome.problem == "command not executable: %s" % script
    assert run(["true"], 5).problem is None  # found in COMMAND_ENV's PATH
    assert "not found" in run(["guardian-no-such-command"], 5, what="stop command").problem


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_stop_commands_group_but_a_restarts_service_survives(tmp_path):
    pidfile = tmp_path / "grandchild"
    code = ("import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(60)")
    outcome = run([sys.executable, "-c", code, str(pidfile)], 1.5)
    assert outcome.timed_out and outcome.problem == "timed out after 1.5s" and outcome.returncode == -9
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)  # killed with its group

    pidfile.unlink()
    outcome = run([sys.executable, "-c", code, str(pidfile)], 1.5, may_start_service=True)
    assert outcome.timed_out and outcome.returncode == -9
    grandchild = int(pidfile.read_text())
    try:
        assert _alive(grandchild)  # the service it started is not killed with it
    finally:
        os.kill(grandchild, signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering oom_score_adj needs root")
def test_without_a_shell_the_guardian_resets_the_commands_oom_score_adj(tmp_path):
    out = tmp_path / "adj"
    code = ("import os, sys; open('/proc/self/oom_score_adj', 'w').write('-1000');"
            "from guardian.actions import run; run.SHELL = '/nonexistent/sh';"
            "o = run.run([sys.executable, '-c', 'import sys, time; time.sleep(0.3); open(sys.argv[1], \"w\").write("
            "open(\"/proc/self/oom_score_adj\").read())', sys.argv[1]], 10); assert o.problem is None, o")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=dict(os.environ, PYTHONPATH=REPO),
                   timeout=30)
    assert out.read_text().strip() == "0"
