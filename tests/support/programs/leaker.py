"""A process that leaks at a known rate: touched memory in 64 KiB chunks, every chunk kept.

usage: leaker.py RATE_KIB_S MAX_MIB [TOKEN]
  TOKEN only marks the command line, so a test's match rule finds this process and no other.
Prints "ready" once started (after the interpreter's own start-up growth).
"""
import sys
import time

rate = float(sys.argv[1]) * 1024  # bytes/s
limit = int(sys.argv[2]) * 1024 * 1024
CHUNK = 64 * 1024
chunks = []
print("ready", flush=True)
start = time.monotonic()
while len(chunks) * CHUNK < limit:
    chunks.append(b"\x01" * CHUNK)  # a filled bytes object: every page is touched
    delay = start + len(chunks) * CHUNK / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
while True:
    time.sleep(1)
