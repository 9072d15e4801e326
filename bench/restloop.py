"""The daemon at rest on this machine, its loop at rest in C (guardian._rest) and in Python, side
by side: CPU time and wake-ups (voluntary context switches) over the same window.

    python3 bench/restloop.py [seconds] [sleep_s]

Each runs in a process of its own: the generic config, no PSI, dry run, with the assumed fill rate
set so that the headroom above the kill line lasts `sleep_s` (default 0.13 s): a quiet wake every
sleep_s, as on a small board, and a full tick every max_timeout_s.
"""
import os
import resource
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys
from guardian.config import MIB, Config, Wait
from guardian.core import daemon
from guardian.core.telemetry import Telemetry
from guardian.kernel.meminfo import read_meminfo
loop, sleep_s = sys.argv[1], float(sys.argv[2])
if loop == "python":
    daemon.rest_in_c = None
assert loop == "python" or daemon.rest_in_c is not None, "guardian._rest not built"
available = read_meminfo().available
cfg = Config(wait=Wait(use_psi=False, assumed_fill_rate_mib_s=available / MIB / sleep_s))
d = daemon.Daemon(cfg, dry_run=True, telemetry=Telemetry(state_file=None), protect_self=False)
d.run()
"""


def measure(seconds: float, sleep_s: float) -> None:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs, before = {}, {}
    for loop in ("c", "python"):
        procs[loop] = subprocess.Popen([sys.executable, "-c", CHILD, loop, str(sleep_s)], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        time.sleep(2.0)  # past the start (imports, the first tick): the window is the rest alone
        for loop, proc in procs.items():
            assert proc.poll() is None, proc.communicate()[1]
            before[loop] = _cpu_wakes(proc.pid)
        time.sleep(seconds)
        print("at rest %.0f s, a quiet wake every %.2f s (%s)" % (seconds, sleep_s, sys.version.split()[0]))
        for loop, proc in procs.items():
            cpu, wakes = _cpu_wakes(proc.pid)
            cpu -= before[loop][0]
            wakes -= before[loop][1]
            print("  rest loop in %-6s CPU %6.1f ms, %4d wake-ups, %.3f ms per wake" % (
                "C" if loop == "c" else "Python", cpu * 1000, wakes, cpu * 1000 / max(wakes, 1)))
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def _cpu_wakes(pid: int):
    """(CPU seconds from schedstat, voluntary context switches) of a running process."""
    with open("/proc/%d/schedstat" % pid) as f:
        cpu = int(f.read().split()[0]) / 1e9
    with open("/proc/%d/status" % pid) as f:
        wakes = [int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches")][0]
    return cpu, wakes


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    measure(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, float(sys.argv[2]) if len(sys.argv) > 2 else 0.13)
