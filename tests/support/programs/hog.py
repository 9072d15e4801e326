"""A memory hog for tests: allocates and touches memory at a given rate, keeping every chunk.

usage: hog.py RATE_MIB_S MAX_MIB [--trap-term] [--hold]
  --trap-term  exit 0 cleanly on SIGTERM (after "saving state")
Prints "ready" once started, then one line per 16 MiB allocated.
"""
import signal
import sys
import time

rate = float(sys.argv[1])
limit = int(sys.argv[2])
chunks = []
if "--trap-term" in sys.argv:
    def clean_exit(signum, frame):
        print("clean exit", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, clean_exit)
print("ready", flush=True)
start = time.monotonic()
while len(chunks) < limit:
    chunks.append(b"\x01" * (1 << 20))  # filled, so every page is touched
    due = start + len(chunks) / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
while True:
    time.sleep(1)
