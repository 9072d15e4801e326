"""Fake /proc and /sys trees, written into a test's tmp_path, for the readers, the daemon and the
commands (the readers' own tests also write the odd file themselves)."""
import os

MIB = 1024 * 1024


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def meminfo(root, total_mib=1024, avail_mib=800, free_mib=None):
    free = avail_mib if free_mib is None else free_mib
    write(os.path.join(root, "meminfo"),
          "MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers: 0 kB\n"
          "Cached:         10240 kB\nSwapTotal:      0 kB\nSwapFree:       0 kB\nAnonPages: 1000 kB\n"
          "SUnreclaim: 1000 kB\nCommitLimit: 1000000 kB\nCommitted_AS: 10000 kB\n"
          % (total_mib * 1024, free * 1024, avail_mib * 1024))


def process(root, pid, comm, rss_mib, oom_score=100, adj=0, ppid=1, starttime=None, cmdline=None, kthread=False):
    d = os.path.join(root, str(pid))
    flags = 0x00200040 if kthread else 0x00400100
    st = starttime if starttime is not None else pid * 7
    write(os.path.join(d, "stat"), "%d (%s) S %d %d %d 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 1000 %d\n"
          % (pid, comm, ppid, pid, pid, flags, st, int(rss_mib * 256)))
    status = "Name:\t%s\nUid:\t0\t0\t0\t0\n" % comm
    if not kthread:
        status += "VmRSS:\t%d kB\nRssAnon:\t%d kB\nRssFile:\t0 kB\nRssShmem:\t0 kB\n" % (rss_mib * 1024, rss_mib * 1024)
    write(os.path.join(d, "status"), status)
    write(os.path.join(d, "cmdline"), "" if kthread else "\0".join(cmdline or [comm]) + "\0")
    write(os.path.join(d, "oom_score"), "%d\n" % oom_score)
    write(os.path.join(d, "oom_score_adj"), "%d\n" % adj)
    write(os.path.join(d, "cgroup"), "0::/system.slice/%s.service\n" % comm)


def basic_tree(root):
    meminfo(root)
    write(os.path.join(root, "pressure", "memory"),
          "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    write(os.path.join(root, "sys", "vm", "overcommit_memory"), "0\n")
    write(os.path.join(root, "buddyinfo"), "Node 0, zone   Normal   10 10 10 10 10 10 10 10 10 10 10\n")
    process(root, 1, "init", 2, oom_score=0)
    process(root, 2, "kthreadd", 0, kthread=True)
    process(root, 100, "hog", 100, oom_score=300)
    process(root, 200, "webui", 50, oom_score=200)


def write_at(root, rel, text):
    """Writes text to root/rel (directories made as needed); returns the path."""
    path = os.path.join(str(root), rel)
    write(path, text)
    return path


def red_flag_system(root, total_kb=262144, sunreclaim_kb=4000, swap_kb=0, pid1_anon_kb=3000,
                    thp="always madvise [never]", overcommit="0", ratio="50", commit_limit_kb=None, allocating="0",
                    panic="0"):
    """root/proc and root/sys of a 256 MiB board with the settings `guardian diagnose` and
    `guardian check` judge as red flags; returns (proc, sys)."""
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


# /proc/swaps with one zram device (16 MiB of 64 MiB used) and a swap file.
ZRAM_SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
              "/dev/zram0                              partition\t65532\t\t16384\t\t100\n"
              "/swapfile                               file\t\t102396\t\t0\t\t-2\n")


def zram_tree(tmp_path, swaps=ZRAM_SWAPS, mm_stat="33554432 8388608 11184810 0 11184810 10 0 0\n"):
    """tmp_path/proc with /proc/swaps and tmp_path/sys with zram0's mm_stat (none if None);
    returns (proc, sys)."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    os.makedirs(sys / "block" / "zram0")
    os.makedirs(proc)
    (proc / "swaps").write_text(swaps)
    if mm_stat is not None:
        (sys / "block" / "zram0" / "mm_stat").write_text(mm_stat)
    return str(proc), str(sys)
