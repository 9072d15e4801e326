"""Real memory cgroups, made for one test or bench run and removed after it: v2 where the unified
hierarchy has the memory controller, else v1. Making one needs root.

No pytest here: the bench (bench/) makes its cgroups with it too."""
import os
import signal
import subprocess
import sys
import time
import uuid

from tests.support.processes import HOG

CGROUP_FS = "/sys/fs/cgroup"  # the kernel's interface, not a file of this machine's setup
V1_ROOT = os.path.join(CGROUP_FS, "memory")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class MemCgroup:
    """A fresh memory cgroup, PREFIX-<8 hex digits>. Raises RuntimeError saying why when none can
    be made. destroy() kills what is left in it and removes it."""

    def __init__(self, prefix="guardian-test"):
        self.name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        controllers = _read(os.path.join(CGROUP_FS, "cgroup.controllers"))
        if controllers is not None and "memory" in controllers.split():
            self.version, self.path = 2, os.path.join(CGROUP_FS, self.name)
        elif os.path.isdir(V1_ROOT):
            self.version, self.path = 1, os.path.join(V1_ROOT, self.name)
        else:
            raise RuntimeError("no memory cgroup controller on this machine (neither v2 with memory nor %s)"
                               % V1_ROOT)
        try:
            os.mkdir(self.path)
        except OSError as exc:
            raise RuntimeError("cannot create a cgroup v%d at %s: %s" % (self.version, self.path, exc)) from exc
        self.usage_name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        self.children = []  # what spawn() started, killed by destroy()

    def file(self, name):
        return os.path.join(self.path, name)

    def set_limit(self, nbytes):
        with open(self.file("memory.limit_in_bytes" if self.version == 1 else "memory.max"), "w") as f:
            f.write(str(nbytes))

    def usage(self):
        return int(_read(self.file(self.usage_name)) or 0)

    def peak(self):
        text = _read(self.file("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"))
        return int(text) if text else None

    def reclaimable(self):
        """The page cache charged to it (the file LRU lists of memory.stat)."""
        stat = {}
        for line in (_read(self.file("memory.stat")) or "").splitlines():
            parts = line.split()
            if len(parts) == 2:
                stat[parts[0]] = int(parts[1])
        if self.version == 1:
            return stat.get("total_inactive_file", 0) + stat.get("total_active_file", 0)
        return stat.get("inactive_file", 0) + stat.get("active_file", 0)

    def oom_kills(self):
        """The count of the cgroup's own OOM kills (memory.oom_control, or memory.events in v2)."""
        with open(self.file("memory.oom_control" if self.version == 1 else "memory.events")) as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def join_fn(self):
        """A preexec_fn that moves the child into this cgroup before it runs anything."""
        procs = self.file("cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return join

    def spawn(self, argv, **kw):
        """argv started in this cgroup, standard output and error piped."""
        child = subprocess.Popen(argv, preexec_fn=self.join_fn(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 **kw)
        self.children.append(child)
        return child

    def hog(self, rate_mib_s, max_mib, *flags):
        """programs/hog.py in this cgroup, once it has said 'ready'."""
        child = self.spawn([sys.executable, HOG, str(rate_mib_s), str(max_mib)] + list(flags))
        assert child.stdout.readline().strip() == b"ready"
        return child

    def pids(self):
        return [int(x) for x in (_read(self.file("cgroup.procs")) or "").split()]

    def destroy(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        for _ in range(100):  # the kernel may take a moment to let go of a killed task
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
