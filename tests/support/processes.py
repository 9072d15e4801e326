"""Real child processes, for the integration tests: the programs in programs/ and how they are
started, a process's state and start time read from /proc, waiting for one to die, a pidfd
handle on a child, and stopping one.

No pytest here: the bench (bench/) stops its processes with stop_process."""
import os
import select
import signal
import subprocess
import sys
import time

from guardian.actions.signals import open_process

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
HOG = os.path.join(PROGRAMS, "hog.py")  # allocates MiB after MiB at a rate; usage in its docstring
FORKER = os.path.join(PROGRAMS, "forker.py")  # workers forked in one go, growing; usage in its docstring
LEAKER = os.path.join(PROGRAMS, "leaker.py")  # leaks at a known rate
LEAK_RESTART = os.path.join(PROGRAMS, "leak_restart.py")  # the leaker's restart command
LEAKER_RATE_KIB_S = 2048  # 2 MiB/s: the rate leaker_argv asks for

# A child that exits 3 (its own clean exit, not -15) on SIGTERM, once it has said 'ready'.
TERM_TRAPPER = """
import signal, sys, time
def on_term(signum, frame):
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
print('ready', flush=True)
while True:
    time.sleep(1)
"""

# A child that allocates (and touches) N MiB when told to, says "ready", then waits.
ALLOCATOR = """\
import sys
n = int(sys.argv[1])
sys.stdin.readline()
x = b"\\x01" * (n << 20)
print("ready", flush=True)
sys.stdin.readline()
"""


def leaker_argv(token, max_mib=120):
    """The leaker at LEAKER_RATE_KIB_S up to max_mib, its command line marked with token."""
    return [sys.executable, LEAKER, str(LEAKER_RATE_KIB_S), str(max_mib), token]


def start_ready(argv):
    """argv started, once it has said 'ready' on its standard output."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout.readline().strip() == b"ready"
    return p


def start_allocator(mib):
    """The ALLOCATOR child for mib MiB, not yet allocating (allocate() tells it to)."""
    return subprocess.Popen([sys.executable, "-c", ALLOCATOR, str(mib)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)


def allocate(child):
    """Tells an ALLOCATOR child to allocate; returns its answer (b"ready\\n" once it has)."""
    child.stdin.write(b"go\n")
    child.stdin.flush()
    return child.stdout.readline()


def reap(child):
    """Kills the child if it still runs, waits for it and closes its pipes."""
    if child.poll() is None:
        child.kill()
    child.wait()
    for f in (child.stdin, child.stdout):
        try:
            f.close()
        except OSError:
            pass


def stat_fields(pid):
    """(state, starttime) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def read_adj(pid):
    """pid's oom_score_adj."""
    with open("/proc/%d/oom_score_adj" % pid) as f:
        return int(f.read())


def starttime_of(pid):
    return stat_fields(pid)[1]


def dead(pid, starttime):
    """Gone, reused, or a zombie."""
    f = stat_fields(pid)
    return f is None or f[1] != starttime or f[0] in ("Z", "X")


def wait_dead(pid, starttime, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dead(pid, starttime):
            return True
        time.sleep(0.02)
    return dead(pid, starttime)


def read_line(proc, timeout=10.0):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child did not report in time"
    return proc.stdout.readline().decode().strip()


def child_handle(p, handles):
    """A pidfd handle on the child p, kept by handles (the actions tests' fixture) to be closed."""
    h = handles(open_process(p.pid, starttime_of(p.pid)))
    assert h is not None
    return h


def stop_process(proc, timeout=10.0):
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds; its exit status."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def end_restarted_leaker(child, pidfile):
    """After a restart test: end the leaker and the copy its restart command started (the PID
    the command wrote to pidfile), whatever state the test stopped in."""
    if child.poll() is None:
        child.kill()
        child.wait()
    try:
        with open(pidfile) as f:
            new_pid = int(f.read())
    except (OSError, ValueError):
        return
    if new_pid != child.pid:
        try:
            os.kill(new_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
