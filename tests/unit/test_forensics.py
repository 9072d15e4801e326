"""Classifying kernel OOM reports, the red flags of a system, and `guardian diagnose`."""
import io
import json
import os
from types import SimpleNamespace

import pytest

from guardian.analysis import forensics
from guardian.commands.audit import red_flags
from guardian.analysis.forensics import classify, nodes_from_zoneinfo, report_fields
from guardian.analysis.oomreport import parse_log_text
from guardian.commands.diagnose import cli_main
from tests.unit import oom_samples as S


def diagnose_one(text, **kw):
    reports = parse_log_text(text)
    assert len(reports) == 1
    return classify(reports[0], **kw)


@pytest.mark.parametrize("text, cause, words", [
    (S.CGROUP_OWN_LIMIT, "cgroup_limit", ["/system.slice/sensor-agent.service", "64.0 MiB", "failcnt 4711"]),
    (S.PARENT_LIMIT_OLD, "parent_cgroup_limit", ["parent cgroup /apps", "/apps/webui", "128.0 MiB"]),
    (S.HOST_SHORT, "host_memory", ["5.4 MiB free", "min watermark of 5.5 MiB", "no swap", "mqtt-bridge[1402]"]),
    (S.NUMA_CPUSET, "numa_node", ["cpuset", "node(s) 0", "10.0 MiB free", "solver[7781]"]),
    (S.NUMA_TWO_NODES, "numa_node", ["memory policy", "node(s) 1 had plenty"]),
    (S.FRAGMENTED, "fragmentation", ["order-3", "32 KiB", "37.1 MiB free", "low watermark 3.4 MiB",
                                     "no free block of order >= 3"]),
    (S.SLAB_LEAK, "host_memory", ["unreclaimable slab held 156.2 MiB"]),
    (S.CUT_SHORT, "host_memory", ["2.0 MiB free"]),
])
def test_each_class(text, cause, words):
    d = diagnose_one(text)
    assert d.cause == cause, d.summary
    for word in words:
        assert word in d.summary, (word, d.summary)
    assert d.advice and all(isinstance(a, str) and a for a in d.advice)
    assert d.title == forensics.CAUSES[cause]


def test_cgroup_v1_memory_and_swap_limit_is_named_as_such():
    text = S.CGROUP_OWN_LIMIT.replace("swap: usage 0kB, limit 0kB", "memory+swap: usage 70000kB, limit 70000kB")
    assert "memory+swap 68.4 MiB of 68.4 MiB" in diagnose_one(text).summary
    assert "swap" not in diagnose_one(S.CGROUP_OWN_LIMIT).summary  # v2 swap limit 0: nothing to say


def test_advice_fits_the_class():
    assert "memory.max" in " ".join(diagnose_one(S.CGROUP_OWN_LIMIT).advice)
    assert "each child" in " ".join(diagnose_one(S.PARENT_LIMIT_OLD).advice)
    assert "cpuset.mems" in diagnose_one(S.NUMA_CPUSET).advice[0]
    assert "--interleave" in diagnose_one(S.NUMA_TWO_NODES).advice[0]
    frag = " ".join(diagnose_one(S.FRAGMENTED).advice)
    assert "compact_memory" in frag and "min_free_kbytes" in frag
    host = " ".join(diagnose_one(S.HOST_SHORT).advice)
    assert "mqtt-bridge[1402]" in host and "zram" in host and "61 % of RAM" in host
    assert "slabinfo" in diagnose_one(S.SLAB_LEAK).advice[0]


def test_numbers_behind_the_verdicts():
    frag = diagnose_one(S.FRAGMENTED).numbers
    assert frag["order"] == 3 and frag["request_kb"] == 32 and frag["free_kb"] == 38000
    assert frag["free_blocks_at_order_or_above"] == 0 and frag["largest_free_order"] == 1
    cg = diagnose_one(S.CGROUP_OWN_LIMIT).numbers
    assert cg["usage_percent"] == 100.0 and cg["memcg_failcnt"] == 4711
    host = diagnose_one(S.HOST_SHORT).numbers
    assert host["free_kb"] == 5520 and host["min_kb"] == 5632 and host["swap_total_kb"] == 0
    assert host["largest_task"]["name"] == "mqtt-bridge"


def test_higher_order_failure_below_the_low_watermark_is_a_shortage_not_fragmentation():
    text = S.FRAGMENTED.replace("free:38000kB", "free:3000kB")
    assert diagnose_one(text).cause == "host_memory"


def test_higher_order_failure_with_blocks_left_is_not_fragmentation():
    text = S.FRAGMENTED.replace("0*16kB 0*32kB", "4*16kB 2*32kB")
    assert diagnose_one(text).cause == "host_memory"


def test_fragmentation_without_buddy_lists_says_it_is_likely():
    text = "\n".join(line for line in S.FRAGMENTED.splitlines() if "*4kB" not in line)
    d = diagnose_one(text)
    assert d.cause == "fragmentation" and "likely" in d.summary


def test_legacy_dma_zone_does_not_hide_fragmentation():
    extra = ("Jan  1 00:42:17 board kern.warn kernel: [ 2537.004590] Node 0 DMA free:15000kB boost:0kB min:100kB "
             "low:120kB high:140kB present:16384kB\n"
             "Jan  1 00:42:17 board kern.warn kernel: [ 2537.004690] Node 0 DMA: 0*4kB 0*8kB 1*16kB 2*32kB 3*64kB "
             "1*128kB 1*256kB 0*512kB 1*1024kB 1*2048kB 3*4096kB = 15000kB\n")
    lines = S.FRAGMENTED.splitlines(keepends=True)
    text = "".join(lines[:3]) + extra + "".join(lines[3:])
    assert diagnose_one(text).cause == "fragmentation"


def test_truncated_reports():
    global_only, memcg_only = [classify(r) for r in parse_log_text(S.ONLY_VICTIM)]
    assert global_only.cause == "unknown" and "system-wide" in global_only.advice[0]
    assert "log_buf_len" in " ".join(global_only.advice)
    assert memcg_only.cause == "cgroup_limit" and "not in the log" in memcg_only.summary


def test_interleaved_reports_classified_separately():
    causes = [classify(r).cause for r in parse_log_text(S.INTERLEAVED)]
    assert causes == ["parent_cgroup_limit", "cgroup_limit"]


def test_numa_uses_the_other_nodes_now_when_live():
    (r,) = parse_log_text(S.NUMA_CPUSET)
    now = {0: {"free_kb": 9000, "low_kb": 14000}, 1: {"free_kb": 3_000_000, "low_kb": 14000}}
    d = classify(r, nodes_now=now)
    assert "node 1 2.9 GiB" in d.summary and d.numbers["other_nodes_now"]["1"]["free_kb"] == 3_000_000


def test_nodes_from_zoneinfo():
    text = ("Node 0, zone      DMA\n  per-node stats\n      nr_inactive_anon 5\n  pages free     100\n"
            "        min      10\n        low      12\n        high     14\n  pagesets\n    cpu: 0\n"
            "              count: 3\n              high:  42\n"
            "Node 0, zone   Normal\n  pages free     200\n        min      20\n        low      24\n        high     28\n"
            "Node 1, zone   Normal\n  pages free     900\n        min      20\n        low      24\n        high     28\n")
    nodes = nodes_from_zoneinfo(text, page_kb=4)
    assert nodes[0] == {"free_kb": 1200, "min_kb": 120, "low_kb": 144, "high_kb": 168}
    assert nodes[1]["free_kb"] == 3600


def test_report_fields_shape():
    (r,) = parse_log_text(S.FRAGMENTED)
    f = report_fields(r)
    json.dumps(f)
    assert f["cause"] == "fragmentation" and f["summary"].startswith("fragmentation")
    assert f["evidence"]["order"] == 3 and f["kills"] == 1 and f["victim_name"] == "camera-daemon"


# ------------------------------------------------------------------------------------------
# Red flags

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def fake_system(root, total_kb=262144, sunreclaim_kb=4000, swap_kb=0, pid1_anon_kb=3000, thp="always madvise [never]",
                overcommit="0", ratio="50", commit_limit_kb=None, allocating="0", panic="0"):
    proc, sys_ = os.path.join(root, "proc"), os.path.join(root, "sys")
    commit_limit_kb = commit_limit_kb if commit_limit_kb is not None else total_kb // 2
    write(os.path.join(proc, "meminfo"),
          "MemTotal: %d kB\nMemFree: 1000 kB\nMemAvailable: 2000 kB\nSUnreclaim: %d kB\nSwapTotal: %d kB\n"
          "SwapFree: %d kB\nCommitLimit: %d kB\n" % (total_kb, sunreclaim_kb, swap_kb, swap_kb, commit_limit_kb))
    write(os.path.join(proc, "1", "status"), "Name:\tsystemd\nVmRSS:\t%d kB\nRssAnon:\t%d kB\n" % (
        pid1_anon_kb + 1000, pid1_anon_kb))
    write(os.path.join(proc, "1", "comm"), "systemd\n")
    write(os.path.join(sys_, "kernel", "mm", "transparent_hugepage", "enabled"), thp + "\n")
    for name, value in (("overcommit_memory", overcommit), ("overcommit_ratio", ratio),
                        ("oom_kill_allocating_task", allocating), ("panic_on_oom", panic)):
        write(os.path.join(proc, "sys", "vm", name), value + "\n")
    return proc, sys_


def flag_names(proc, sys_):
    return {f["flag"] for f in red_flags(proc, sys_)}


def test_a_quiet_system_has_only_the_no_swap_flag(tmp_path):
    assert flag_names(*fake_system(str(tmp_path))) == {"no_swap"}
    assert flag_names(*fake_system(str(tmp_path), swap_kb=65536)) == set()


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
    proc, sys_ = fake_system(str(tmp_path), swap_kb=65536, **kw)
    flags = red_flags(proc, sys_)
    assert [f["flag"] for f in flags] == [flag]
    assert flags[0]["detail"] and flags[0]["advice"]


def test_red_flag_numbers(tmp_path):
    proc, sys_ = fake_system(str(tmp_path), sunreclaim_kb=30000, pid1_anon_kb=40000)
    flags = {f["flag"]: f for f in red_flags(proc, sys_)}
    assert "11.4 %" in flags["slab_unreclaimable"]["detail"]
    assert flags["pid1_rss_anon"]["numbers"] == {"rss_anon_kb": 40000, "threshold_kb": 262144 // 20}
    assert "systemd" in flags["pid1_rss_anon"]["detail"]


def test_pid1_threshold_scales_with_memory(tmp_path):
    # 12 MiB is a lot on a 256 MiB board, ordinary on a 4 GiB one.
    assert "pid1_rss_anon" in flag_names(*fake_system(str(tmp_path / "a"), pid1_anon_kb=14000))
    assert "pid1_rss_anon" not in flag_names(*fake_system(str(tmp_path / "b"), total_kb=4 << 20, pid1_anon_kb=14000))


def test_thp_always_is_a_red_flag_under_2_gib_only(tmp_path):
    assert "thp_always" not in flag_names(*fake_system(str(tmp_path), total_kb=4 << 20, thp="[always] madvise never"))


def test_red_flags_on_an_empty_tree(tmp_path):
    assert red_flags(str(tmp_path / "proc"), str(tmp_path / "sys")) == []


# ------------------------------------------------------------------------------------------
# guardian diagnose

def run(capsys, **kw):
    args = SimpleNamespace(**{"log": None, "json": False, "proc_root": "/nonexistent", "sys_root": "/nonexistent", **kw})
    code = cli_main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_diagnose_a_saved_log_as_json(tmp_path, capsys):
    log = tmp_path / "dmesg.txt"
    log.write_text(S.HOST_SHORT + S.INTERLEAVED + S.FRAGMENTED)
    proc, sys_ = fake_system(str(tmp_path), thp="[always] madvise never")
    code, out, _ = run(capsys, log=str(log), json=True, proc_root=proc, sys_root=sys_)
    assert code == 0
    data = json.loads(out)
    assert [r["cause"] for r in data["reports"]] == ["host_memory", "parent_cgroup_limit", "cgroup_limit",
                                                      "fragmentation"]
    assert {f["flag"] for f in data["red_flags"]} == {"no_swap", "thp_always"}
    assert data["log"] == str(log)


def test_diagnose_text(tmp_path, capsys):
    log = tmp_path / "journal.txt"
    log.write_text(S.NUMA_CPUSET + S.ONLY_VICTIM)
    code, out, _ = run(capsys, log=str(log))
    assert code == 0
    assert "kernel OOM reports in %s: 3" % log in out
    assert "#1: the allowed NUMA node(s) short of memory" in out and "#2 at 9000.000 s after boot" in out
    assert "killed solver[7781]" in out and "(partial report: missing header" in out
    assert "red flags of this system: none" in out


def test_diagnose_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(S.CGROUP_OWN_LIMIT))
    code, out, _ = run(capsys, log="-", json=True)
    assert code == 0 and json.loads(out)["reports"][0]["cause"] == "cgroup_limit"


def test_diagnose_missing_log_file(tmp_path, capsys):
    code, out, err = run(capsys, log=str(tmp_path / "nope.txt"))
    assert code == 1 and "nope.txt" in err


def test_diagnose_without_a_readable_kernel_log(tmp_path, capsys):
    code, out, err = run(capsys, kmsg=str(tmp_path / "no-kmsg"))
    assert code == 1 and "--log FILE" in err and "no-kmsg" in out


def test_diagnose_reads_the_kernel_log_when_no_file_is_given(tmp_path, capsys, monkeypatch):
    from guardian.kernel.kmsg import KmsgReader
    records = [("4,%d,1000,-;%s\n" % (i, line)).encode() for i, line in enumerate(S.CGROUP_OWN_LIMIT.splitlines())]

    def fake_read(fd, size):
        if not records:
            raise BlockingIOError()
        return records.pop(0)

    monkeypatch.setattr(KmsgReader, "_read", staticmethod(fake_read))
    kmsg = tmp_path / "kmsg"
    kmsg.write_bytes(b"")
    code, out, _ = run(capsys, kmsg=str(kmsg), json=True)
    assert code == 0
    (report,) = json.loads(out)["reports"]
    assert report["cause"] == "cgroup_limit" and report["kernel_time_s"] == 0.001
