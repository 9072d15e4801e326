"""selfprotect for real: memory locking (in a child, so the test runner stays unlocked),
oom_score_adj of real processes, this process's capabilities and a child's without some."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from guardian.core.capabilities import CAPABILITIES, capabilities, missing_capability_report
from guardian.core.selfprotect import set_oom_score_adj
from tests.support import REPO
from tests.support.processes import read_adj

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0
SETPRIV = shutil.which("setpriv")

CHILD = """
import json, resource, sys
{pre}
from guardian.core.capabilities import capabilities
from guardian.core.selfprotect import lock_memory
out = {{"caps": capabilities()}}
if {lock}:
    out["desc"] = lock_memory()
with open("/proc/self/status") as f:
    out["vmlck_kb"] = next(int(l.split()[1]) for l in f if l.startswith("VmLck:"))
print(json.dumps(out))
"""


def run_child(lock=True, pre="", wrapper=()):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        list(wrapper) + [sys.executable, "-c", CHILD.format(pre=pre, lock=lock)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def bounding_set():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


# --------------------------------------------------------------------------- lock_memory


def test_lock_memory_in_a_child_locks_or_says_refused():
    out = run_child()
    desc = out["desc"]
    assert desc.startswith(("mlockall(current|future", "mlockall refused: ")), desc
    if desc.startswith("mlockall refused"):
        assert out["vmlck_kb"] == 0
    else:
        assert out["vmlck_kb"] > 0
    if out["caps"]["CAP_IPC_LOCK"]:  # any kernel >= 4.4 has MCL_ONFAULT
        assert desc == "mlockall(current|future|onfault)"


def test_lock_memory_does_not_touch_this_process():
    with open("/proc/self/status") as f:
        assert next(int(line.split()[1]) for line in f if line.startswith("VmLck:")) == 0


@pytest.mark.skipif(not (IS_ROOT and SETPRIV), reason="needs root and setpriv to drop CAP_IPC_LOCK")
def test_lock_memory_without_cap_ipc_lock_and_a_small_rlimit_is_refused():
    out = run_child(
        pre="resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))",
        wrapper=(SETPRIV, "--bounding-set", "-ipc_lock", "--inh-caps", "-all", "--"),
    )
    assert out["caps"]["CAP_IPC_LOCK"] is False
    assert out["desc"] == "mlockall refused: %s" % os.strerror(12)  # ENOMEM
    assert out["vmlck_kb"] == 0


# --------------------------------------------------------------------------- oom_score_adj


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL)
    try:
        yield p
    finally:
        p.kill()
        p.wait(timeout=10)


def test_set_oom_score_adj_of_a_child(sleeper):
    assert set_oom_score_adj(500, pid=sleeper.pid) is None
    assert read_adj(sleeper.pid) == 500
    assert set_oom_score_adj(1000, pid=sleeper.pid) is None
    assert read_adj(sleeper.pid) == 1000


def test_lowering_oom_score_adj_needs_cap_sys_resource(sleeper):
    err = set_oom_score_adj(-100, pid=sleeper.pid)
    if capabilities()["CAP_SYS_RESOURCE"]:
        assert err is None and read_adj(sleeper.pid) == -100
    else:
        assert "Permission denied" in err and "CAP_SYS_RESOURCE" in err
        assert str(sleeper.pid) in err
        assert read_adj(sleeper.pid) == 0


def test_set_oom_score_adj_of_self_in_a_child():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = ("from guardian.core.selfprotect import set_oom_score_adj as s\n"
            "print(s(300)); print(open('/proc/self/oom_score_adj').read().strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["None", "300"], out.stderr


def test_set_oom_score_adj_errors_are_returned(tmp_path, sleeper):
    for bad in (1001, -1001, "5", 2.0, True):
        err = set_oom_score_adj(bad, pid=sleeper.pid)
        assert err and "-1000..1000" in err
    assert read_adj(sleeper.pid) == 0
    err = set_oom_score_adj(10, pid="self", proc_root=str(tmp_path))
    assert err and str(tmp_path / "self" / "oom_score_adj") in err
    assert not (tmp_path / "self").exists()
    gone = subprocess.Popen(["true"])
    gone.wait()
    err = set_oom_score_adj(10, pid=gone.pid)
    assert err and "/proc/%d/oom_score_adj" % gone.pid in err

# --------------------------------------------------------------------------- capabilities


@pytest.mark.skipif(not IS_ROOT, reason="root only")
def test_capabilities_as_root():
    caps = capabilities()
    assert set(caps) == set(CAPABILITIES)
    bnd = bounding_set()
    # Plain root has every capability its bounding set allows. A container may withhold some
    # (this CI's sandbox lacks CAP_SYS_RESOURCE): those must then be reported missing.
    for name, bit in CAPABILITIES.items():
        assert caps[name] == bool(bnd >> bit & 1), name
    withheld = [n for n, bit in CAPABILITIES.items() if not bnd >> bit & 1]
    assert missing_capability_report(caps) == [line for line in missing_capability_report({})
                                               if line.split()[0] in withheld]


@pytest.mark.skipif(not (IS_ROOT and SETPRIV), reason="needs root and setpriv")
def test_capabilities_see_dropped_ones():
    mine = capabilities()
    out = run_child(lock=False, wrapper=(SETPRIV, "--bounding-set", "-kill,-dac_override", "--inh-caps", "-all", "--"))
    assert out["caps"]["CAP_KILL"] is False and out["caps"]["CAP_DAC_OVERRIDE"] is False
    for name in CAPABILITIES:
        if name not in ("CAP_KILL", "CAP_DAC_OVERRIDE"):
            assert out["caps"][name] == mine[name], name
