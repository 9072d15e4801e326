"""Fixtures of the integration tests: a real memory cgroup (memcg), and the guardian run as a
real process (guardian_factory)."""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import REPO
from tests.support.cgroups import MemCgroup
from tests.support.processes import stop_process


@pytest.fixture
def memcg():
    """A fresh memory cgroup (tests.support.cgroups), removed afterwards; or a skip that says why
    none can be made."""
    try:
        cg = MemCgroup("guardian-test")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield cg
    finally:
        cg.destroy()


class GuardianProcess:
    """`python -m guardian run` of this checkout, its events and log in tmp_path."""

    def __init__(self, args, tmp_path):
        self.events_file = str(tmp_path / "events.jsonl")
        self.log_file = str(tmp_path / "guardian.log")
        self._log = open(self.log_file, "w")
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "guardian", "--log-level", "debug", "run", "--events-file", self.events_file,
             "--state-file", str(tmp_path / "state.json"), "--state-dir", str(tmp_path / "lib")] + list(args),
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.wait_for(lambda e: e["event"] == "start", 20)

    def events(self):
        try:
            with open(self.events_file) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if predicate(e)]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise AssertionError("guardian exited %s:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.05)
        raise AssertionError("no such event within %s s; events %s\nlog:\n%s" % (timeout, self.events(), self.log()))

    def log(self):
        with open(self.log_file) as f:
            return f.read()

    def stop(self):
        stop_process(self.proc, 10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def guardian_factory(tmp_path):
    """start(*args): a GuardianProcess with those `run` arguments, once it has told its start;
    each one is stopped at teardown."""
    started = []

    def start(*args):
        g = GuardianProcess(args, tmp_path)
        started.append(g)
        return g

    try:
        yield start
    finally:
        for g in started:
            g.stop()
