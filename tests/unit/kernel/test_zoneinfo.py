"""/proc/zoneinfo against fake trees: the watermarks summed over zones, and files missing,
empty, truncated or garbled."""
import os

import pytest

from guardian.kernel import ParseError, zoneinfo
from tests.support.fakeproc import write_at


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
    write_at(tmp_path, "zoneinfo", ZONEINFO)
    w = zoneinfo.parse_zoneinfo(ZONEINFO)
    assert w == zoneinfo.Watermarks(min=(22 + 1411) * 4096, low=(27 + 1763) * 4096, high=(32 + 2115) * 4096)
    assert zoneinfo.parse_zoneinfo(ZONEINFO, page_size=16384).min == (22 + 1411) * 16384
    page = os.sysconf("SC_PAGE_SIZE")
    assert zoneinfo.read_watermarks(str(tmp_path)).low == (27 + 1763) * page


def test_zoneinfo_missing_is_none(tmp_path):
    assert zoneinfo.read_watermarks(str(tmp_path)) is None


def test_zoneinfo_empty(tmp_path):
    path = write_at(tmp_path, "zoneinfo", "")
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
