"""A small fake /proc tree for daemon and sensing tests (parsers have their own)."""
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
