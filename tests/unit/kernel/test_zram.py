"""Swap on zram: /proc/swaps and mm_stat, read from fake trees."""
import pytest

from guardian.config import MIB
from guardian.kernel import ParseError
from guardian.kernel.zram import ZramStat, parse_mm_stat, parse_swaps, read_zram_swap, relief
from tests.support.fakeproc import ZRAM_SWAPS, zram_tree


def test_swaps_are_parsed_in_bytes():
    areas = parse_swaps(ZRAM_SWAPS)
    assert [(a.path, a.size, a.used) for a in areas] == [
        ("/dev/zram0", 65532 * 1024, 16384 * 1024), ("/swapfile", 102396 * 1024, 0)]


def test_only_zram_counts_and_its_relief_follows_the_ratio_seen(tmp_path):
    proc, sys = zram_tree(tmp_path)
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
    proc, sys = zram_tree(tmp_path, swaps="Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    assert read_zram_swap(proc, sys) is None


@pytest.mark.parametrize("swaps,mm_stat", [
    ("Filename Type Size Used Priority\n/dev/zram0 partition 65532\n", None),
    ("Filename Type Size Used Priority\n/dev/zram0 partition many 0 100\n", None),
    (ZRAM_SWAPS, "12 garbage\n"),
])
def test_garbled_files_name_the_file(tmp_path, swaps, mm_stat):
    proc, sys = zram_tree(tmp_path, swaps=swaps, mm_stat=mm_stat or "1 1 1 0\n")
    with pytest.raises(ParseError) as err:
        read_zram_swap(proc, sys)
    assert "swaps" in str(err.value) or "mm_stat" in str(err.value)


def test_mm_stat_fields():
    assert parse_mm_stat("100 50 60 0 60 0 0 0", "x") == ZramStat(100, 60, 0)
