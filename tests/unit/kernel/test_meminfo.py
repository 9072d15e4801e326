"""/proc/meminfo against fake trees: a modern kernel, kernels without MemAvailable or the
file LRU counters, and files missing, empty, truncated or garbled."""
import pytest

from guardian.kernel import ParseError, meminfo
from tests.support.fakeproc import write_at


KB = 1024

# A 512 MiB ARM board on a 5.10 kernel.
MEMINFO_510 = """\
MemTotal:         505412 kB
MemFree:           23764 kB
MemAvailable:     187604 kB
Buffers:           11236 kB
Cached:           171020 kB
SwapCached:          412 kB
Active:           205648 kB
Inactive:         180184 kB
Active(anon):     103900 kB
Inactive(anon):   110332 kB
Active(file):     101748 kB
Inactive(file):    69852 kB
Unevictable:        8192 kB
Mlocked:            8192 kB
SwapTotal:        102396 kB
SwapFree:          98812 kB
Dirty:                92 kB
Writeback:             0 kB
AnonPages:        206980 kB
Mapped:            86672 kB
Shmem:              8040 kB
KReclaimable:      19376 kB
Slab:              43096 kB
SReclaimable:      19376 kB
SUnreclaim:        23720 kB
KernelStack:        2848 kB
PageTables:         4836 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:      355100 kB
Committed_AS:     712224 kB
VmallocTotal:     522240 kB
VmallocUsed:        9336 kB
VmallocChunk:          0 kB
Percpu:              560 kB
CmaTotal:          65536 kB
CmaFree:             512 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
"""

# A 3.10 kernel: MemAvailable appeared in 3.14. No swap configured in the kernel: no
# SwapTotal/SwapFree lines at all.
MEMINFO_310 = """\
MemTotal:         124668 kB
MemFree:            5120 kB
Buffers:            2048 kB
Cached:            30720 kB
SwapCached:            0 kB
Active:            61440 kB
Inactive:          40960 kB
Active(anon):      45056 kB
Inactive(anon):    20480 kB
Active(file):      16384 kB
Inactive(file):    20480 kB
Unevictable:           0 kB
Mlocked:               0 kB
Dirty:                 8 kB
Writeback:             0 kB
AnonPages:         65536 kB
Mapped:            12288 kB
Shmem:               512 kB
Slab:               8192 kB
SReclaimable:       3072 kB
SUnreclaim:         5120 kB
CommitLimit:       62332 kB
Committed_AS:     150000 kB
"""

# A 2.6.18-era kernel: not even Active(file)/Inactive(file) nor AnonPages... beyond this.
MEMINFO_2618 = """\
MemTotal:          62000 kB
MemFree:            4000 kB
Buffers:            1000 kB
Cached:             9000 kB
SwapCached:            0 kB
Active:            30000 kB
Inactive:          20000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
"""



def test_meminfo_modern_kernel_in_bytes(tmp_path):
    write_at(tmp_path, "meminfo", MEMINFO_510)
    m = meminfo.read_meminfo(str(tmp_path))
    assert m.total == 505412 * KB
    assert m.free == 23764 * KB
    assert m.available == 187604 * KB
    assert m.available_estimated is False
    assert m.cached == 171020 * KB
    assert m.anon == 206980 * KB
    assert m.swap_total == 102396 * KB
    assert m.swap_free == 98812 * KB
    assert m.committed_as == 712224 * KB
    assert m.commit_limit == 355100 * KB
    assert m.sunreclaim == 23720 * KB


def test_meminfo_without_memavailable_estimates_from_file_lru(tmp_path):
    write_at(tmp_path, "meminfo", MEMINFO_310)
    m = meminfo.read_meminfo(str(tmp_path))
    assert m.available_estimated is True
    assert m.available == (5120 + 16384 + 20480) * KB
    # no swap lines at all -> 0
    assert m.swap_total == 0 and m.swap_free == 0
    assert m.anon == 65536 * KB


def test_meminfo_without_file_lru_estimates_from_cached_and_buffers(tmp_path):
    write_at(tmp_path, "meminfo", MEMINFO_2618)
    m = meminfo.read_meminfo(str(tmp_path))
    assert m.available_estimated is True
    assert m.available == (4000 + 9000 + 1000) * KB
    assert m.anon is None
    assert m.committed_as is None and m.commit_limit is None and m.sunreclaim is None


def test_meminfo_minimal_file_is_enough():
    m = meminfo.parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\n")
    assert (m.total, m.free, m.cached) == (1000 * KB, 10 * KB, 0)
    assert m.available == 10 * KB and m.available_estimated


def test_meminfo_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        meminfo.read_meminfo(str(tmp_path))


def test_meminfo_empty_file_names_memtotal(tmp_path):
    path = write_at(tmp_path, "meminfo", "")
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.path == path
    assert e.value.field == "MemTotal"
    assert path in str(e.value) and "MemTotal" in str(e.value)


def test_meminfo_truncated_after_memtotal_names_memfree(tmp_path):
    write_at(tmp_path, "meminfo", "MemTotal:         505412 kB\n")
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.field == "MemFree"


def test_meminfo_truncated_mid_line(tmp_path):
    write_at(tmp_path, "meminfo", MEMINFO_510[:MEMINFO_510.index("MemAvailable") + 13])
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.field == "MemAvailable"


def test_meminfo_garbled_value_names_file_field_and_expectation(tmp_path):
    path = write_at(tmp_path, "meminfo", MEMINFO_510.replace("MemFree:           23764 kB", "MemFree: lots kB"))
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    msg = str(e.value)
    assert path in msg and "MemFree" in msg and "number" in msg and "'lots'" in msg


def test_meminfo_garbled_unit_and_line(tmp_path):
    with pytest.raises(ParseError, match="Cached.*unit kB"):
        meminfo.parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\nCached: 5 MB\n")
    with pytest.raises(ParseError, match="Key: value"):
        meminfo.parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\n\x00\x00garbage\n")


def test_glance_reads_memtotal_and_memavailable_from_the_raw_file():
    assert meminfo.glance_meminfo(MEMINFO_510.encode()) == (505412 * KB, 187604 * KB)


@pytest.mark.parametrize("raw", [
    b"",
    b"MemFree: 1 kB\nMemTotal: 2 kB\nMemAvailable: 1 kB\n",  # MemTotal not first: not this file's shape
    b"MemTotal: 2 kB\nMemFree: 1 kB\n",  # kernel < 3.14: no MemAvailable
    b"MemTotal: lots kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",
    b"MemTotal: 2 kB\nMemFree: 1 kB\nMemAvailable: \n",  # truncated
])
def test_glance_gives_none_for_what_only_a_full_parse_can_explain(raw):
    assert meminfo.glance_meminfo(raw) is None


def test_glance_agrees_with_the_full_parse():
    info = meminfo.parse_meminfo(MEMINFO_510)
    assert meminfo.glance_meminfo(MEMINFO_510.encode()) == (info.total, info.available)


def test_the_full_ticks_parse_agrees_with_the_line_by_line_one():
    fast = meminfo._wanted_fields(MEMINFO_510)
    assert fast and fast == meminfo._parse_fields(MEMINFO_510, "/proc/meminfo", meminfo.WANTED)


@pytest.mark.parametrize("text", [
    MEMINFO_510[:-1],  # truncated last line
    MEMINFO_510.replace("MemFree:           23764 kB", "MemFree: lots kB"),
    MEMINFO_510.replace("Cached:           171020 kB", "Cached: 5 MB"),
    "MemTotal: 1 kB\nMemFree: 1 kB\n\x00\x00garbage\n",
])
def test_the_full_ticks_parse_leaves_anything_off_to_the_line_by_line_one(text):
    assert meminfo._wanted_fields(text) is None
