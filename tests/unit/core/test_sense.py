"""The sensor against fake trees: the kernel's OOM kill count from vmstat, and swap on zram
counted as headroom."""
import os

from guardian.core.sense import Sensor
from tests.support import fakeproc
from tests.support.fakeproc import zram_tree


def test_kernel_oom_count_from_vmstat(basic_tree, tmp_path):
    sensor = Sensor(proc_root=basic_tree)
    assert sensor.oom_kills() is None  # no vmstat: said once, not a crash
    fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 3\npgscan_kswapd 9\n")
    sensor = Sensor(proc_root=basic_tree)
    assert sensor.oom_kills() == 3
    fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill x3\n")
    assert sensor.oom_kills() is None
    fakeproc.write(os.path.join(basic_tree, "vmstat"), "nr_free_pages 100\noom_kill 4")  # no final newline
    assert sensor.oom_kills() == 4
    sensor.close()


def test_a_reading_counts_zram_as_headroom_and_a_board_without_swap_never_reads_it(tmp_path):
    proc, sys = zram_tree(tmp_path, mm_stat="0 0 0 0 0 0 0 0 0\n")
    meminfo = ("MemTotal: 81896 kB\nMemFree: 4000 kB\nMemAvailable: 9000 kB\nCached: 3000 kB\n"
               "SwapTotal: 65532 kB\nSwapFree: 49148 kB\n")
    with open(os.path.join(proc, "meminfo"), "w") as f:
        f.write(meminfo)
    sensor = Sensor(None, proc, sys)
    r = sensor.read(0.0, 1)
    # /proc/swaps says 16 MiB used of 64 MiB zram: 48 MiB free at the assumed 2:1.
    assert r.zram_swap_total == 65532 * 1024 and r.zram_relief == (65532 - 16384) * 1024 // 2
    assert r.headroom == 9000 * 1024 + r.zram_relief
    with open(os.path.join(proc, "meminfo"), "w") as f:
        f.write(meminfo.replace("SwapTotal: 65532", "SwapTotal: 0").replace("SwapFree: 49148", "SwapFree: 0"))
    os.unlink(os.path.join(proc, "swaps"))  # never read without swap
    r = Sensor(None, proc, sys).read(0.0, 1)
    assert r.zram_relief == 0 and r.headroom == r.available
    sensor.close()
