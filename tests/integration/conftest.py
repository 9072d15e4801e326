"""Real memory cgroups and a real guardian process for integration tests."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.support import REPO
from tests.support.processes import HOG

V1_ROOT = "/sys/fs/cgroup/memory"


class MemCgroup:
    """A cgroup v1 (or v2 where it has the memory controller) with a memory limit."""

    def __init__(self, path, version):
        self.path = path
        self.version = version
        self.children = []

    def set_limit(self, nbytes):
        name = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(nbytes))

    def oom_kills(self):
        if self.version == 1:
            with open(os.path.join(self.path, "memory.oom_control")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
            return 0
        with open(os.path.join(self.path, "memory.events")) as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def spawn(self, argv, **kw):
        procs_file = os.path.join(self.path, "cgroup.procs")

        def join():
            with open(procs_file, "w") as f:
                f.write(str(os.getpid()))

        child = subprocess.Popen(argv, preexec_fn=join, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.children.append(child)
        return child

    def hog(self, rate_mib_s, max_mib, *flags):
        child = self.spawn([sys.executable, HOG, str(rate_mib_s), str(max_mib)] + list(flags))
        assert child.stdout.readline().strip() == b"ready"
        return child

    def pids(self):
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def destroy(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for _ in range(50):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def make_cgroup():
    """A fresh memory cgroup, or a skip that says why none can be made."""
    name = "guardian-test-%s" % uuid.uuid4().hex[:8]
    unified = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(unified, "cgroup.controllers")):
        with open(os.path.join(unified, "cgroup.controllers")) as f:
            if "memory" in f.read().split():
                path = os.path.join(unified, name)
                try:
                    os.mkdir(path)
                    return MemCgroup(path, 2)
                except OSError as exc:
                    pytest.skip("cannot create a cgroup v2 at %s: %s" % (path, exc))
    if os.path.isdir(V1_ROOT):
        path = os.path.join(V1_ROOT, name)
        try:
            os.mkdir(path)
            return MemCgroup(path, 1)
        except OSError as exc:
            pytest.skip("cannot create a cgroup v1 at %s: %s" % (path, exc))
    pytest.skip("no memory cgroup controller on this machine (neither v2 with memory nor %s)" % V1_ROOT)


@pytest.fixture
def memcg():
    cg = make_cgroup()
    try:
        yield cg
    finally:
        cg.destroy()


class GuardianProcess:
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def guardian_factory(tmp_path):
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
