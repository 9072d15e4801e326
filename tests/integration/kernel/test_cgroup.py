"""The memory cgroup reader against a real cgroup v1 memory cgroup made for the test (skipped,
with the reason, where none can be made)."""
import errno
import os
import time

import pytest

from guardian.kernel import cgroup, procs
from tests.support.processes import allocate, reap, start_allocator

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
V1_BASE = "/sys/fs/cgroup/memory"


@pytest.fixture
def v1_cgroup():
    if not os.path.exists(os.path.join(V1_BASE, "memory.usage_in_bytes")):
        pytest.skip("no cgroup v1 memory controller mounted at %s" % V1_BASE)
    name = "guardian-kernel-test-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
    path = os.path.join(V1_BASE, name)
    try:
        os.mkdir(path)
    except OSError as e:
        pytest.skip("cannot create a memory cgroup at %s: %s" % (path, e))
    made = [path]
    children = []
    try:
        yield name, path, made, children
    finally:
        for child in children:
            reap(child)
        for d in reversed(made):
            for _ in range(50):  # the kernel may take a moment to let go of a killed task
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    time.sleep(0.05)


def join(path, pid):
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write("%d\n" % pid)


def test_real_v1_cgroup(v1_cgroup):
    name, path, made, children = v1_cgroup
    with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
        f.write("%d\n" % (256 * MiB))
    child = start_allocator(48)
    children.append(child)
    join(path, child.pid)
    assert allocate(child) == b"ready\n"

    m = cgroup.read_cgroup_memory(path)
    assert m.version == 1 and m.path == path
    assert m.limit == 256 * MiB
    assert m.usage >= 48 * MiB
    assert m.anon >= 48 * MiB
    assert 0 <= m.reclaimable <= m.usage
    assert m.oom_kill == 0 and m.psi is None
    assert cgroup.cgroup_pids(path) == (child.pid,)
    assert cgroup.resolve_cgroup(name) == path
    assert cgroup.resolve_cgroup("/" + name) == path
    assert procs.read_proc(child.pid).cgroup == "/" + name

    # a child cgroup: counted in the parent's pids and (hierarchical) totals
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    made.append(sub)
    join(sub, child.pid)
    assert cgroup.cgroup_pids(path) == (child.pid,)
    assert cgroup.read_cgroup_memory(sub).limit is None  # unlimited below a limited parent
    assert procs.read_proc(child.pid).cgroup == "/%s/sub" % name


def test_real_v1_cgroup_oom_kill_counter(v1_cgroup):
    name, path, made, children = v1_cgroup
    with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
        f.write("%d\n" % (32 * MiB))
    if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
        with open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as f:
            f.write("%d\n" % (32 * MiB))
    with open(os.path.join(path, "memory.oom_control")) as f:
        if "oom_kill " not in f.read():
            pytest.skip("memory.oom_control has no oom_kill counter on this kernel (< 4.13)")
    child = start_allocator(128)
    children.append(child)
    join(path, child.pid)
    child.stdin.write(b"go\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == -9  # the kernel's memcg OOM killer
    assert cgroup.read_cgroup_memory(path).oom_kill == 1
