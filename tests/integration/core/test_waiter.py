"""guardian.core.waiter against a real memory cgroup: the cgroup v1 usage thresholds wake the
guardian when a process in the cgroup allocates past a line (os.eventfd, or guardian.kernel.libc's
eventfd on Python 3.9, which has none)."""
import os
import select
import subprocess
import sys

import pytest

from guardian.core.waiter import UsageThresholds
from tests.support.processes import reap

pytestmark = pytest.mark.integration

MIB = 1024 * 1024

# Allocates what its first argument says, in MiB, each time it reads a line; says "ok".
GROWER = """
import sys
held = []
for line in sys.stdin:
    held.append(b"\\x04" * (int(sys.argv[1]) << 20))
    print("ok", flush=True)
"""


@pytest.mark.parametrize("os_eventfd", [True, False], ids=["os.eventfd", "libc eventfd (Python 3.9)"])
def test_a_usage_threshold_fires_when_the_cgroup_grows_past_it(memcg, monkeypatch, os_eventfd):
    if memcg.version != 1:
        pytest.skip("usage thresholds are cgroup v1's (cgroup.event_control); this machine gave a v%d cgroup"
                    % memcg.version)
    if not os_eventfd:
        monkeypatch.delattr(os, "eventfd", raising=False)
    grower = memcg.spawn([sys.executable, "-c", GROWER, "8"], stdin=subprocess.PIPE)
    thresholds = UsageThresholds(memcg.path)
    try:
        grower.stdin.write(b"\n")
        grower.stdin.flush()
        assert grower.stdout.readline().strip() == b"ok"
        line = memcg.usage() + 32 * MIB
        thresholds.set([line, line + 512 * MIB])
        assert thresholds.error is None, thresholds.error
        fds = thresholds.fds()
        assert len(fds) == 2
        assert select.select(fds, [], [], 0.3)[0] == []  # below both lines: no wake
        for _ in range(6):  # 48 MiB more: past the first line only
            grower.stdin.write(b"\n")
            grower.stdin.flush()
            assert grower.stdout.readline().strip() == b"ok"
        fired = select.select(fds, [], [], 5)[0]
        assert fired == [fds[0]], (fired, fds, memcg.usage(), line)
        thresholds.drain(fds[0])
        assert select.select(fds, [], [], 0)[0] == []  # drained: quiet until the next crossing
    finally:
        thresholds.close()
        reap(grower)
    assert thresholds.fds() == []
