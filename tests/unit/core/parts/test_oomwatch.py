"""The daemon's kernel OOM watcher against a fake ring buffer (the `ring` fixture): when
it reads the log, what it reports and when, and that the idle watcher does not load the diagnosis."""
import pytest

from guardian.analysis.oomreport import strip_prefix
from guardian.core.parts.oomwatch import KernelOomWatcher
from guardian.kernel import kmsg
from tests.support import REPO
from tests.support import oom_samples as S
from tests.support.fakes import Clock


@pytest.fixture
def watcher(ring, tmp_path):
    clock = Clock()
    w = KernelOomWatcher(proc_root=str(tmp_path), kmsg_path=ring.path, clock=clock, wait_s=1.0)
    w.clock_ = clock
    yield w
    w.close()


def test_watcher_reports_a_kill_once_with_its_diagnosis(watcher, ring):
    assert watcher.check(5) == []  # the first count is the baseline
    ring.add_text(S.CGROUP_OWN_LIMIT)
    (report,) = watcher.check(6)
    assert report["cause"] == "cgroup_limit" and report["source"] == "kmsg"
    assert report["victim_name"] == "sensor-agent" and report["count"] == 6 and report["kills"] == 1
    assert "64.0 MiB" in report["summary"] and report["advice"]
    assert report["truncated"] is False
    watcher.clock_.t += 10
    assert watcher.check(6) == []  # no second, count-only report for the same kill


def test_watcher_ignores_the_log_while_the_count_stands_still(watcher, ring):
    watcher.check(5)
    ring.add_text(S.HOST_SHORT)
    assert watcher.check(5) == []
    assert len(ring.queue) > 0  # not even read: the idle tick costs nothing
    (report,) = watcher.check(6)
    assert report["cause"] == "host_memory"


def test_watcher_waits_for_the_victim_line(watcher, ring):
    watcher.check(0)
    lines = [line for line in S.HOST_SHORT.splitlines() if line.strip()]
    ring.add(*[strip_prefix(line)[0] for line in lines[:-1]])
    assert watcher.check(1) == []  # counted, but the report is not finished yet
    ring.add(strip_prefix(lines[-1])[0])
    watcher.clock_.t += 0.5
    (report,) = watcher.check(1)
    assert report["victim_name"] == "mqtt-bridge" and report["truncated"] is False


def test_watcher_gives_up_waiting_and_reports_what_it_has(watcher, ring):
    watcher.check(0)
    ring.add_text(S.CUT_SHORT)
    assert watcher.check(1) == []
    watcher.clock_.t += 1.5
    (report,) = watcher.check(1)
    assert report["truncated"] is True and "victim" in report["missing"]
    assert report["invoker"] == "hog"
    watcher.clock_.t += 5
    assert watcher.check(1) == []


def test_watcher_reports_kills_the_log_does_not_explain(watcher, ring):
    watcher.check(3)
    assert watcher.check(5) == []
    watcher.clock_.t += 2
    (report,) = watcher.check(5)
    assert report["source"] == "vmstat" and report["new"] == 2 and report["cause"] == "unknown"
    assert report["truncated"] is True


def test_watcher_without_kmsg_reports_counts_at_once(tmp_path):
    w = KernelOomWatcher(proc_root=str(tmp_path), kmsg_path=str(tmp_path / "nope"))
    assert not w.available
    w.check(1)
    (report,) = w.check(2)
    assert report["source"] == "vmstat" and "nope" in report["summary"]
    w.close()


def test_watcher_polled_reports_are_not_repeated_when_the_count_catches_up(watcher, ring):
    watcher.check(7)
    ring.add_text(S.FRAGMENTED)
    (report,) = watcher.drain_reports()
    assert report["cause"] == "fragmentation"
    watcher.clock_.t += 3
    assert watcher.check(8) == []
    watcher.clock_.t += 3
    assert watcher.check(8) == []


def test_watcher_without_a_count_reads_every_time(watcher, ring):
    assert watcher.check(None) == []
    ring.add_text(S.INTERLEAVED)
    reports = watcher.check(None)
    assert [r["cause"] for r in reports] == ["parent_cgroup_limit", "cgroup_limit"]


def test_watcher_notes_records_lost_inside_a_report(watcher, ring):
    watcher.check(0)
    lines = [strip_prefix(line)[0] for line in S.HOST_SHORT.splitlines() if line.strip()]
    ring.add(*lines[:5])
    ring.overwritten()
    ring.add(*lines[-2:])
    (report,) = watcher.check(1)
    assert report["records_lost"] == 1


def test_watcher_multi_line_record(watcher, ring):
    watcher.check(0)
    ring.add("x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
    ring.add("memory: usage 2048kB, limit 2048kB, failcnt 9\nswap: usage 0kB, limit 0kB, failcnt 0")
    ring.add("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,"
             "task_memcg=/a,task=x,pid=3,uid=0")
    ring.add("Memory cgroup out of memory: Killed process 3 (x) total-vm:9kB, anon-rss:2000kB, file-rss:1kB, "
             "shmem-rss:0kB")
    (report,) = watcher.check(1)
    assert report["memcg_limit_kb"] == 2048 and report["cause"] == "cgroup_limit"


def test_watcher_report_goes_through_telemetry(watcher, ring, tmp_path):
    from guardian.core.eventfiles import read_events
    from guardian.core.telemetry import Telemetry
    tell = Telemetry(state_file=None, events_file=str(tmp_path / "ev.jsonl"))
    watcher.check(0)
    ring.add_text(S.HOST_SHORT)
    for report in watcher.check(1):
        tell.event("kernel_oom", report["summary"], **report)
    tell.close()
    (record,) = list(read_events(str(tmp_path / "ev.jsonl")))
    assert record["event"] == "kernel_oom" and record["cause"] == "host_memory"
    assert record["zones"][0]["buddy"][0] == 240 and record["victim_pid"] == 1402


def test_watcher_reads_zoneinfo_for_other_nodes_under_a_cpuset(watcher, ring, tmp_path):
    (tmp_path / "zoneinfo").write_text(
        "Node 0, zone   Normal\n  pages free     2560\n        min      2816\n        low      3520\n"
        "        high     4224\nNode 1, zone   Normal\n  pages free     700000\n        min      2816\n"
        "        low      3520\n        high     4224\n")
    watcher.check(0)
    ring.add_text(S.NUMA_CPUSET)
    (report,) = watcher.check(1)
    assert report["cause"] == "numa_node"
    assert "node 1" in report["summary"] and report["evidence"]["other_nodes_now"]["1"]["free_kb"] == 700000 * 4


def test_the_idle_watcher_does_not_load_the_diagnosis(tmp_path):
    """guardian.analysis.forensics is imported at the first report, not at start (idle RSS)."""
    import subprocess
    import sys
    code = ("import sys; from guardian.core.parts.oomwatch import KernelOomWatcher; "
            "w = KernelOomWatcher(kmsg_path=%r); "
            "w.check(1); w.check(1); print('guardian.analysis.forensics' in sys.modules)" % str(tmp_path / "k"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    assert kmsg.KMSG_PATH == "/dev/kmsg"


def test_watcher_guarding_a_cgroup_leaves_out_other_cgroups_reports(watcher, ring):
    watcher.scope_cgroup = "/jobs/batch-8"
    watcher.check(0)
    ring.add_text(S.INTERLEAVED)  # /jobs (parent of batch-7) and /jobs/batch-8
    (report,) = watcher.check(1)
    assert report["oom_memcg"] == "/jobs/batch-8"
    watcher.scope_cgroup = "/jobs"
    ring.add_text(S.INTERLEAVED)
    assert len(watcher.check(2)) == 2
