"""AdjKeeper against a fake /proc (poll mode; the netlink path is in tests/integration/core/parts/test_adj.py)."""
import os

import pytest

from guardian.core.parts import adj as protect
from guardian.config import Config, Critical, LowPriority, Match
from guardian.kernel.procs import read_cmdline_text, read_procs
from guardian.core.parts.adj import AdjKeeper
from tests.support import fakeproc


def adj(root, pid):
    with open(os.path.join(root, str(pid), "oom_score_adj")) as f:
        return int(f.read())


CONFIG = Config(
    critical=(Critical("connman", Match(comm="connmand"), oom_score_adj=-900),
              Critical("sshd", Match(comm="sshd"), oom_score_adj=-900),
              Critical("app", Match(comm="app"), oom_score_adj=-500, optional=True)),
    low_priority=(LowPriority("webui", Match(comm="lighttpd"), oom_score_adj=500),
                  LowPriority("shipper", Match(comm="fluent-bit"))),
)


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "proc")
    fakeproc.process(root, 1, "init", 1)
    fakeproc.process(root, 2, "kthreadd", 0, kthread=True)
    fakeproc.process(root, 300, "connmand", 2)
    fakeproc.process(root, 310, "sshd", 2, adj=-1000)  # OpenSSH protects itself
    fakeproc.process(root, 320, "lighttpd", 3, adj=0)
    fakeproc.process(root, 330, "fluent-bit", 3, adj=100)
    fakeproc.process(root, 340, "bash", 1)
    return root


@pytest.fixture
def keeper(tree):
    k = AdjKeeper(CONFIG, tree)
    yield k
    k.close()


def test_fake_root_means_polling(keeper):
    assert keeper.fileno() is None
    assert keeper.poll_interval_s() == 1.0
    assert keeper.mode == "poll"


def test_apply_sets_critical_and_low_priority_and_reports_the_missing(tree, keeper):
    findings = keeper.apply(read_procs(tree))
    assert adj(tree, 300) == -900
    assert adj(tree, 310) == -1000  # already lower: left alone
    assert adj(tree, 320) == 500
    assert adj(tree, 330) == 100  # no oom_score_adj in its entry
    assert adj(tree, 340) == 0 and adj(tree, 1) == 0
    assert "critical 'connman': pid 300 (connmand): oom_score_adj 0 -> -900" in findings
    assert "low-priority 'webui': pid 320 (lighttpd): oom_score_adj 0 -> 500" in findings
    assert any("'sshd'" in f and "already below the wanted -900: left alone" in f for f in findings)
    assert "optional critical entries not running: app" in findings
    # repeated calls are quiet and cheap
    assert keeper.apply(read_procs(tree)) == []


def test_low_priority_is_never_lowered(tree, keeper):
    fakeproc.process(tree, 320, "lighttpd", 3, adj=800)
    keeper.apply(read_procs(tree))
    assert adj(tree, 320) == 800


def test_poll_catches_a_restart_under_a_new_pid(tree, keeper):
    keeper.apply(read_procs(tree))
    assert keeper.poll() == []
    # connmand dies and comes back as pid 400
    import shutil

    shutil.rmtree(os.path.join(tree, "300"))
    fakeproc.process(tree, 400, "connmand", 2)
    findings = keeper.poll()
    assert adj(tree, 400) == -900
    assert findings == ["critical 'connman' restarted: pid 400 (was 300)",
                        "critical 'connman': pid 400 (connmand): oom_score_adj 0 -> -900"]
    assert keeper.poll() == []


def test_poll_reports_a_missing_daemon_when_it_starts(tree, keeper):
    keeper.apply(read_procs(tree))
    fakeproc.process(tree, 500, "app", 2)
    findings = keeper.poll()
    assert findings[0] == "critical 'app' is running now: pid 500 (app)"
    assert adj(tree, 500) == -500


def test_poll_looks_again_at_new_processes_that_rename_themselves(tree, tmp_path):
    config = Config(critical=(Critical("node-red", Match(cmdline="node-red"), oom_score_adj=-500),))
    k = AdjKeeper(config, tree)
    k.apply(read_procs(tree))
    fakeproc.process(tree, 600, "node", 2, cmdline=["node", "/usr/lib/app.js"])
    assert k.poll() == []
    fakeproc.process(tree, 600, "node-red", 2, cmdline=["node-red"])  # process.title = "node-red"
    assert "oom_score_adj 0 -> -500" in k.poll()[-1]
    assert adj(tree, 600) == -500
    # after FRESH_POLLS, an unmatched process is not read again
    fakeproc.process(tree, 601, "node", 2, cmdline=["node", "x.js"])
    for _ in range(AdjKeeper.FRESH_POLLS + 1):
        k.poll()
    fakeproc.process(tree, 601, "node-red", 2, cmdline=["node-red"])
    assert k.poll() == []


def test_a_reused_pid_is_not_touched(tree, keeper, monkeypatch):
    keeper.apply(read_procs(tree))
    fakeproc.process(tree, 700, "connmand", 2, starttime=1000)
    real = protect.read_proc

    def stale(pid, proc_root):
        info = real(pid, proc_root)
        # the process read, then replaced by another with the same pid before the write
        fakeproc.process(tree, 700, "connmand", 2, starttime=2000)
        return info

    monkeypatch.setattr(protect, "read_proc", stale)
    keeper.poll()
    assert adj(tree, 700) == 0


def test_comm_prefilter_skips_full_reads(tree, keeper, monkeypatch):
    keeper.apply(read_procs(tree))
    calls = []
    real = protect.read_proc
    monkeypatch.setattr(protect, "read_proc", lambda pid, root: calls.append(pid) or real(pid, root))
    for pid in range(800, 820):
        fakeproc.process(tree, pid, "sh", 1)
    fakeproc.process(tree, 830, "connmand", 1)
    keeper.poll()
    assert calls == [830]


def test_update_config_applies_new_values_and_keeps_going(tree, keeper):
    keeper.apply(read_procs(tree))
    stricter = Config(critical=(Critical("connman", Match(comm="connmand"), oom_score_adj=-950),))
    findings = keeper.update_config(stricter)
    assert adj(tree, 300) == -950
    assert "critical 'connman': pid 300 (connmand): oom_score_adj -900 -> -950" in findings
    assert keeper.poll() == []


def test_write_failure_is_a_finding_not_an_exception(tree, keeper, monkeypatch):
    import errno

    def refuse(fd, data):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(protect, "_write_adj", refuse)
    findings = keeper.apply(read_procs(tree))
    assert ("critical 'connman': pid 300 (connmand): cannot set oom_score_adj -900 (now 0): Permission denied "
            "(lowering needs CAP_SYS_RESOURCE)") in findings
    assert adj(tree, 300) == 0
    assert keeper.apply(read_procs(tree)) == []  # said once, not on every pass


def test_cmdline_prefilter_reads_comm_and_cmdline_only(tree, monkeypatch):
    config = Config(critical=(Critical("connman", Match(comm="connmand")),
                              Critical("node-red", Match(cmdline=r"(^|/)node-red\b"))))
    k = AdjKeeper(config, tree)
    k.apply(read_procs(tree))
    calls = []
    real = protect.read_proc
    monkeypatch.setattr(protect, "read_proc", lambda pid, root: calls.append(pid) or real(pid, root))
    fakeproc.process(tree, 900, "node", 1, cmdline=["node", "/srv/other.js"])
    fakeproc.process(tree, 901, "node", 1, cmdline=["node", "/usr/bin/node-red"])
    k.poll()
    assert calls == [901]
    assert adj(tree, 901) == -900


def test_an_entry_without_comm_or_cmdline_needs_full_reads(tree, monkeypatch):
    k = AdjKeeper(Config(critical=(Critical("u", Match(unit="x.service")),)), tree)
    k.apply(read_procs(tree))
    calls = []
    real = protect.read_proc
    monkeypatch.setattr(protect, "read_proc", lambda pid, root: calls.append(pid) or real(pid, root))
    fakeproc.process(tree, 910, "sh", 1)
    k.poll()
    assert calls == [910]


def test_nothing_to_keep_means_no_polling(tree):
    k = AdjKeeper(Config(), tree)
    assert k.poll_interval_s() is None
    assert k.apply(read_procs(tree)) == []
    k.update_config(CONFIG)
    assert k.poll_interval_s() == 1.0


def test_the_prefilter_sees_the_cmdline_as_matching_does(tmp_path):
    """Whoever starts a process chooses its command line, up to megabytes: the keeper reads and
    searches the first MAX_MATCH_CHARS characters, as match.matches does, and no more."""
    from guardian.core.match import MAX_MATCH_CHARS
    root = str(tmp_path / "proc")
    fakeproc.process(root, 1, "init", 1)
    padding = "x" * (MAX_MATCH_CHARS + 1000)
    fakeproc.process(root, 400, "app", 2, cmdline=["/usr/bin/app", padding, "--role=vital"])
    fakeproc.process(root, 401, "app", 2, cmdline=["/usr/bin/app", "--role=vital", padding])
    config = Config(critical=(Critical("vital", Match(comm="app", cmdline=r"--role=vital"), oom_score_adj=-800),))
    k = AdjKeeper(config, root)
    try:
        assert len(read_cmdline_text(400, root, MAX_MATCH_CHARS)) == MAX_MATCH_CHARS
        assert k._could_match(400) is False  # past the window: neither the prefilter nor matching sees it
        assert k._could_match(401) is True
        k.apply(read_procs(root))
        assert adj(root, 400) == 0 and adj(root, 401) == -800
    finally:
        k.close()


def test_poll_lists_proc_only_when_a_pid_was_given_out(tree, keeper, monkeypatch):
    """/proc/loadavg's last PID unchanged since the last listing: no process can have started,
    and the poll reads that one small file instead of listing /proc."""
    def loadavg(last_pid):
        with open(os.path.join(tree, "loadavg"), "w") as f:
            f.write("0.00 0.01 0.05 1/120 %d\n" % last_pid)

    listed = []
    real_list = protect.list_pids
    monkeypatch.setattr(protect, "list_pids", lambda root: listed.append(root) or real_list(root))
    loadavg(340)
    keeper.apply(read_procs(tree))
    assert keeper.poll() == [] and len(listed) == 1  # the first poll lists: nothing to compare with yet
    import shutil

    shutil.rmtree(os.path.join(tree, "300"))
    fakeproc.process(tree, 400, "connmand", 2)  # a fake tree: the file was not told
    assert keeper.poll() == [] and len(listed) == 1
    assert adj(tree, 400) == 0
    loadavg(400)
    findings = keeper.poll()
    assert len(listed) == 2 and adj(tree, 400) == -900, findings
    assert keeper.poll() == [] and len(listed) == 2


def test_poll_lists_again_while_a_new_process_may_still_rename_itself(tree, tmp_path, monkeypatch):
    config = Config(critical=(Critical("node-red", Match(comm="node-red"), oom_score_adj=-900),))
    keeper = AdjKeeper(config, proc_root=tree)
    with open(os.path.join(tree, "loadavg"), "w") as f:
        f.write("0.00 0.01 0.05 1/120 600\n")
    keeper.apply(read_procs(tree))
    keeper.poll()
    fakeproc.process(tree, 600, "node", 2, cmdline=["node", "/usr/lib/app.js"])
    with open(os.path.join(tree, "loadavg"), "w") as f:
        f.write("0.00 0.01 0.05 1/120 601\n")
    keeper.poll()  # new, matches nothing yet: looked at again by the next polls
    fakeproc.process(tree, 600, "node-red", 2, cmdline=["node-red"])  # renamed; no new PID
    keeper.poll()
    assert adj(tree, 600) == -900
