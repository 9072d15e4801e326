"""A forking server for tests: N workers forked at once (siblings in the same clock tick, as a
pre-forking server or stress-ng starts them), each allocating and touching memory at a rate.

usage: forker.py WORKERS RATE_MIB_S MAX_MIB [--respawn] [--step MIB]
  --respawn  fork a new worker for each one that dies (a load generator that respawns)
  --step     allocate this many MiB at once when they fall due (default 1): the workers, started
             together, then grow in bursts at the same moments, at the same average rate
Prints "ready PID STARTTIME ..." for the first workers, then "respawned PID" for each new one.
"""
import os
import signal
import sys
import time

workers, rate, limit = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
respawn = "--respawn" in sys.argv
step = int(sys.argv[sys.argv.index("--step") + 1]) if "--step" in sys.argv else 1


def work(go):
    os.read(go, 1)  # every sibling is forked before any allocates
    chunks = []
    start = time.monotonic()
    while len(chunks) < limit:
        for _ in range(step):
            chunks.append(b"\x01" * (1 << 20))  # filled, so every page is touched
        delay = start + len(chunks) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    while True:
        time.sleep(1)


def fork(go):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            work(go)
        finally:
            os._exit(0)
    return pid


def starttime(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


r, w = os.pipe()
pids = [fork(r) for _ in range(workers)]
print("ready " + " ".join("%d %d" % (pid, starttime(pid)) for pid in pids), flush=True)
os.write(w, b"x" * workers)
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    if respawn:
        os.write(w, b"x")
        print("respawned %d" % fork(r), flush=True)
