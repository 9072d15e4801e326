"""System-wide kernel readers (meminfo, psi, vmstat, buddyinfo, zoneinfo, sysctl) against
fake /proc trees built in tmp_path."""
import errno
import os

import pytest

from guardian.kernel import ParseError, buddyinfo, meminfo, psi, sysctl, vmstat, zoneinfo

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


def write(root, rel, text, mode="w"):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- meminfo


def test_meminfo_modern_kernel_in_bytes(tmp_path):
    write(tmp_path, "meminfo", MEMINFO_510)
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
    write(tmp_path, "meminfo", MEMINFO_310)
    m = meminfo.read_meminfo(str(tmp_path))
    assert m.available_estimated is True
    assert m.available == (5120 + 16384 + 20480) * KB
    # no swap lines at all -> 0
    assert m.swap_total == 0 and m.swap_free == 0
    assert m.anon == 65536 * KB


def test_meminfo_without_file_lru_estimates_from_cached_and_buffers(tmp_path):
    write(tmp_path, "meminfo", MEMINFO_2618)
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
    path = write(tmp_path, "meminfo", "")
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.path == path
    assert e.value.field == "MemTotal"
    assert path in str(e.value) and "MemTotal" in str(e.value)


def test_meminfo_truncated_after_memtotal_names_memfree(tmp_path):
    write(tmp_path, "meminfo", "MemTotal:         505412 kB\n")
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.field == "MemFree"


def test_meminfo_truncated_mid_line(tmp_path):
    write(tmp_path, "meminfo", MEMINFO_510[:MEMINFO_510.index("MemAvailable") + 13])
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    assert e.value.field == "MemAvailable"


def test_meminfo_garbled_value_names_file_field_and_expectation(tmp_path):
    path = write(tmp_path, "meminfo", MEMINFO_510.replace("MemFree:           23764 kB", "MemFree: lots kB"))
    with pytest.raises(ParseError) as e:
        meminfo.read_meminfo(str(tmp_path))
    msg = str(e.value)
    assert path in msg and "MemFree" in msg and "number" in msg and "'lots'" in msg


def test_meminfo_garbled_unit_and_line(tmp_path):
    with pytest.raises(ParseError, match="Cached.*unit kB"):
        meminfo.parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\nCached: 5 MB\n")
    with pytest.raises(ParseError, match="Key: value"):
        meminfo.parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\n\x00\x00garbage\n")


# ---------------------------------------------------------------- psi

PSI_MEMORY = """\
some avg10=1.53 avg60=0.87 avg300=0.21 total=12345678
full avg10=0.50 avg60=0.25 avg300=0.05 total=2345678
"""


def test_psi_some_and_full(tmp_path):
    write(tmp_path, "pressure/memory", PSI_MEMORY)
    p = psi.read_psi(str(tmp_path))
    assert p.some == psi.PsiLine(1.53, 0.87, 0.21, 12345678)
    assert p.full == psi.PsiLine(0.50, 0.25, 0.05, 2345678)


def test_psi_cpu_on_old_kernel_has_no_full_line(tmp_path):
    write(tmp_path, "pressure/cpu", "some avg10=12.00 avg60=3.10 avg300=0.99 total=987\n")
    p = psi.read_psi(str(tmp_path), "cpu")
    assert p.some.avg10 == 12.0 and p.some.total == 987
    assert p.full is None


def test_psi_absent_is_none(tmp_path):
    assert psi.read_psi(str(tmp_path)) is None


@pytest.mark.parametrize("code", sorted({errno.EOPNOTSUPP, errno.ENOTSUP}))
def test_psi_disabled_is_none(tmp_path, monkeypatch, code):
    # With psi=0 on the command line the file may exist but reading it fails.
    write(tmp_path, "pressure/memory", PSI_MEMORY)

    def refuse(path, bufsize=8192):
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr(psi, "read_text", refuse)
    assert psi.read_psi(str(tmp_path)) is None


def test_psi_other_read_errors_propagate(tmp_path, monkeypatch):
    write(tmp_path, "pressure/memory", PSI_MEMORY)

    def broken(path, bufsize=8192):
        raise OSError(errno.EIO, "I/O error", path)

    monkeypatch.setattr(psi, "read_text", broken)
    with pytest.raises(OSError) as e:
        psi.read_psi(str(tmp_path))
    assert e.value.errno == errno.EIO


def test_psi_empty_file(tmp_path):
    path = write(tmp_path, "pressure/memory", "")
    with pytest.raises(ParseError) as e:
        psi.read_psi(str(tmp_path))
    assert e.value.path == path and e.value.field == "some"


def test_psi_truncated_line_names_missing_key(tmp_path):
    write(tmp_path, "pressure/memory", "some avg10=1.53 avg60=0.87")
    with pytest.raises(ParseError, match="avg300"):
        psi.read_psi(str(tmp_path))


def test_psi_garbled_values():
    with pytest.raises(ParseError, match="some"):
        psi.parse_psi("some avg10=abc avg60=0.87 avg300=0.21 total=1\n")
    with pytest.raises(ParseError, match="full.*key=value"):
        psi.parse_psi("some avg10=0 avg60=0 avg300=0 total=1\nfull avg10 0\n")


def test_psi_unknown_line_kinds_are_ignored():
    p = psi.parse_psi("some avg10=0.10 avg60=0 avg300=0 total=5\nfuture x=y\n")
    assert p.some.avg10 == 0.10 and p.full is None


# ---------------------------------------------------------------- vmstat

VMSTAT = """\
nr_free_pages 5941
nr_zone_inactive_anon 27583
nr_zone_active_anon 25975
nr_zone_inactive_file 17463
nr_zone_active_file 25437
pgpgin 1434488
pgpgout 220120
pswpin 113
pswpout 1067
pgfault 11238401
pgmajfault 10432
pgsteal_kswapd 207861
pgsteal_direct 1289
pgscan_kswapd 263841
pgscan_direct 1771
oom_kill 2
workingset_refault_file 53321
"""


def test_vmstat_counters(tmp_path):
    write(tmp_path, "vmstat", VMSTAT)
    v = vmstat.read_vmstat(str(tmp_path))
    assert len(v) == 17
    assert v["oom_kill"] == 2
    assert v["pgmajfault"] == 10432
    assert v["pgscan_direct"] == 1771


def test_vmstat_missing_is_none(tmp_path):
    assert vmstat.read_vmstat(str(tmp_path)) is None


def test_vmstat_empty_is_empty(tmp_path):
    write(tmp_path, "vmstat", "")
    assert vmstat.read_vmstat(str(tmp_path)) == {}


def test_vmstat_truncated_last_line_names_the_line(tmp_path):
    path = write(tmp_path, "vmstat", VMSTAT + "pgsteal_an")
    with pytest.raises(ParseError) as e:
        vmstat.read_vmstat(str(tmp_path))
    assert e.value.path == path and e.value.field == "line 18"
    assert "pgsteal_an" in str(e.value)


def test_vmstat_garbled_value():
    with pytest.raises(ParseError, match=r"line 2 \(pgfault\).*integer.*'12x'"):
        vmstat.parse_vmstat("nr_free_pages 1\npgfault 12x\n")


# ---------------------------------------------------------------- buddyinfo

BUDDYINFO = """\
Node 0, zone      DMA      3      2      4      3      3      1      1      1      1      1      0
Node 0, zone   Normal   1186    735    400    101     12      4      0      0      0      0      0
Node 0, zone  HighMem     40     20     10      5      2      1      1      0      0      0      0
"""


def test_buddyinfo_zones(tmp_path):
    write(tmp_path, "buddyinfo", BUDDYINFO)
    zones = buddyinfo.read_buddyinfo(str(tmp_path))
    assert [z.zone for z in zones] == ["DMA", "Normal", "HighMem"]
    assert zones[1] == buddyinfo.BuddyZone(0, "Normal", (1186, 735, 400, 101, 12, 4, 0, 0, 0, 0, 0))
    assert all(len(z.free_blocks) == 11 for z in zones)


def test_buddyinfo_high_order_free_bytes():
    zones = buddyinfo.parse_buddyinfo(BUDDYINFO)
    # order >= 4: DMA 3*16+1*32+1*64+1*128+1*256+1*512, Normal 12*16+4*32, HighMem 2*16+1*32+1*64
    pages = (48 + 32 + 64 + 128 + 256 + 512) + (192 + 128) + (32 + 32 + 64)
    assert buddyinfo.high_order_free_bytes(zones) == pages * 4096
    assert buddyinfo.high_order_free_bytes(zones, min_order=10, page_size=16384) == 0
    assert buddyinfo.high_order_free_bytes(zones, min_order=0, page_size=1) == sum(
        n << order for z in zones for order, n in enumerate(z.free_blocks))
    assert buddyinfo.high_order_free_bytes(()) == 0


def test_buddyinfo_multi_node():
    zones = buddyinfo.parse_buddyinfo("Node 1, zone   Normal   1 2\n")
    assert zones == (buddyinfo.BuddyZone(1, "Normal", (1, 2)),)


def test_buddyinfo_missing_and_empty(tmp_path):
    assert buddyinfo.read_buddyinfo(str(tmp_path)) is None
    write(tmp_path, "buddyinfo", "")
    assert buddyinfo.read_buddyinfo(str(tmp_path)) == ()


def test_buddyinfo_garbled(tmp_path):
    path = write(tmp_path, "buddyinfo", BUDDYINFO.replace("  101  ", "  1o1  "))
    with pytest.raises(ParseError) as e:
        buddyinfo.read_buddyinfo(str(tmp_path))
    assert e.value.path == path and "line 2" in e.value.field and "Normal" in e.value.field
    with pytest.raises(ParseError, match="line 1.*Node N, zone NAME"):
        buddyinfo.parse_buddyinfo("Node 0 zone Normal 1 2 3\n")
    with pytest.raises(ParseError, match="line 2"):
        buddyinfo.parse_buddyinfo(BUDDYINFO[:BUDDYINFO.index("Normal") + 3])


# ---------------------------------------------------------------- zoneinfo

ZONEINFO = """\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 27583
      nr_active_anon 25975
      nr_inactive_file 17463
      nr_active_file 25437
  pages free     1007
        boost    0
        min      22
        low      27
        high     32
        spanned  4095
        present  3998
        managed  3977
        cma      0
        protection: (0, 1906, 1906, 1906)
      nr_free_pages 1007
      nr_zone_inactive_anon 0
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 6
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone   Normal
  pages free     4934
        boost    0
        min      1411
        low      1763
        high     2115
        spanned  524288
        present  500000
        managed  487958
        protection: (0, 0, 0, 0)
      nr_free_pages 4934
  pagesets
    cpu: 0
              count: 187
              high:  378
              batch: 63
    cpu: 1
              count: 120
              high:  378
              batch: 63
  node_unreclaimable:  0
  start_pfn:           4096
Node 0, zone  Movable
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        spanned  0
        present  0
        managed  0
        protection: (0, 0, 0, 0)
"""


def test_zoneinfo_sums_watermarks_over_zones(tmp_path):
    write(tmp_path, "zoneinfo", ZONEINFO)
    w = zoneinfo.parse_zoneinfo(ZONEINFO)
    assert w == zoneinfo.Watermarks(min=(22 + 1411) * 4096, low=(27 + 1763) * 4096, high=(32 + 2115) * 4096)
    assert zoneinfo.parse_zoneinfo(ZONEINFO, page_size=16384).min == (22 + 1411) * 16384
    page = os.sysconf("SC_PAGE_SIZE")
    assert zoneinfo.read_watermarks(str(tmp_path)).low == (27 + 1763) * page


def test_zoneinfo_missing_is_none(tmp_path):
    assert zoneinfo.read_watermarks(str(tmp_path)) is None


def test_zoneinfo_empty(tmp_path):
    path = write(tmp_path, "zoneinfo", "")
    with pytest.raises(ParseError) as e:
        zoneinfo.read_watermarks(str(tmp_path))
    assert e.value.path == path and "Node" in str(e.value)


def test_zoneinfo_truncated_zone_is_an_error():
    text = ZONEINFO[:ZONEINFO.index("low      1763")]
    with pytest.raises(ParseError) as e:
        zoneinfo.parse_zoneinfo(text)
    assert "Normal" in e.value.field and "low" in e.value.field


def test_zoneinfo_garbled_value():
    with pytest.raises(ParseError, match="Normal min.*page count.*'1x11'"):
        zoneinfo.parse_zoneinfo(ZONEINFO.replace("min      1411", "min      1x11"))


def test_sysctl(tmp_path):
    write(tmp_path, "sys/vm/overcommit_memory", "2\n")
    write(tmp_path, "sys/vm/min_free_kbytes", "  3798\n")
    assert sysctl.read_sysctl("vm.overcommit_memory", str(tmp_path)) == "2"
    assert sysctl.read_sysctl("vm/min_free_kbytes", str(tmp_path)) == "3798"
    assert sysctl.read_sysctl("vm.panic_on_oom", str(tmp_path)) is None
