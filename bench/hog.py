"""A rate-controlled memory hog for the bench: allocates and touches 1 MiB chunks at RATE MiB/s
and keeps every one, up to MAX MiB, then holds them.

usage: hog.py RATE_MIB_S MAX_MIB [--ignore-term]
  --ignore-term  ignore SIGTERM, so only a SIGKILL (the guardian's kill rung, or the kernel's
                 OOM killer) ends it
Prints "ready" once started and "held" once MAX_MIB are allocated; nothing else (so a pipe
nobody reads never fills).
"""
import signal
import sys
import time

rate = float(sys.argv[1])
limit = int(sys.argv[2])
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
chunks = []
print("ready", flush=True)
start = time.monotonic()
while len(chunks) < limit:
    chunks.append(b"\x01" * (1 << 20))  # filled, so every page is touched and charged
    if rate > 0:
        delay = start + len(chunks) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
print("held", flush=True)
while True:
    time.sleep(60)
