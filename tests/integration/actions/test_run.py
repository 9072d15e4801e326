"""Running a command a board config names (run.py), for real: its oom_score_adj is not the
guardian's, and a command that cannot start, is no argv list or times out is an outcome in words."""
import os
import subprocess
import sys

import pytest

from guardian.actions.run import run
from tests.support import REPO

pytestmark = pytest.mark.integration


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering oom_score_adj needs root")
def test_the_command_does_not_inherit_the_guardians_oom_score_adj(tmp_path):
    out = tmp_path / "adj"
    code = ("import os, sys; open('/proc/self/oom_score_adj', 'w').write('-1000');"
            "from guardian.actions.run import run;"
            "print(run([sys.executable, '-c', 'import sys; open(sys.argv[1], \"w\").write("
            "open(\"/proc/self/oom_score_adj\").read())', sys.argv[1]], 10, may_start_service=True))")
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=30)
    assert out.read_text().strip() == "0"


def test_command_problems_are_words_not_exceptions():
    outcome = run(["/nonexistent/guardian-restart"], 5, may_start_service=True)
    assert outcome.returncode is None and "not found" in outcome.problem
    outcome = run("systemctl restart x", 5, may_start_service=True)
    assert outcome.returncode is None and "argv list" in outcome.problem
    outcome = run([sys.executable, "-c", "import time; time.sleep(30)"], 0.5, may_start_service=True)
    assert outcome.timed_out and "timed out" in outcome.problem and outcome.seconds < 10
