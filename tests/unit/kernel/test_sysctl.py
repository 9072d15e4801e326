"""/proc/sys settings read one at a time from a fake tree."""
from guardian.kernel import sysctl
from tests.support.fakeproc import write_at


def test_sysctl(tmp_path):
    write_at(tmp_path, "sys/vm/overcommit_memory", "2\n")
    write_at(tmp_path, "sys/vm/min_free_kbytes", "  3798\n")
    assert sysctl.read_sysctl("vm.overcommit_memory", str(tmp_path)) == "2"
    assert sysctl.read_sysctl("vm/min_free_kbytes", str(tmp_path)) == "3798"
    assert sysctl.read_sysctl("vm.panic_on_oom", str(tmp_path)) is None
