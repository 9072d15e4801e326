"""Stand-ins for what the guardian's parts are handed: an event sink that keeps what it is told,
a clock the test moves, and a process-table record made without a /proc."""
from guardian.config import MIB
from guardian.kernel.procs import ProcInfo


class Tell:
    """The telemetry a part tells its events to, keeping each as (kind, message, fields)."""

    def __init__(self):
        self.events = []

    def event(self, kind, message, **fields):
        self.events.append((kind, message, fields))

    def kinds(self, kind):
        return [e for e in self.events if e[0] == kind]

    @property
    def messages(self):
        return [e[1] for e in self.events]


class Clock:
    """A monotonic clock that stands still until the test sets t."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def procinfo(pid, comm="p", rss_mib=10, oom_score=10, adj=0, kthread=False, starttime=None, pgid=None):
    """A process as read_procs would report it: parent 1, root, its comm as its command line."""
    return ProcInfo(pid=pid, ppid=1, pgid=pgid or pid, comm=comm, cmdline=(comm,), uid=0,
                    rss=int(rss_mib * MIB), rss_anon=int(rss_mib * MIB), oom_score=oom_score,
                    oom_score_adj=adj, kthread=kthread, cgroup="0::/", starttime=starttime or pid * 10)
