"""Classifying kernel OOM reports (forensics.py): the cause of each sample report, the
numbers and advice behind it, the NUMA nodes now, the fields of a kernel_oom event."""
import json

import pytest

from guardian.analysis import forensics
from guardian.analysis.forensics import classify, nodes_from_zoneinfo, report_fields
from guardian.analysis.oomreport import parse_log_text
from tests.support import oom_samples as S


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
            "Node 0, zone   Normal\n  pages free     200\n        min      20\n        low      24\n"
            "        high     28\n"
            "Node 1, zone   Normal\n  pages free     900\n        min      20\n        low      24\n"
            "        high     28\n")
    nodes = nodes_from_zoneinfo(text, page_kb=4)
    assert nodes[0] == {"free_kb": 1200, "min_kb": 120, "low_kb": 144, "high_kb": 168}
    assert nodes[1]["free_kb"] == 3600


def test_report_fields_shape():
    (r,) = parse_log_text(S.FRAGMENTED)
    f = report_fields(r)
    json.dumps(f)
    assert f["cause"] == "fragmentation" and f["summary"].startswith("fragmentation")
    assert f["evidence"]["order"] == 3 and f["kills"] == 1 and f["victim_name"] == "camera-daemon"
