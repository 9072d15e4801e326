"""The on_leak restart command of the leak watch's integration tests: what a service's restart
does. Kills the leaker named in PIDFILE, starts a new one (from the argv in PIDFILE.argv),
gives it oom_score_adj ADJ (as a service manager would), writes the new PID to PIDFILE.

usage: leak_restart.py PIDFILE ADJ
"""
import json
import os
import signal
import subprocess
import sys
import time

pidfile, adj = sys.argv[1], sys.argv[2]
with open(pidfile) as f:
    old = int(f.read())
with open(pidfile + ".argv") as f:
    argv = json.load(f)
try:
    os.kill(old, signal.SIGKILL)
except ProcessLookupError:
    pass
for _ in range(200):  # until it is gone (or only a zombie its parent has yet to reap)
    try:
        with open("/proc/%d/stat" % old) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
    except OSError:
        break
    time.sleep(0.01)
child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         start_new_session=True)
assert child.stdout.readline().strip() == b"ready"
child.stdout.close()
with open("/proc/%d/oom_score_adj" % child.pid, "w") as f:
    f.write(adj)
with open(pidfile + ".new", "w") as f:
    f.write(str(child.pid))
os.replace(pidfile + ".new", pidfile)
