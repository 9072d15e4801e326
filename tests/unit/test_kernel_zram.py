"""Swap on zram: /proc/swaps and mm_stat, read from fake trees."""
import os

import pytest

from guardian.config import MIB
from guardian.kernel import ParseError
from guardian.kernel.zram import ZramStat, parse_mm_stat, parse_swaps, read_zram_swap, relief

SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
         "/dev/zram0                              partition\t65532\t\t16384\t\t100\n"
         "/swapfile                               file\t\t102396\t\t0\t\t-2\n")


def tree(tmp_path, swaps=SWAPS, mm_stat="33554432 8388608 11184810 0 11184810 10 0 0\n"):
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    os.makedirs(sys / "block" / "zram0")
    os.makedirs(proc)
    (proc / "swaps").write_text(swaps)
    if mm_stat is not None:
        (sys / "block" / "zram0" / "mm_stat").write_text(mm_stat)
    return str(proc), str(sys)


def test_swaps_are_parsed_in_bytes():
    areas = parse_swaps(SWAPS)
    assert [(a.path, a.size, a.used) for a in areas] == [
        ("/dev/zram0", 65532 * 1024, 16384 * 1024), ("/swapfile", 102396 * 1024, 0)]


def test_only_zram_counts_and_its_relief_follows_the_ratio_seen(tmp_path):
    proc, sys = tree(tmp_path)
    z = read_zram_swap(proc, sys)
    free = (65532 - 16384) * 1024
    assert z.total == 65532 * 1024 and z.free == free and z.ram_used == 11184810
    ratio = 33554432 / 11184810  # 3:1
    assert z.relief == int(free * (1 - 1 / ratio))


def test_an_empty_device_assumes_two_to_one_and_a_limit_bounds_it():
    assert relief(64 * MIB, None) == 32 * MIB
    assert relief(64 * MIB, ZramStat(0, 0, 0)) == 32 * MIB
    # 4 MiB of RAM left under the limit at 2:1 takes 8 MiB more, giving back 4 MiB.
    assert relief(64 * MIB, ZramStat(8 * MIB, 4 * MIB, 8 * MIB)) == 4 * MIB
    assert relief(0, None) == 0
    # A fresh device holding a few pages in a larger pool: its ratio means nothing yet.
    assert relief(64 * MIB, ZramStat(16 * 1024, 64 * 1024, 0)) == 32 * MIB


def test_no_zram_swap_is_none(tmp_path):
    proc, sys = tree(tmp_path, swaps="Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    assert read_zram_swap(proc, sys) is None


@pytest.mark.parametrize("swaps,mm_stat", [
    ("Filename Type Size Used Priority\n/dev/zram0 partition 65532\n", None),
    ("Filename Type Size Used Priority\n/dev/zram0 partition many 0 100\n", None),
    (SWAPS, "12 garbage\n"),
])
def test_garbled_files_name_the_file(tmp_path, swaps, mm_stat):
    proc, sys = tree(tmp_path, swaps=swaps, mm_stat=mm_stat or "1 1 1 0\n")
    with pytest.raises(ParseError) as err:
        read_zram_swap(proc, sys)
    assert "swaps" in str(err.value) or "mm_stat" in str(err.value)


def test_mm_stat_fields():
    assert parse_mm_stat("100 50 60 0 60 0 0 0", "x") == ZramStat(100, 60, 0)


def test_a_reading_counts_zram_as_headroom_and_a_board_without_swap_never_reads_it(tmp_path):
    from guardian.core.sense import Sensor
    proc, sys = tree(tmp_path, mm_stat="0 0 0 0 0 0 0 0 0\n")
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
