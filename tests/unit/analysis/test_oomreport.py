"""Kernel OOM reports parsed from log lines: the prefixes of saved logs, whole reports of
each shape, and truncated or interleaved ones (the samples are tests/support/oom_samples.py)."""
import json

import pytest

from guardian.analysis.oomreport import parse_log_text, strip_prefix
from tests.support import oom_samples as S


# ------------------------------------------------------------------------------------------
# Prefixes of saved logs

@pytest.mark.parametrize("line, message, ts", [
    ("[  812.331000] hello world", "hello world", 812.331),
    ("Mar 03 10:15:01 edge-17 kernel: hello", "hello", None),
    ("Mar  3 10:15:01 edge-17 kernel: [ 12.500000] hello", "hello", 12.5),
    ("2024-03-03T10:15:01+0100 edge-17 kernel: hello", "hello", None),
    ("2024-03-03T10:15:01.123456+01:00 edge-17 kernel: hello", "hello", None),
    ("Jan  1 00:42:17 board kern.warn kernel: [ 2537.004400] hello", "hello", 2537.0044),
    ("[  600.000100] edge-17 kernel: hello", "hello", 600.0001),  # journalctl -o short-monotonic
    ("<4>[   1.000000] hello", "hello", 1.0),
    ("kern  :warn  : [ 3.250000] hello", "hello", 3.25),
    ("  active_file:70 inactive_file:41", "  active_file:70 inactive_file:41", None),
])
def test_strip_prefix(line, message, ts):
    got, got_ts = strip_prefix(line)
    assert got == message
    assert got_ts == (pytest.approx(ts) if ts is not None else None)


@pytest.mark.parametrize("line", [
    "Mar 03 11:00:01 edge-17 systemd[1]: Out of memory: Killed process 1 (fake)",
    "2024-03-03T10:15:01+0100 edge-17 sshd[900]: Accepted publickey",
])
def test_strip_prefix_drops_other_programs_lines(line):
    assert strip_prefix(line) == (None, None)


# ------------------------------------------------------------------------------------------
# Whole reports

def one(text):
    reports = parse_log_text(text)
    assert len(reports) == 1, reports
    return reports[0]


def test_cgroup_report_fields():
    r = one(S.CGROUP_OWN_LIMIT)
    assert r.invoker == "sensor-agent" and r.invoker_pid == 2211
    assert r.gfp_mask == "0xcc0(GFP_KERNEL)" and r.order == 0 and r.invoker_oom_score_adj == 200
    assert r.constraint == "CONSTRAINT_MEMCG"
    assert r.oom_memcg == r.task_memcg == "/system.slice/sensor-agent.service"
    assert (r.memcg_usage_kb, r.memcg_limit_kb, r.memcg_failcnt) == (65536, 65536, 4711)
    (v,) = r.victims
    assert (v.pid, v.comm, v.total_vm_kb, v.anon_rss_kb, v.file_rss_kb, v.shmem_rss_kb) == (
        2211, "sensor-agent", 163840, 62720, 1320, 0)
    assert (v.uid, v.pgtables_kb, v.oom_score_adj) == (998, 180, 200)
    assert r.memcg_victim is True
    assert r.as_fields()["victims"][0]["shmem_rss_kb"] == 0  # a zero is a value, not a gap
    assert (r.memcg_swap_usage_kb, r.memcg_swap_limit_kb) == (0, 0)
    assert r.top_tasks[0] == {"pid": 2211, "name": "sensor-agent", "rss_kb": 16010 * 4, "oom_score_adj": 200}
    assert r.missing() == []


def test_host_report_zones_buddy_swap_tasks():
    r = one(S.HOST_SHORT)
    assert r.order == 0 and r.global_oom is True and r.constraint == "CONSTRAINT_NONE"
    assert r.mems_allowed == "0" and r.task_memcg == "/"
    (z,) = r.zones
    assert (z.node, z.zone, z.free_kb, z.min_kb, z.low_kb, z.high_kb) == (0, "DMA", 5520, 5632, 7040, 8448)
    assert z.buddy == (240, 140, 60, 20, 8, 2, 0, 0, 0, 0, 0) and z.buddy_block_kb == 4
    assert (r.swap_free_kb, r.swap_total_kb, r.ram_pages) == (0, 0, 65536)
    assert r.slab_unreclaimable_kb == 3100 * 4  # from the multi-line Mem-Info record
    assert [t["name"] for t in r.top_tasks] == ["mqtt-bridge", "webui", "dropbear", "udevd"]
    assert r.victims[0].anon_rss_kb == 158900 and r.victims[0].uid == 1000
    assert r.kernel_time_s == pytest.approx(812.331)


def test_old_kernel_shape():
    r = one(S.PARENT_LIMIT_OLD)
    assert r.nodemask == "(null)" and r.order == 0
    assert (r.task_memcg, r.oom_memcg) == ("/apps/webui", "/apps")
    assert r.memcg_memsw_limit_kb == 9007199254740988 and r.memcg_swap_limit_kb is None
    (v,) = r.victims
    assert v.score == 690 and v.anon_rss_kb == 89700 and v.reaped and v.uid is None
    assert [t["name"] for t in r.top_tasks] == ["webui", "logrotate"]


def test_multi_node_and_memory_policy():
    r = one(S.NUMA_TWO_NODES)
    assert r.constraint == "CONSTRAINT_MEMORY_POLICY" and r.nodemask == "0" and r.mems_allowed == "0-1"
    assert sorted((z.node, z.free_kb) for z in r.zones) == [(0, 9000), (1, 2900000)]


def test_mems_allowed_with_commas_and_flags():
    r = one("oom-kill:constraint=CONSTRAINT_CPUSET,nodemask=(null),cpuset=db,mems_allowed=0-1,3,global_oom,"
            "task_memcg=/db,task=pg,pid=5,uid=70\n"
            "Out of memory: Killed process 5 (pg) total-vm:10kB, anon-rss:8kB, file-rss:1kB, shmem-rss:0kB\n")
    assert r.mems_allowed == "0-1,3" and r.global_oom is True and r.cpuset == "db" and r.task_memcg == "/db"


def test_comm_with_spaces_and_parentheses():
    r = one("Web Content invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
            "Out of memory: Killed process 44 (a) b (c)) total-vm:10kB, anon-rss:8kB, file-rss:1kB, shmem-rss:0kB\n")
    assert r.invoker == "Web Content" and r.victims[0].comm == "a) b (c)"


def test_oom_group_kills_several_in_one_report():
    text = ("job invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
            "memory: usage 1024kB, limit 1024kB, failcnt 1\n"
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/grp,"
            "task_memcg=/grp,task=job,pid=10,uid=0\n"
            "Memory cgroup out of memory: Killed process 10 (job) total-vm:900kB, anon-rss:800kB, file-rss:0kB, "
            "shmem-rss:0kB\n"
            "Tasks in /grp are going to be killed due to memory.oom.group set\n"
            "Memory cgroup out of memory: Killed process 11 (helper) total-vm:90kB, anon-rss:80kB, file-rss:0kB, "
            "shmem-rss:0kB\n"
            "Memory cgroup out of memory: Killed process 12 (helper) total-vm:90kB, anon-rss:80kB, file-rss:0kB, "
            "shmem-rss:0kB\n")
    r = one(text)
    assert [v.pid for v in r.victims] == [10, 11, 12] and r.oom_group == "/grp"


def test_no_killable_processes():
    r = one("init invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
            "Out of memory and no killable processes...\n")
    assert r.no_killable and r.finished and r.victims == [] and r.missing() == ["constraint"]


# ------------------------------------------------------------------------------------------
# Truncated and interleaved

def test_only_victim_lines_are_two_reports_missing_their_headers():
    first, second = parse_log_text(S.ONLY_VICTIM)
    assert first.victims[0].comm == "leaky" and first.memcg_victim is False
    assert second.victims[0].comm == "leaky2" and second.memcg_victim is True
    assert "header" in first.missing() and "header" in second.missing()
    assert first.as_fields()["truncated"] is True


def test_log_cut_in_the_middle_of_the_task_table():
    r = one(S.CUT_SHORT)
    assert r.invoker == "hog" and r.zones[0].free_kb == 2000
    assert r.victims == [] and "victim" in r.missing()
    assert r.top_tasks == []  # the torn row is not half-parsed
    fields = r.as_fields()
    assert fields["truncated"] is True and "victim" in fields["missing"]


def test_interleaved_lines_and_back_to_back_reports():
    first, second = parse_log_text(S.INTERLEAVED)
    assert first.invoker == "worker" and first.invoker_pid == 4100
    assert first.memcg_usage_kb == 32768 and first.oom_memcg == "/jobs" and first.task_memcg == "/jobs/batch-7"
    assert [v.pid for v in first.victims] == [4100]  # the systemd line mimicking a kill is not the kernel's
    assert second.invoker == "cruncher" and second.oom_memcg == "/jobs/batch-8"
    assert first.kernel_time_s == pytest.approx(600.0001) and second.kernel_time_s == pytest.approx(601.5)


def test_a_header_interrupting_an_unfinished_report():
    text = S.CUT_SHORT.rsplit("\n", 2)[0] + "\n" + S.CGROUP_OWN_LIMIT
    first, second = parse_log_text(text)
    assert first.invoker == "hog" and not first.finished
    assert second.invoker == "sensor-agent" and second.finished


def test_garbage_never_raises():
    noise = "\n".join([
        "x invoked oom-killer: gfp_mask=zzz, order=abc",
        "Node 0 Normal free:kB min:",
        "Node 0 Normal: 1*4kB = ",
        "[  pid  ]",
        "[ 12] 1 2",
        "oom-kill:",
        "memory: usage kB",
        "Killed process x (y) total-vm:",
        "\x00\xff",
    ])
    reports = parse_log_text(noise)
    assert len(reports) == 1 and reports[0].order is None


def test_as_fields_are_json_and_safe_for_telemetry():
    for text in (S.CGROUP_OWN_LIMIT, S.HOST_SHORT, S.FRAGMENTED, S.ONLY_VICTIM, S.CUT_SHORT):
        for r in parse_log_text(text):
            fields = r.as_fields()
            json.dumps(fields)
            assert not {"kind", "message", "time", "event"} & set(fields)
