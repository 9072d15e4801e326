"""The process table reader against fake /proc/<pid> trees built in tmp_path."""
import errno
import os

import pytest

from guardian.kernel import procs
from guardian.kernel.procs import PF_KTHREAD, ProcInfo


KB = 1024

STATUS_TEMPLATE = """\
Name:\t{name}
Umask:\t0022
State:\t{state}
Tgid:\t{pid}
Ngid:\t0
Pid:\t{pid}
PPid:\t{ppid}
TracerPid:\t0
Uid:\t{uid}\t{euid}\t{euid}\t{euid}
Gid:\t100\t100\t100\t100
FDSize:\t64
Groups:\t100 101
NStgid:\t{pid}
NSpid:\t{pid}
NSpgid:\t{pgid}
NSsid:\t{pgid}
{mem}Threads:\t3
SigQ:\t0/3674
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000000001000
SigCgt:\t0000000180004a02
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Cpus_allowed:\tf
Cpus_allowed_list:\t0-3
Mems_allowed:\t1
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t1520
nonvoluntary_ctxt_switches:\t88
"""

MEM_LINES = """\
VmPeak:\t  123456 kB
VmSize:\t  120000 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t   {rss} kB
VmRSS:\t   {rss} kB
RssAnon:\t   {anon} kB
RssFile:\t   {file} kB
RssShmem:\t   {shmem} kB
VmData:\t   50000 kB
VmStk:\t     132 kB
VmExe:\t     400 kB
VmLib:\t    9000 kB
VmPTE:\t      96 kB
VmSwap:\t       0 kB
"""

CGROUP_HYBRID = """\
11:pids:/system.slice/app.service
10:cpu,cpuacct:/system.slice/app.service
4:memory:/system.slice/app.service
1:name=systemd:/system.slice/app.service
0::/system.slice/app.service
"""

CGROUP_V2 = "0::/system.slice/app.service\n"


def stat_line(pid, comm, state="S", ppid=1, pgid=None, flags=0x00400100, starttime=5000, rss_pages=100):
    pgid = pid if pgid is None else pgid
    fields = [state, ppid, pgid, pgid, 34816, pgid, flags, 1000, 0, 5, 0, 120, 45, 0, 0, 20, 0, 3, 0,
              starttime, 122880000, rss_pages, 18446744073709551615, 65536, 70000, 0, 0, 0, 0, 4096, 17410,
              0, 0, 0, 17, 1, 0, 0, 0, 0, 0]
    return "%d (%s) %s\n" % (pid, comm, " ".join(str(f) for f in fields))


def make_proc(root, pid, comm="app", state="S", ppid=1, pgid=None, flags=0x00400100, starttime=5000,
              uid=1000, euid=None, rss=8000, anon=6000, file=1800, shmem=200, mem=True,
              cmdline=b"/usr/bin/app\0--serve\0", oom_score=667, oom_score_adj=0, cgroup=CGROUP_HYBRID,
              skip=(), status=None, stat=None):
    d = os.path.join(str(root), str(pid))
    os.makedirs(d, exist_ok=True)
    mem_lines = MEM_LINES.format(rss=rss, anon=anon, file=file, shmem=shmem) if mem else ""
    files = {
        "stat": stat if stat is not None else stat_line(pid, comm, state, ppid, pgid, flags, starttime),
        "status": status if status is not None else STATUS_TEMPLATE.format(
            name=comm[:15], state=state, pid=pid, ppid=ppid, pgid=pgid or pid, uid=uid,
            euid=uid if euid is None else euid, mem=mem_lines),
        "cmdline": cmdline,
        "oom_score": "%s\n" % oom_score,
        "oom_score_adj": "%d\n" % oom_score_adj,
        "cgroup": cgroup,
    }
    for name, content in files.items():
        if name in skip:
            continue
        with open(os.path.join(d, name), "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    return d


def test_ordinary_process(tmp_path):
    make_proc(tmp_path, 1234, comm="app", ppid=321, pgid=1200, starttime=98765, uid=1000, euid=0)
    p = procs.read_proc(1234, str(tmp_path))
    assert p == ProcInfo(
        pid=1234, ppid=321, pgid=1200, comm="app", cmdline=("/usr/bin/app", "--serve"), uid=1000,
        rss=8000 * KB, rss_anon=6000 * KB, oom_score=667, oom_score_adj=0, kthread=False,
        cgroup="/system.slice/app.service", starttime=98765)


@pytest.mark.parametrize("comm", ["my prog", "a) b", "x (y) z", ")", "((", "evil) S 1 2 3", ""])
def test_comm_with_spaces_and_parentheses(tmp_path, comm):
    make_proc(tmp_path, 77, comm=comm, ppid=55, pgid=66, starttime=4242, flags=0x00400040)
    p = procs.read_proc(77, str(tmp_path))
    assert p.comm == comm
    assert (p.ppid, p.pgid, p.starttime, p.kthread) == (55, 66, 4242, False)


def test_kernel_thread(tmp_path):
    make_proc(tmp_path, 2, comm="kthreadd", ppid=0, pgid=0, flags=0x00208040, uid=0, mem=False,
              cmdline=b"", oom_score=0, cgroup="0::/\n")
    make_proc(tmp_path, 45, comm="kworker/0:1H-kblockd", ppid=2, pgid=0, flags=0x04208060, uid=0,
              mem=False, cmdline=b"", oom_score=0, cgroup="0::/\n")
    for pid in (2, 45):
        p = procs.read_proc(pid, str(tmp_path))
        assert p.kthread is True
        assert p.rss == 0 and p.rss_anon == 0
        assert p.cmdline == ()
        assert p.uid == 0 and p.oom_score == 0
        assert p.cgroup == ""  # never read: a kernel thread never matches an entry nor is ended
    assert procs.read_proc(45, str(tmp_path)).comm == "kworker/0:1H-kblockd"


def test_a_real_kernel_thread_is_read_from_its_stat_alone():
    """kthreadd (pid 2) on this machine: only its directory and stat are opened."""
    p = procs.read_proc(2)
    if p is None or not p.kthread:
        pytest.skip("pid 2 is not kthreadd here (a pid namespace): %r" % (p,))
    opened = []
    real_open = procs._open

    def spy(path, flags, *args, **kw):
        opened.append(path)
        return real_open(path, flags, *args, **kw)

    procs._open = spy
    try:
        again = procs.read_proc(2)
    finally:
        procs._open = real_open
    assert again.kthread and again.cgroup == "" and again.cmdline == ()
    assert opened == ["/proc/2", "stat"], opened
    me = procs.read_proc(os.getpid())
    assert not me.kthread and me.cgroup and me.cmdline  # a process still has all of them read


def test_pf_kthread_bit_alone_decides(tmp_path):
    make_proc(tmp_path, 10, flags=PF_KTHREAD)
    make_proc(tmp_path, 11, flags=0xFFFFFFFF & ~PF_KTHREAD)
    assert procs.read_proc(10, str(tmp_path)).kthread is True
    assert procs.read_proc(11, str(tmp_path)).kthread is False


def test_zombie_is_listed_without_memory(tmp_path):
    make_proc(tmp_path, 900, comm="defunct-child", state="Z", mem=False, cmdline=b"", oom_score=0, uid=33)
    p = procs.read_proc(900, str(tmp_path))
    assert p is not None
    assert (p.rss, p.rss_anon, p.cmdline, p.uid, p.kthread) == (0, 0, (), 33, False)


def test_reaped_process_with_empty_files_is_skipped(tmp_path):
    make_proc(tmp_path, 901, stat="")
    make_proc(tmp_path, 902, status="")
    assert procs.read_proc(901, str(tmp_path)) is None
    assert procs.read_proc(902, str(tmp_path)) is None


def test_missing_process_is_none(tmp_path):
    assert procs.read_proc(4242, str(tmp_path)) is None


@pytest.mark.parametrize("gone", ["stat", "status", "cmdline", "oom_score"])
def test_process_vanishing_between_files_is_none(tmp_path, gone):
    make_proc(tmp_path, 903, skip=(gone,))
    assert procs.read_proc(903, str(tmp_path)) is None


def test_optional_files_have_defaults(tmp_path):
    # kernel < 2.6.36 (no oom_score_adj), kernel without CONFIG_CGROUPS (no cgroup file)
    make_proc(tmp_path, 904, skip=("oom_score_adj", "cgroup"))
    p = procs.read_proc(904, str(tmp_path))
    assert p.oom_score_adj == 0 and p.cgroup == ""


@pytest.mark.parametrize("exc", [ProcessLookupError(errno.ESRCH, "No such process"),
                                 FileNotFoundError(errno.ENOENT, "gone"),
                                 PermissionError(errno.EACCES, "hidepid")])
def test_process_dying_mid_read_is_skipped(tmp_path, monkeypatch, exc):
    make_proc(tmp_path, 905)
    make_proc(tmp_path, 906)
    real_read = os.read
    calls = {"n": 0}

    def dying_read(fd, n):
        calls["n"] += 1
        if calls["n"] == 3:  # the third file of the first process
            raise exc
        return real_read(fd, n)

    monkeypatch.setattr(procs, "_read", dying_read)
    table = procs.read_procs(str(tmp_path))
    assert [p.pid for p in table] == [906]


def test_unrelated_os_errors_propagate(tmp_path, monkeypatch):
    make_proc(tmp_path, 907)

    def no_fds(path, flags, mode=0o777, *, dir_fd=None):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(procs, "_open", no_fds)
    with pytest.raises(OSError) as e:
        procs.read_procs(str(tmp_path))
    assert e.value.errno == errno.EMFILE


def test_process_dir_removed_while_listing(tmp_path, monkeypatch):
    make_proc(tmp_path, 100)
    make_proc(tmp_path, 101)
    real_read_proc = procs._read_proc

    def racing(pid, root):
        if pid == 100:  # 101 exits right after the listing, while 100 is being read
            for name in os.listdir(os.path.join(root, "101")):
                os.unlink(os.path.join(root, "101", name))
            os.rmdir(os.path.join(root, "101"))
        return real_read_proc(pid, root)

    monkeypatch.setattr(procs, "_read_proc", racing)
    assert [p.pid for p in procs.read_procs(str(tmp_path))] == [100]


@pytest.mark.parametrize("bad", [
    {"stat": "1234 app S 1 1234\n"},  # no parentheses
    {"stat": "1234 (app) S 1 1234 1234\n"},  # truncated
    {"stat": "1234 (app) S x 1234 1234 34816 1234 4194560 " + "0 " * 30 + "\n"},
    {"status": "Name:\tapp\nPPid:\t1\n"},  # no Uid
    {"status": STATUS_TEMPLATE.format(name="a", state="S", pid=1, ppid=1, pgid=1, uid="abc", euid=0, mem="")},
    {"status": STATUS_TEMPLATE.format(name="a", state="S", pid=1, ppid=1, pgid=1, uid=0, euid=0,
                                      mem="VmRSS:\t  lots kB\n")},
    {"oom_score": "high\n"},
])
def test_garbled_process_is_none_and_does_not_break_the_table(tmp_path, bad):
    make_proc(tmp_path, 1234, **bad)
    make_proc(tmp_path, 1235)
    assert procs.read_proc(1234, str(tmp_path)) is None
    assert [p.pid for p in procs.read_procs(str(tmp_path))] == [1235]


def test_cmdline_shapes(tmp_path):
    make_proc(tmp_path, 1, cmdline=b"/sbin/init\0")
    make_proc(tmp_path, 2, cmdline=b"sh\0-c\0\0echo hi\0")  # an empty argument in the middle
    make_proc(tmp_path, 3, cmdline=b"nginx: worker process")  # rewritten argv, no NUL
    make_proc(tmp_path, 4, cmdline=b"app\0\0\0\0")  # padded with NULs after rewriting
    make_proc(tmp_path, 5, cmdline=b"caf\xe9\0\xff\0")  # not UTF-8
    long_args = [("arg%05d" % i).encode() * 3 for i in range(2000)]
    make_proc(tmp_path, 6, cmdline=b"\0".join(long_args) + b"\0")
    got = {p.pid: p.cmdline for p in procs.read_procs(str(tmp_path))}
    assert got[1] == ("/sbin/init",)
    assert got[2] == ("sh", "-c", "", "echo hi")
    assert got[3] == ("nginx: worker process",)
    assert got[4] == ("app",)
    assert got[5] == ("caf\ufffd", "\ufffd")
    assert len(got[6]) == 2000 and got[6][-1] == "arg01999" * 3


def test_large_status_file(tmp_path):
    # a process in thousands of supplementary groups: status far beyond one 4 KiB read
    groups = " ".join(str(g) for g in range(10000, 12000))
    status = STATUS_TEMPLATE.format(name="big", state="S", pid=7, ppid=1, pgid=7, uid=500, euid=500,
                                    mem=MEM_LINES.format(rss=1, anon=1, file=0, shmem=0))
    status = status.replace("Groups:\t100 101", "Groups:\t" + groups)
    assert len(status) > 8192
    make_proc(tmp_path, 7, status=status)
    p = procs.read_proc(7, str(tmp_path))
    assert p.uid == 500 and p.rss == KB


def test_rss_anon_fallbacks(tmp_path):
    old = STATUS_TEMPLATE.format(name="a", state="S", pid=8, ppid=1, pgid=8, uid=0, euid=0,
                                 mem="VmHWM:\t 9000 kB\nVmRSS:\t 8000 kB\nVmData:\t 100 kB\n")
    make_proc(tmp_path, 8, status=old)  # kernel < 4.5: only VmRSS
    p = procs.read_proc(8, str(tmp_path))
    assert p.rss == p.rss_anon == 8000 * KB
    partial = old.replace("VmData", "RssFile:\t 3000 kB\nRssShmem:\t 500 kB\nVmData")
    make_proc(tmp_path, 9, status=partial)  # RssFile/RssShmem but no RssAnon
    assert procs.read_proc(9, str(tmp_path)).rss_anon == 4500 * KB


def test_cgroup_choice():
    assert procs.parse_cgroup(CGROUP_HYBRID.encode()) == "/system.slice/app.service"
    # hybrid systems: the v1 memory path is what carries the memory limits
    assert procs.parse_cgroup(b"4:memory:/mem/a\n1:name=systemd:/x\n0::/unified/b\n") == "/mem/a"
    assert procs.parse_cgroup(b"0::/unified/b\n4:memory:/mem/a\n") == "/mem/a"
    assert procs.parse_cgroup(CGROUP_V2.encode()) == "/system.slice/app.service"
    assert procs.parse_cgroup(b"0::/\n") == "/"
    assert procs.parse_cgroup(b"5:cpu,memory,pids:/grp\n0::/other\n") == "/grp"
    assert procs.parse_cgroup(b"5:memory,cpu:/grp\n") == "/grp"
    assert procs.parse_cgroup(b"0::/memory:/odd\n") == "/memory:/odd"  # a v2 path that looks like v1
    assert procs.parse_cgroup(b"3:cpu:/memory/x\n0::/y\n") == "/y"
    assert procs.parse_cgroup(b"3:cpu:/memory/x\n2:devices:/\n") == ""  # v1 without memory
    assert procs.parse_cgroup(b"4:memory:/with space/and:colon\n") == "/with space/and:colon"
    assert procs.parse_cgroup(b"") == ""


def test_list_pids(tmp_path):
    for name in ("1", "12", "300", "self", "thread-self", "net", "sys", "12abc"):
        os.makedirs(os.path.join(str(tmp_path), name))
    open(os.path.join(str(tmp_path), "meminfo"), "w").close()
    assert procs.list_pids(str(tmp_path)) == (1, 12, 300)
    assert procs.list_pids(os.path.join(str(tmp_path), "missing")) == ()


def test_read_procs_all_and_selected(tmp_path):
    for pid in (1, 20, 300):
        make_proc(tmp_path, pid, comm="p%d" % pid)
    os.makedirs(os.path.join(str(tmp_path), "self"))
    assert [p.comm for p in procs.read_procs(str(tmp_path))] == ["p1", "p20", "p300"]
    assert [p.pid for p in procs.read_procs(str(tmp_path), pids=[300, 4444, 1])] == [300, 1]
    assert procs.read_procs(str(tmp_path), pids=[]) == ()


def test_fork_count_of_proc_stat(tmp_path):
    from guardian.kernel.stat import parse_fork_count, read_fork_count
    text = b"cpu  1 2 3 4\nintr 5\nctxt 99\nbtime 1700000000\nprocesses 123456\nprocs_running 2\n"
    assert parse_fork_count(text) == 123456
    assert parse_fork_count(b"cpu 1\nprocesses 7") == 7  # no final newline
    assert parse_fork_count(b"cpu 1\nprocesses x\n") is None and parse_fork_count(b"cpu 1\n") is None
    (tmp_path / "stat").write_bytes(text)
    assert read_fork_count(str(tmp_path)) == 123456 and read_fork_count(str(tmp_path / "none")) is None


def test_parse_last_pid():
    from guardian.kernel.stat import parse_last_pid

    assert parse_last_pid(b"0.52 0.58 0.59 2/345 31234\n") == 31234
    assert parse_last_pid(b"0.52 0.58 0.59 2/345\n") is None
    assert parse_last_pid(b"0.52 0.58 0.59 2/345 x\n") is None
    assert parse_last_pid(b"") is None
