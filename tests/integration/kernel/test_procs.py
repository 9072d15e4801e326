"""The process table reader against this machine's /proc: this process, a child before and
after it allocates, a zombie, a kernel thread."""
import os
import subprocess
import sys
import time

import pytest

from guardian.kernel import procs
from tests.support.processes import allocate, reap, start_allocator

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


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
    child = start_allocator(64)
    try:
        before = procs.read_proc(child.pid)
        assert allocate(child) == b"ready\n"
        after = procs.read_proc(child.pid)
        assert after.rss >= 64 * MiB and after.rss_anon >= 64 * MiB
        assert after.rss - before.rss >= 60 * MiB
        assert after.ppid == os.getpid()
        assert after.starttime == before.starttime
        assert after.oom_score > before.oom_score
    finally:
        reap(child)
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
