"""kill -9 in the middle of writing the trend state: the file still loads (it is replaced
atomically), or - written the naive way, in place - is ignored with a message. Never a crash."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from guardian.config import Config, Critical, Leaks, Match
from guardian.core.parts.leakstate import STATE_NAME
from guardian.core.parts.leakwatch import LeakWatcher
from tests.support import REPO
from tests.support.fakes import Tell


SERIES = 40

pytestmark = pytest.mark.integration

# A guardian that does nothing but save: 40 series of 180 noisy samples (about 50 KB a write),
# every save different, on a disk as slow as an SD card (fsync takes 10 ms), so a kill often
# lands inside a write. With "naive" it writes the file in place, 4 KiB at a time, instead of
# through a temp file and a rename: the control that shows that torn files do happen.
WRITER = r"""
import os, random, sys, time
from guardian.config import Config, Critical, Leaks, Match
from guardian.core.parts.leakstate import Series
from guardian.core.parts.leakwatch import LeakWatcher
import guardian.safefile as safefile

state_dir, naive = sys.argv[1], sys.argv[2] == "naive"
real_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(0.01)
    real_fsync(fd)
os.fsync = slow_fsync
if naive:
    def write_in_place(path, data, mode=0o644, durable=False):
        with open(path, "wb") as f:
            for i in range(0, len(data), 4096):
                f.write(data[i:i + 4096])
                f.flush()
                os.fsync(f.fileno())
    safefile.write_atomic = write_in_place
crit = tuple(Critical("svc%d" % i, Match(comm="svc%d" % i)) for i in range(%(series)d))
w = LeakWatcher(Config(critical=crit, leaks=Leaks(state_dir=state_dir)), state_dir=state_dir,
                tell=type("T", (), {"event": lambda self, *a, **k: None})())
r = random.Random(os.getpid())
now = 100000.0
for c in crit:
    s = w.series.setdefault(c.name, Series(c.name, c.name, "critical"))
    for i in range(180):
        s.add(now - 1800 + i * 10, 1000, 1, 20 << 20 | r.randrange(1 << 20) & ~4095, 16 << 20, -1)
print("ready", flush=True)
while True:
    now += 10
    for s in w.series.values():
        s.add(now, 1000, 1, 20 << 20 | r.randrange(1 << 20) & ~4095, 16 << 20, -1)
        s.prune(now, 1800, 200)
    w._dirty = True
    w.save(now, force=True)
""".replace("%(series)d", str(SERIES))


def config(state_dir):
    crit = tuple(Critical("svc%d" % i, Match(comm="svc%d" % i)) for i in range(SERIES))
    return Config(critical=crit, leaks=Leaks(state_dir=state_dir))


def kill_rounds(tmp_path, mode, rounds):
    state_dir = str(tmp_path / mode)
    os.makedirs(state_dir)
    path = os.path.join(state_dir, STATE_NAME)
    env = dict(os.environ, PYTHONPATH=REPO)
    r = random.Random(7)
    outcomes = []
    for _ in range(rounds):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, state_dir, mode], stdout=subprocess.PIPE, env=env)
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(r.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        temps = [os.path.join(state_dir, n) for n in os.listdir(state_dir)
                 if n.startswith("." + STATE_NAME + ".") and n.endswith(".tmp")]  # random names
        tmp_left = any(os.path.getsize(t) for t in temps)
        tell = Tell()
        w = LeakWatcher(config(state_dir), state_dir=state_dir, tell=tell)  # must never raise
        messages = [m for k, m, f in tell.events if k == "leak_state"]
        outcomes.append((os.path.exists(path), w.loaded, len(w.series), tmp_left, messages))
    return outcomes


def test_sigkill_mid_write_leaves_a_file_that_loads(tmp_path):
    outcomes = kill_rounds(tmp_path, "atomic", 25)
    for exists, loaded, n, _, messages in outcomes:
        if exists:
            assert loaded and n == SERIES, messages  # never torn: it is the old file or the new one
            assert messages and messages[0].startswith("loaded %d series" % SERIES)
    assert sum(1 for o in outcomes if o[0]) >= 20
    # the kills did land inside writes: a half-written temp file was left behind (and ignored)
    assert any(o[3] for o in outcomes), "no kill landed mid-write; make the writes longer"


def test_a_torn_file_is_ignored_with_a_message_never_a_crash(tmp_path):
    outcomes = kill_rounds(tmp_path, "naive", 25)
    torn = [o for o in outcomes if o[0] and not o[1]]
    for exists, loaded, n, _, messages in outcomes:
        if exists and not loaded:
            assert n == 0 and any("ignored" in m and "torn or garbled" in m for m in messages), messages
    # the control: written in place, kills do tear the file (so the atomic test above can fail)
    assert torn, "no torn file in %d kills of an in-place writer" % len(outcomes)
