"""Kernel log parsing: saved-log prefixes, kmsg records, OOM reports (whole, truncated,
interleaved), the kmsg reader and the daemon's watcher."""
import errno
import json
import os
import uuid

import pytest

from guardian.analysis.oomreport import parse_log_text, strip_prefix
from guardian.core.parts.oomwatch import KernelOomWatcher
from guardian.kernel import kmsg
from guardian.kernel.kmsg import KmsgReader, parse_record
from tests.unit import oom_samples as S


# ------------------------------------------------------------------------------------------
# Prefixes and records

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


def test_parse_record_with_metadata_and_escapes():
    rec = parse_record(b"4,1234,5678901,-,caller=T12;usb 1-1: new device \\x5cok\\x0asecond\n"
                       b" SUBSYSTEM=usb\n DEVICE=c189:4\n")
    assert (rec.level, rec.seq, rec.ts, rec.flags) == (4, 1234, 5.678901, "-")
    assert rec.message == "usb 1-1: new device \\ok\nsecond"
    assert parse_record(b"30,7,100,c;x\n").level == 6  # facility 3 (daemon), level 6
    assert parse_record(b"no header here\n") is None
    assert parse_record(b"a,b,c;x\n") is None


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
            "Memory cgroup out of memory: Killed process 10 (job) total-vm:900kB, anon-rss:800kB, file-rss:0kB, shmem-rss:0kB\n"
            "Tasks in /grp are going to be killed due to memory.oom.group set\n"
            "Memory cgroup out of memory: Killed process 11 (helper) total-vm:90kB, anon-rss:80kB, file-rss:0kB, shmem-rss:0kB\n"
            "Memory cgroup out of memory: Killed process 12 (helper) total-vm:90kB, anon-rss:80kB, file-rss:0kB, shmem-rss:0kB\n")
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


# ------------------------------------------------------------------------------------------
# The kmsg reader against a fake ring buffer

class FakeRing:
    """Stands in for os.read on /dev/kmsg: one record per read, EAGAIN when empty, EPIPE
    when records were overwritten."""

    def __init__(self):
        self.queue = []
        self.seq = 100

    def add(self, *lines, level=4, flags="-", usec=5_000_000):
        for line in lines:
            self.seq += 1
            escaped = line.replace("\\", "\\x5c").replace("\n", "\\x0a")
            self.queue.append(("%d,%d,%d,%s;%s\n" % (level, self.seq, usec, flags, escaped)).encode())

    def add_text(self, text, usec=5_000_000):
        """A saved log's kernel lines as records (without their dmesg/journal prefixes)."""
        messages = [strip_prefix(line)[0] for line in text.splitlines()]
        self.add(*[m for m in messages if m and m.strip()], usec=usec)

    def overwritten(self):
        self.queue.append(BrokenPipeError(errno.EPIPE, "overwritten"))

    def __call__(self, fd, size):
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "empty")
        item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        if len(item) > size:
            self.queue.insert(0, item)
            raise OSError(errno.EINVAL, "buffer too small")
        return item


@pytest.fixture
def ring(tmp_path, monkeypatch):
    fake = FakeRing()
    monkeypatch.setattr(KmsgReader, "_read", staticmethod(fake))
    path = tmp_path / "kmsg"
    path.write_bytes(b"")
    fake.path = str(path)
    return fake


def test_reader_records_epipe_and_big_records(ring):
    reader = KmsgReader(ring.path)
    ring.add("one")
    ring.overwritten()
    ring.add("two", "x" * 9000)
    got = [r.message for r in reader.records()]
    assert got == ["one", "two", "x" * 9000]
    assert reader.lost == 1
    assert list(reader.records()) == []  # EAGAIN: nothing new


def test_reader_joins_pre_4_9_continuation_pieces(ring):
    reader = KmsgReader(ring.path)
    ring.add("Node 0 Normal: ", flags="c")
    ring.add("12*4kB ", flags="+")
    ring.add("0*8kB = 48kB", flags="+")
    ring.add("next line")
    assert [r.message for r in reader.records()] == ["Node 0 Normal: 12*4kB 0*8kB = 48kB", "next line"]


def test_reader_unavailable_says_why(tmp_path):
    reader = KmsgReader(str(tmp_path / "absent"))
    assert reader.fileno() is None and "absent" in reader.error and list(reader.records()) == []


def test_real_dev_kmsg_starts_at_the_end_and_reads_new_records():
    try:
        reader = KmsgReader("/dev/kmsg")
    except Exception:  # pragma: no cover
        pytest.skip("no /dev/kmsg")
    if reader.fileno() is None:
        pytest.skip("cannot read /dev/kmsg: %s" % reader.error)
    marker = "guardian-test marker %s" % uuid.uuid4()
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(marker + "\n")
    except OSError as exc:
        reader.close()
        pytest.skip("cannot write /dev/kmsg: %s" % exc)
    try:
        messages = [r.message for r in reader.records()]
    finally:
        reader.close()
    assert any(marker in m for m in messages)
    assert len(messages) < 50  # it began at the end, not at the oldest record


# ------------------------------------------------------------------------------------------
# The watcher

class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


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
    ring.add("Memory cgroup out of memory: Killed process 3 (x) total-vm:9kB, anon-rss:2000kB, file-rss:1kB, shmem-rss:0kB")
    (report,) = watcher.check(1)
    assert report["memcg_limit_kb"] == 2048 and report["cause"] == "cgroup_limit"


def test_watcher_report_goes_through_telemetry(watcher, ring, tmp_path):
    from guardian.core.eventlog import read_events
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
    code = ("import sys; from guardian.core.parts.oomwatch import KernelOomWatcher; w = KernelOomWatcher(kmsg_path=%r); "
            "w.check(1); w.check(1); print('guardian.analysis.forensics' in sys.modules)" % str(tmp_path / "k"))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=60)
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


def test_kernel_cgroup_path():
    from guardian.core.parts.oomwatch import kernel_cgroup_path
    for mount in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        if os.path.isdir(mount) and os.stat(mount).st_dev != os.stat(os.path.dirname(mount)).st_dev:
            assert kernel_cgroup_path(mount) == "/"
            sub = [d for d in sorted(os.listdir(mount)) if os.path.isdir(os.path.join(mount, d))]
            if sub:
                assert kernel_cgroup_path(os.path.join(mount, sub[0])) == "/" + sub[0]
            return
    pytest.skip("no cgroup hierarchy mounted here")
