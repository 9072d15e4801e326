"""The floor: a trivial wake loop with the guardian's wake rule, frozen by the same spec as
the guardian (dist/guardian-floor), so that what the guardian costs above it is its own.

    guardian-floor                      lock memory (on fault), then read MemAvailable and sleep, forever
    guardian-floor --import a,b.c       import those modules first (bench/modcost.py)
    guardian-floor --modules            print the loaded modules, one line of names, at the start
    guardian-floor --once               one wake, then exit 0 (a build check)

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


def main(argv):
    args = list(argv[1:])
    report = once = False
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
        else:
            sys.stderr.write("usage: guardian-floor [--import MOD[,MOD...]] [--modules] [--once]\n")
            return 2
    if report:
        sys.stdout.write(" ".join(sorted(sys.modules)) + "\n")
        sys.stdout.flush()
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
