"""The daemon's kernel OOM watcher on this machine: the kernel's name of a cgroup directory,
and a real kernel OOM kill in a real memory cgroup, found through vmstat and read from the
real /dev/kmsg (skipped, with the reason, where no cgroup can be made)."""
import os
import sys
import time

import pytest

from guardian.core.parts.oomwatch import KernelOomWatcher, kernel_cgroup_path
from guardian.kernel.vmstat import read_vmstat
from tests.support.processes import HOG

pytestmark = pytest.mark.integration


def test_kernel_cgroup_path():
    for mount in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        if os.path.isdir(mount) and os.stat(mount).st_dev != os.stat(os.path.dirname(mount)).st_dev:
            assert kernel_cgroup_path(mount) == "/"
            sub = [d for d in sorted(os.listdir(mount)) if os.path.isdir(os.path.join(mount, d))]
            if sub:
                assert kernel_cgroup_path(os.path.join(mount, sub[0])) == "/" + sub[0]
            return
    pytest.skip("no cgroup hierarchy mounted here")


def test_a_real_cgroup_oom_kill_is_reported_and_classified(memcg):
    watcher = KernelOomWatcher()
    if not watcher.available:
        pytest.skip("cannot read /dev/kmsg: %s" % watcher.reader.error)
    counters = read_vmstat()
    if not counters or "oom_kill" not in counters:
        pytest.skip("no oom_kill in /proc/vmstat (kernel < 4.13)")
    cg = memcg
    try:
        cg.set_limit(32 << 20)
        watcher.check(read_vmstat()["oom_kill"])
        hog = cg.spawn([sys.executable, HOG, "400", "200"])
        mine = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not mine:
            time.sleep(0.2)
            for report in watcher.check(read_vmstat()["oom_kill"]):
                if report.get("victim_pid") == hog.pid:  # other tests may have their own OOMs
                    mine.append(report)
        assert mine, "no report of the hog's kill within 30 s (hog exit %s)" % hog.poll()
        (report,) = mine
        name = os.path.basename(cg.path)
        assert report["cause"] == "cgroup_limit", report["summary"]
        assert report["oom_memcg"].endswith(name) and report["task_memcg"].endswith(name)
        assert report["memcg_limit_kb"] == 32768
        assert report["victims"][0]["anon_rss_kb"] > 16 * 1024
        assert report["source"] == "kmsg" and report["truncated"] is False
        assert name in report["summary"] and report["advice"]
        # Guarding that cgroup, the watcher knows it by the name the kernel logs.
        inside = KernelOomWatcher(scope_dir=cg.path)
        assert inside.scope_cgroup == report["oom_memcg"] == "/" + name
        inside.close()
    finally:
        watcher.close()
