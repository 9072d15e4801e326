"""/proc/vmstat of this machine, and buddyinfo, zoneinfo and the sysctls checked against it."""
import os

import pytest

from guardian.kernel import buddyinfo, sysctl, vmstat, zoneinfo

pytestmark = pytest.mark.integration

PAGE = os.sysconf("SC_PAGE_SIZE")


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
