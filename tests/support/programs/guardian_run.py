"""`guardian run` through its real entry (guardian.cli.main, as the installed command and the
frozen binary start it), with test-only doors that add no import to the daemon:
- SIGUSR1 writes $GUARDIAN_TEST_DUMP (JSON): the daemon's sys.modules, the config in force,
  when it last ticked (monotonic) and its reload children;
- a reload's loader first reads $GUARDIAN_TEST_RELOAD: "hang" sleeps for an hour, "crash"
  dies of SIGSEGV, anything else (or no file) loads;
- $GUARDIAN_TEST_RELOAD_TIMEOUT_S: the reload child's timeout in place of 30 s.
usage: guardian_run.py [global options] run [run options]"""
import json
import os
import signal
import sys
import time

import guardian.boot as boot
from guardian.core.daemon import Daemon
from guardian.core.parts import reload as reload_part

daemons = []
real_init = Daemon.__init__


def init(self, *args, **kw):
    real_init(self, *args, **kw)
    daemons.append(self)


def dump(signum, frame):
    d = daemons[-1] if daemons else None
    out = {"pid": os.getpid(), "modules": sorted(sys.modules), "now": time.monotonic()}
    if d is not None:
        out.update(board=d.config.board, reclaim_percent=d.config.thresholds.reclaim.percent,
                   growth_window_s=d.growth.window_s, last_full_tick=d._last_full_tick,
                   reload_busy=d.reloader.busy if d.reloader else None)
    path = os.environ["GUARDIAN_TEST_DUMP"]
    with open(path + ".tmp", "w") as f:
        json.dump(out, f)
    os.rename(path + ".tmp", path)


real_load = boot.load_again


def load_again(spec):
    try:
        with open(os.environ.get("GUARDIAN_TEST_RELOAD", "")) as f:
            what = f.read().strip()
    except OSError:
        what = ""
    if what == "hang":
        time.sleep(3600)
    elif what == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return real_load(spec)


Daemon.__init__ = init
boot.load_again = load_again
if os.environ.get("GUARDIAN_TEST_RELOAD_TIMEOUT_S"):
    reload_part.TIMEOUT_S = float(os.environ["GUARDIAN_TEST_RELOAD_TIMEOUT_S"])
signal.signal(signal.SIGUSR1, dump)

from guardian.cli import main  # noqa: E402

sys.exit(main())
