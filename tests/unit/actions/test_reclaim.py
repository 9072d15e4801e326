"""Reclaim against fake roots: the path and errno of what failed, bad levels refused,
memory.reclaim absent or written with the byte count."""
import os

from guardian.actions.reclaim import cgroup_reclaim, compact_memory, drop_caches


IS_ROOT = os.geteuid() == 0


def test_reclaim_on_a_fake_proc_root_reports_the_path(tmp_path):
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    r = drop_caches(1, proc_root=str(tmp_path))
    assert not r.ok and str(tmp_path / "sys/vm/drop_caches") in r.error and "ENOENT" in r.error
    r = compact_memory(proc_root=str(tmp_path))
    assert not r.ok and str(tmp_path / "sys/vm/compact_memory") in r.error
    assert list((tmp_path / "sys" / "vm").iterdir()) == []  # nothing was created
    r = drop_caches(1, proc_root=str(tmp_path / "nowhere"))
    assert not r.ok and "nowhere" in r.error


def test_drop_caches_rejects_bad_levels(tmp_path):
    for level in (0, 4, "3", True):
        r = drop_caches(level, proc_root=str(tmp_path))
        assert not r.ok and "level" in r.error


def test_reclaim_write_errors_are_reported_not_raised(tmp_path):
    vm = tmp_path / "sys" / "vm"
    vm.mkdir(parents=True)
    (vm / "drop_caches").write_text("")
    (vm / "drop_caches").chmod(0o400)
    if IS_ROOT:  # root bypasses file modes; a directory cannot be opened for writing either way
        (vm / "drop_caches").unlink()
        (vm / "drop_caches").mkdir()
    r = drop_caches(1, proc_root=str(tmp_path))
    assert not r.ok and str(vm / "drop_caches") in r.error


def test_cgroup_reclaim_without_memory_reclaim_is_not_supported(tmp_path):
    r = cgroup_reclaim(str(tmp_path), 1 << 20)
    assert (r.step, r.ok) == ("cgroup_reclaim", False)
    assert r.error.startswith("not supported") and str(tmp_path / "memory.reclaim") in r.error
    assert not (tmp_path / "memory.reclaim").exists()
    r = cgroup_reclaim(str(tmp_path / "gone"), 1 << 20)
    assert not r.ok and "gone" in r.error
    r = cgroup_reclaim(str(tmp_path), 0)
    assert not r.ok and "nbytes" in r.error


def test_cgroup_reclaim_writes_the_byte_count(tmp_path):
    (tmp_path / "memory.reclaim").write_text("")
    r = cgroup_reclaim(str(tmp_path), 12345)
    assert (r.ok, r.error) == (True, None)
    assert (tmp_path / "memory.reclaim").read_text() == "12345"
