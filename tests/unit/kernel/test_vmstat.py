"""/proc/vmstat against fake trees: counters, and files missing, empty, truncated or garbled."""
import pytest

from guardian.kernel import ParseError, vmstat
from tests.support.fakeproc import write_at


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
    write_at(tmp_path, "vmstat", VMSTAT)
    v = vmstat.read_vmstat(str(tmp_path))
    assert len(v) == 17
    assert v["oom_kill"] == 2
    assert v["pgmajfault"] == 10432
    assert v["pgscan_direct"] == 1771


def test_vmstat_missing_is_none(tmp_path):
    assert vmstat.read_vmstat(str(tmp_path)) is None


def test_vmstat_empty_is_empty(tmp_path):
    write_at(tmp_path, "vmstat", "")
    assert vmstat.read_vmstat(str(tmp_path)) == {}


def test_vmstat_truncated_last_line_names_the_line(tmp_path):
    path = write_at(tmp_path, "vmstat", VMSTAT + "pgsteal_an")
    with pytest.raises(ParseError) as e:
        vmstat.read_vmstat(str(tmp_path))
    assert e.value.path == path and e.value.field == "line 18"
    assert "pgsteal_an" in str(e.value)


def test_vmstat_garbled_value():
    with pytest.raises(ParseError, match=r"line 2 \(pgfault\).*integer.*'12x'"):
        vmstat.parse_vmstat("nr_free_pages 1\npgfault 12x\n")
