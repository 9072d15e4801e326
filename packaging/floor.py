"""The floor: a trivial wake loop with the guardian's wake rule, frozen by the same spec as
the guardian (dist/guardian-floor), so that what the guardian costs above it is its own.

    guardian-floor                      lock memory (on fault), then read MemAvailable and sleep, forever
    guardian-floor --import a,b.c       import those modules first (bench/modcost.py)
    guardian-floor --modules            print the loaded modules, one line of names, at the start
    guardian-floor --once               one wake, then exit 0 (a build check)
    guardian-floor --interned-headroom  print how many more names fit in the interpreter's table of
                                        interned strings before it doubles, at the start
    guardian-floor --raise              end in an exception raised in the guardian's code, uncaught
                                        (tests/packaging: its traceback's source lines)

The wake rule is the guardian's: mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) through
the guardian's C extension, as the guardian makes it (ctypes where that is not built; the frozen
build has no ctypes), pread of /proc/meminfo from a descriptor kept open, sleep 0.5 s while plenty is
available and 0.1 s when not. Nothing else: no argparse, no logging.
"""
import os
import sys
import time

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


def _lock():
    try:
        from guardian._rest import mlockall
    except ImportError:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
            sys.stderr.write("guardian-floor: mlockall: %s\n" % os.strerror(ctypes.get_errno()))
        return
    try:
        mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)
    except OSError as e:  # no CAP_IPC_LOCK and a small RLIMIT_MEMLOCK: the guardian goes on too
        sys.stderr.write("guardian-floor: mlockall: %s\n" % e.strerror)


def _rss_kib():
    # smaps_rollup walks the page tables: exact, where statm's counters lag by up to 64 pages a CPU
    with open("/proc/self/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Rss:"):
                return int(line.split()[1])
    raise OSError("no Rss in /proc/self/smaps_rollup")


def interned_headroom(limit=100000, step=20, jump_kib=100):
    """How many new names can be interned before the interpreter's table of them grows.

    The table (a dict) doubles when full, and the new one is written through at once: 207 KiB
    at 16,384 slots, more each time. So intern fresh names, `step` at a time, until RSS jumps by
    more than jump_kib; nothing else here allocates more than a few hundred bytes per step (the
    list that keeps the names alive is made first). The names stay: measure, then exit."""
    keep = [None] * limit
    _rss_kib()  # the first read of a /proc file here costs 0.2 MiB of its own
    before = _rss_kib()
    for i in range(limit):
        keep[i] = sys.intern("floor-headroom-%d" % i)
        if i % step == step - 1:
            now = _rss_kib()
            if now - before > jump_kib:
                return i + 1 - step
            before = now
    return limit


def main(argv):
    args = list(argv[1:])
    report = once = headroom = False
    while args:
        arg = args.pop(0)
        if arg == "--import" and args:
            for name in args.pop(0).split(","):
                if name:
                    __import__(name)
        elif arg == "--modules":
            report = True
        elif arg == "--once":
            once = True
        elif arg == "--interned-headroom":
            headroom = True
        elif arg == "--raise":
            from guardian import jsontext
            jsontext.dumps({"x": [object()]})  # TypeError, three frames down
        else:
            sys.stderr.write("usage: guardian-floor [--import MOD[,MOD...]] [--modules] [--once] "
                             "[--interned-headroom] [--raise]\n")
            return 2
    if report:
        sys.stdout.write(" ".join(sorted(sys.modules)) + "\n")
        sys.stdout.flush()
    if headroom:
        sys.stdout.write("interned headroom: %d\n" % interned_headroom())
        return 0
    _lock()
    fd = os.open("/proc/meminfo", os.O_RDONLY | os.O_CLOEXEC)
    while True:
        data = os.pread(fd, 4096, 0)
        at = data.find(b"MemAvailable:")
        avail = int(data[at + 13:data.index(b"k", at)])
        if once:
            return 0
        time.sleep(0.5 if avail > 100000 else 0.1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
