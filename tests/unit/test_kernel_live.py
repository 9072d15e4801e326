"""The kernel readers against this machine's real /proc and /sys (and a real cgroup v1
memory cgroup made for the test)."""
import errno
import os
import subprocess
import sys
import time

import pytest

from guardian.kernel import buddyinfo, cgroup, meminfo, procs, psi, sysctl, vmstat, zoneinfo

MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")

# A child that allocates (and touches) N MiB when told to, says "ready", then waits.
HOG = """\
import sys
n = int(sys.argv[1])
sys.stdin.readline()
x = b"\\x01" * (n << 20)
print("ready", flush=True)
sys.stdin.readline()
"""


def start_hog(mib):
    return subprocess.Popen([sys.executable, "-c", HOG, str(mib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def go(child):
    child.stdin.write(b"go\n")
    child.stdin.flush()
    return child.stdout.readline()


def stop(child):
    if child.poll() is None:
        child.kill()
    child.wait()
    for f in (child.stdin, child.stdout):
        try:
            f.close()
        except OSError:
            pass


def test_real_meminfo():
    m = meminfo.read_meminfo()
    assert m.total == os.sysconf("SC_PHYS_PAGES") * PAGE
    assert 0 < m.free <= m.total
    assert 0 < m.available <= m.total
    assert m.cached >= 0 and m.anon is not None and m.anon > 0
    assert m.swap_free <= m.swap_total


def test_real_procs_include_this_process():
    table = {p.pid: p for p in procs.read_procs()}
    assert abs(len(table) - len(procs.list_pids())) <= 5  # processes come and go meanwhile
    me = table[os.getpid()]
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    assert 5 * MiB < me.rss < 4096 * MiB
    assert abs(me.rss - resident_pages * PAGE) < max(me.rss // 10, 2 * MiB)
    assert 0 < me.rss_anon <= me.rss
    assert me.ppid == os.getppid() and me.pgid == os.getpgrp() and me.uid == os.getuid()
    with open("/proc/self/comm") as f:
        assert me.comm == f.read().rstrip("\n")
    with open("/proc/self/cmdline", "rb") as f:
        assert me.cmdline == tuple(a.decode() for a in f.read().split(b"\0")[:-1])
    assert len(me.cmdline) >= 2
    assert me.kthread is False
    assert 0 < me.starttime
    assert me.cgroup.startswith("/")


def test_real_child_memory_is_seen():
    child = start_hog(64)
    try:
        before = procs.read_proc(child.pid)
        assert go(child) == b"ready\n"
        after = procs.read_proc(child.pid)
        assert after.rss >= 64 * MiB and after.rss_anon >= 64 * MiB
        assert after.rss - before.rss >= 60 * MiB
        assert after.ppid == os.getpid()
        assert after.starttime == before.starttime
        assert after.oom_score > before.oom_score
    finally:
        stop(child)
    assert procs.read_proc(child.pid) is None  # reaped: gone


def test_real_zombie_is_read_without_memory():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    info = None
    while time.time() < deadline:  # not waited for yet: it becomes a zombie
        with open("/proc/%d/stat" % child.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                info = procs.read_proc(child.pid)
                break
        time.sleep(0.01)
    child.wait()
    assert info is not None, "the child never became a zombie"
    assert info.rss == 0 and info.cmdline == () and info.ppid == os.getpid()


def test_real_kernel_thread():
    kthreadd = procs.read_proc(2)
    if kthreadd is None or kthreadd.comm != "kthreadd":
        pytest.skip("pid 2 is not kthreadd here (a container?)")
    assert kthreadd.kthread and kthreadd.rss == 0 and kthreadd.cmdline == () and kthreadd.ppid == 0
    init = procs.read_proc(1)
    assert init is not None and not init.kthread and init.rss > 0


def test_real_psi():
    if not os.path.exists("/proc/pressure/memory"):
        pytest.skip("no /proc/pressure/memory on this kernel (CONFIG_PSI off or kernel < 4.20)")
    p = psi.read_psi()
    if p is None:
        pytest.skip("PSI is disabled on this kernel (psi=0)")
    assert p.full is not None
    assert p.some.total >= p.full.total >= 0
    assert 0 <= p.some.avg10 <= 100


def test_real_vmstat_buddyinfo_zoneinfo():
    v = vmstat.read_vmstat()
    assert v["pgfault"] > 0 and "nr_free_pages" in v
    zones = buddyinfo.read_buddyinfo()
    assert zones and all(len(z.free_blocks) >= 11 for z in zones)
    free_in_blocks = buddyinfo.high_order_free_bytes(zones, min_order=0, page_size=PAGE)
    # nr_free_pages also counts per-cpu lists; the buddy lists hold most of it
    assert 0 < free_in_blocks <= v["nr_free_pages"] * PAGE * 1.1
    w = zoneinfo.read_watermarks()
    assert 0 < w.min <= w.low <= w.high
    min_free = int(sysctl.read_sysctl("vm.min_free_kbytes")) * 1024
    assert abs(w.min - min_free) <= min_free * 0.1
    assert sysctl.read_sysctl("vm.overcommit_memory") in ("0", "1", "2")


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
            stop(child)
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
    child = start_hog(48)
    children.append(child)
    join(path, child.pid)
    assert go(child) == b"ready\n"

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
    child = start_hog(128)
    children.append(child)
    join(path, child.pid)
    child.stdin.write(b"go\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == -9  # the kernel's memcg OOM killer
    assert cgroup.read_cgroup_memory(path).oom_kill == 1
