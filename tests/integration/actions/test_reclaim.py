"""Reclaim on this machine: drop_caches and compact_memory (root), and memory.reclaim of a
real cgroup v2."""
import os

import pytest

from guardian.actions.reclaim import cgroup_reclaim, compact_memory, drop_caches

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0


@pytest.mark.skipif(not IS_ROOT, reason="the /proc/sys/vm files are writable by UID 0 only")
def test_drop_caches_and_compact_memory_on_this_machine():
    for level in (1, 3):
        r = drop_caches(level)
        assert (r.step, r.ok, r.error) == ("drop_caches", True, None)
    r = compact_memory()
    assert (r.step, r.ok, r.error) == ("compact_memory", True, None)


def _v2_memory_cgroup():
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split(" - ")[0].split()[4] for line in f if " - cgroup2 " in line]
    except OSError:
        return None
    for mnt in mounts:
        if os.path.exists(os.path.join(mnt, "memory.reclaim")):
            return mnt
        for entry in sorted(os.listdir(mnt)):
            if os.path.exists(os.path.join(mnt, entry, "memory.reclaim")):
                return os.path.join(mnt, entry)
    return None


@pytest.mark.skipif(not IS_ROOT or _v2_memory_cgroup() is None,
                    reason="needs root and a cgroup v2 hierarchy with the memory controller")
def test_cgroup_reclaim_on_a_real_cgroup():
    r = cgroup_reclaim(_v2_memory_cgroup(), 1 << 20)
    assert r.ok, r.error
