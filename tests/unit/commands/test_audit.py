"""The red flags of a system (audit.red_flags) against fake /proc and /sys trees."""
import pytest

from guardian.commands.audit import red_flags
from tests.support.fakeproc import red_flag_system


def flag_names(proc, sys_):
    return {f["flag"] for f in red_flags(proc, sys_)}


def test_a_quiet_system_has_only_the_no_swap_flag(tmp_path):
    assert flag_names(*red_flag_system(str(tmp_path))) == {"no_swap"}
    assert flag_names(*red_flag_system(str(tmp_path), swap_kb=65536)) == set()


@pytest.mark.parametrize("kw, flag", [
    (dict(sunreclaim_kb=30000), "slab_unreclaimable"),
    (dict(pid1_anon_kb=40000), "pid1_rss_anon"),
    (dict(thp="[always] madvise never"), "thp_always"),
    (dict(overcommit="1"), "overcommit_always"),
    (dict(overcommit="2", ratio="300", commit_limit_kb=800000), "overcommit_ratio_high"),
    (dict(allocating="1"), "oom_kill_allocating_task"),
    (dict(panic="1"), "panic_on_oom"),
])
def test_each_red_flag(tmp_path, kw, flag):
    proc, sys_ = red_flag_system(str(tmp_path), swap_kb=65536, **kw)
    flags = red_flags(proc, sys_)
    assert [f["flag"] for f in flags] == [flag]
    assert flags[0]["detail"] and flags[0]["advice"]


def test_red_flag_numbers(tmp_path):
    proc, sys_ = red_flag_system(str(tmp_path), sunreclaim_kb=30000, pid1_anon_kb=40000)
    flags = {f["flag"]: f for f in red_flags(proc, sys_)}
    assert "11.4 %" in flags["slab_unreclaimable"]["detail"]
    assert flags["pid1_rss_anon"]["numbers"] == {"rss_anon_kb": 40000, "threshold_kb": 262144 // 20}
    assert "systemd" in flags["pid1_rss_anon"]["detail"]


def test_pid1_threshold_scales_with_memory(tmp_path):
    # 12 MiB is a lot on a 256 MiB board, ordinary on a 4 GiB one.
    assert "pid1_rss_anon" in flag_names(*red_flag_system(str(tmp_path / "a"), pid1_anon_kb=14000))
    assert "pid1_rss_anon" not in flag_names(*red_flag_system(str(tmp_path / "b"), total_kb=4 << 20,
                                                              pid1_anon_kb=14000))


def test_thp_always_is_a_red_flag_under_2_gib_only(tmp_path):
    assert "thp_always" not in flag_names(*red_flag_system(str(tmp_path), total_kb=4 << 20,
                                                           thp="[always] madvise never"))


def test_red_flags_on_an_empty_tree(tmp_path):
    assert red_flags(str(tmp_path / "proc"), str(tmp_path / "sys")) == []
