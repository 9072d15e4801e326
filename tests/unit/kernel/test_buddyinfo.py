"""/proc/buddyinfo against fake trees: free blocks per zone, the free bytes in blocks of
a high order, several nodes, and files missing, empty or garbled."""
import pytest

from guardian.kernel import ParseError, buddyinfo
from tests.support.fakeproc import write_at


BUDDYINFO = """\
Node 0, zone      DMA      3      2      4      3      3      1      1      1      1      1      0
Node 0, zone   Normal   1186    735    400    101     12      4      0      0      0      0      0
Node 0, zone  HighMem     40     20     10      5      2      1      1      0      0      0      0
"""


def test_buddyinfo_zones(tmp_path):
    write_at(tmp_path, "buddyinfo", BUDDYINFO)
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
    write_at(tmp_path, "buddyinfo", "")
    assert buddyinfo.read_buddyinfo(str(tmp_path)) == ()


def test_buddyinfo_garbled(tmp_path):
    path = write_at(tmp_path, "buddyinfo", BUDDYINFO.replace("  101  ", "  1o1  "))
    with pytest.raises(ParseError) as e:
        buddyinfo.read_buddyinfo(str(tmp_path))
    assert e.value.path == path and "line 2" in e.value.field and "Normal" in e.value.field
    with pytest.raises(ParseError, match="line 1.*Node N, zone NAME"):
        buddyinfo.parse_buddyinfo("Node 0 zone Normal 1 2 3\n")
    with pytest.raises(ParseError, match="line 2"):
        buddyinfo.parse_buddyinfo(BUDDYINFO[:BUDDYINFO.index("Normal") + 3])
