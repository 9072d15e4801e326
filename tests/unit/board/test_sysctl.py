"""The [sysctl] table: applied at start (with safety checks), reported by check."""
import os

from guardian.board.sysctl import EXPLAIN, REPORTED, apply_sysctls, check_setting, report_sysctls
from tests.support import fakeproc


def tree(tmp_path, **values):
    root = str(tmp_path / "proc")
    defaults = {"overcommit_memory": "0", "overcommit_ratio": "50", "overcommit_kbytes": "0", "panic_on_oom": "0",
                "min_free_kbytes": "2048", "watermark_scale_factor": "10", "oom_kill_allocating_task": "0",
                "swappiness": "60"}
    defaults.update(values)
    for k, v in defaults.items():
        fakeproc.write(os.path.join(root, "sys", "vm", k), v + "\n")
    fakeproc.meminfo(root, total_mib=256, avail_mib=200)
    return root


def read(root, key):
    with open(os.path.join(root, "sys", *key.split("."))) as f:
        return f.read().strip()


def test_every_issue_setting_is_known_and_explained():
    for key in ("vm.overcommit_memory", "vm.overcommit_ratio", "vm.panic_on_oom", "vm.min_free_kbytes",
                "vm.watermark_scale_factor", "vm.oom_kill_allocating_task", "vm.swappiness"):
        assert key in REPORTED and EXPLAIN[key]
    assert "CommitLimit" in EXPLAIN["vm.overcommit_memory"]
    assert "panic" in EXPLAIN["vm.panic_on_oom"]


def test_check_setting():
    assert check_setting("vm.overcommit_memory", "2") is None
    assert check_setting("vm.overcommit_memory", "3") == "expected one of 0, 1, 2"
    assert check_setting("vm.swappiness", "x") == "expected an integer"
    assert check_setting("net.core.rmem_max", "1") is not None


def test_apply_writes_what_differs_and_reports_each(tmp_path):
    root = tree(tmp_path)
    results = apply_sysctls({"vm.min_free_kbytes": "4096", "vm.swappiness": "60", "vm.nonexistent_knob": "1"}, root)
    by_key = {r.key: r for r in results}
    assert by_key["vm.min_free_kbytes"].status == "set" and by_key["vm.min_free_kbytes"].before == "2048"
    assert read(root, "vm.min_free_kbytes") == "4096"
    assert by_key["vm.swappiness"].status == "ok"
    assert by_key["vm.nonexistent_knob"].status == "missing"
    assert "(was 2048)" in str(by_key["vm.min_free_kbytes"])


def test_dry_run_writes_nothing(tmp_path):
    root = tree(tmp_path)
    (r,) = apply_sysctls({"vm.swappiness": "10"}, root, dry_run=True)
    assert r.status == "would-set" and read(root, "vm.swappiness") == "60"


def test_ratio_is_applied_before_strict_overcommit(tmp_path):
    root = tree(tmp_path)
    results = apply_sysctls({"vm.overcommit_memory": "2", "vm.overcommit_ratio": "90"}, root)
    assert [r.key for r in results] == ["vm.overcommit_ratio", "vm.overcommit_memory"]
    assert all(r.status == "set" for r in results)


def test_strict_overcommit_that_would_fail_every_allocation_is_refused(tmp_path):
    root = tree(tmp_path)
    # 256 MiB, ratio 50: CommitLimit 128 MiB; Committed_AS 200 MiB
    fakeproc.write(os.path.join(root, "meminfo"), "MemTotal: 262144 kB\nMemFree: 1000 kB\nMemAvailable: 1000 kB\n"
                   "SwapTotal: 0 kB\nCommitLimit: 131072 kB\nCommitted_AS: 204800 kB\n")
    (r,) = apply_sysctls({"vm.overcommit_memory": "2"}, root)
    assert r.status == "refused" and read(root, "vm.overcommit_memory") == "0"
    assert "raise vm.overcommit_ratio to about 98" in r.error
    (r,) = report_sysctls({"vm.overcommit_memory": "2"}, root, include_unset=False)
    assert r.status == "differs" and "refused" in r.error


def test_huge_min_free_is_refused(tmp_path):
    root = tree(tmp_path)
    (r,) = apply_sysctls({"vm.min_free_kbytes": "65536"}, root)  # 25 % of 256 MiB
    assert r.status == "refused"


def test_a_write_the_kernel_ignores_is_a_failure(tmp_path):
    root = tree(tmp_path)
    path = os.path.join(root, "sys", "vm", "swappiness")
    os.chmod(path, 0o444)
    if os.geteuid() == 0:  # root writes read-only files: make the path a directory instead
        os.remove(path)
        os.mkdir(path)
    (r,) = apply_sysctls({"vm.swappiness": "10"}, root)
    assert r.status in ("failed", "missing")


def test_report_lists_the_well_known_settings_the_board_leaves(tmp_path):
    root = tree(tmp_path, swappiness="30")
    results = report_sysctls({"vm.swappiness": "10"}, root)
    keys = [r.key for r in results]
    assert keys[0] == "vm.swappiness" and results[0].status == "differs"
    assert set(keys) == set(REPORTED)
    assert all(r.status == "unset" for r in results[1:])
