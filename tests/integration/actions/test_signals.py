"""Signalling real processes race-free (signals.py): pidfd signalling, process groups,
the degraded and raw-syscall paths, and never the wrong process."""
import os
import signal
import subprocess
import sys
import time

import pytest

from guardian.actions import signals
from guardian.actions.signals import (
    exited,
    kill,
    open_process,
    release_memory,
    send_signal,
    wait_exit,
)
from guardian.actions.stop import graceful_stop
from tests.support.processes import TERM_TRAPPER, child_handle, read_line, stat_fields, starttime_of, wait_dead

pytestmark = pytest.mark.integration

SLEEPER = "import time; print('ready', flush=True); time.sleep(120)"


def test_kill_real_child_through_pidfd(spawn, handles):
    p = spawn(SLEEPER)
    h = child_handle(p, handles)
    assert h.pidfd is not None and h.degraded is None
    assert not exited(h)

    r = kill(h)

    assert r.signalled and not r.group_signalled
    assert r.error is None  # mrelease saying EINVAL/ESRCH is not an error
    assert isinstance(r.mreleased, bool)
    assert wait_exit(h, 5)
    assert exited(h)
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_kill_child_holding_memory_releases_without_error(spawn, handles):
    p = spawn("import time; b = bytearray(64 << 20); print('ready', flush=True); time.sleep(120)")
    h = child_handle(p, handles)
    r = kill(h, mrelease=True)
    assert r.signalled and r.error is None
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_release_memory_of_a_live_process_is_not_an_error_and_does_not_kill(spawn, handles):
    p = spawn(SLEEPER)
    h = child_handle(p, handles)
    assert release_memory(h) == (False, None)  # EINVAL: not dying
    assert signals._release_memory(h) == (False, None, "EINVAL")  # and the kill result would say so
    time.sleep(0.1)
    assert p.poll() is None and not exited(h)


def test_wait_exit_times_out_on_a_live_process(spawn, handles):
    p = spawn(SLEEPER)
    h = child_handle(p, handles)
    t0 = time.monotonic()
    assert wait_exit(h, 0.3) is False
    assert 0.25 <= time.monotonic() - t0 < 3
    assert p.poll() is None


def test_reaped_victim_is_never_signalled_and_nothing_raises(spawn, handles):
    p = spawn(SLEEPER)
    st = starttime_of(p.pid)
    h = handles(open_process(p.pid, st))
    p.kill()
    p.wait(timeout=5)

    assert open_process(p.pid, st) is None  # reaped (or reused with another starttime)
    assert send_signal(h, signal.SIGTERM) is False  # ESRCH through the old pidfd
    assert exited(h) and wait_exit(h, 0)
    r = kill(h, process_group=True)
    assert r.signalled is False and r.group_signalled is False and r.mreleased is False
    assert "gone" in r.error  # the group could not be read any more; said, not raised
    r = kill(h)
    assert (r.signalled, r.mreleased, r.error) == (False, False, None)


def test_wrong_starttime_returns_none_and_live_process_is_not_signalled(spawn):
    p = spawn(TERM_TRAPPER)  # would exit 3 on SIGTERM, -9 on SIGKILL
    st = starttime_of(p.pid)

    assert open_process(p.pid, st + 1) is None
    assert open_process(p.pid, st - 1) is None
    h = open_process(p.pid, st + 1)
    kill(h, process_group=True)
    send_signal(h, signal.SIGTERM)
    graceful_stop(h, None)

    time.sleep(0.3)
    assert p.poll() is None, "the live process was signalled"
    assert stat_fields(p.pid)[0] not in ("Z", "X")


def test_zombie_gets_a_handle_that_reports_exited(handles):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while stat_fields(p.pid)[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        h = handles(open_process(p.pid, starttime_of(p.pid)))
        assert h is not None
        assert exited(h)
        r = kill(h)
        assert r.error is None and r.mreleased is False
    finally:
        p.wait(timeout=5)


def test_thread_id_is_not_a_process(spawn):
    p = spawn("import threading, time\n"
              "t = threading.Thread(target=time.sleep, args=(120,), daemon=True); t.start()\n"
              "print(t.native_id, flush=True); time.sleep(120)", wait_ready=False)
    tid = int(read_line(p))
    assert tid != p.pid
    assert open_process(tid, starttime_of(tid)) is None
    assert p.poll() is None


def test_handle_is_a_context_manager_and_closes_its_pidfd(spawn):
    p = spawn(SLEEPER)
    with open_process(p.pid, starttime_of(p.pid)) as h:
        fd = h.fileno()
        os.fstat(fd)
    assert h.closed and h.pidfd is None
    assert kill(h).error == "handle is closed"
    with pytest.raises(ValueError):
        send_signal(h, signal.SIGTERM)
    assert p.poll() is None


def test_refuses_to_kill_itself():
    h = open_process(os.getpid(), starttime_of(os.getpid()))
    try:
        r = kill(h, process_group=True)
        assert not r.signalled and "itself" in r.error
    finally:
        h.close()


GROUP_PARENT = """
import subprocess, time
kids = [subprocess.Popen(['sleep', '120']) for _ in range(3)]
nested = subprocess.Popen(['sh', '-c', 'sleep 121 & echo $!; wait'], stdout=subprocess.PIPE)
grandgrand = nested.stdout.readline().decode().strip()
print(' '.join([str(k.pid) for k in kids] + [str(nested.pid), grandgrand]), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("pidfd_group_flag", [True, False], ids=["pidfd-flag", "killpg"])
def test_process_group_kill_takes_the_grandchildren(spawn, handles, monkeypatch, pidfd_group_flag):
    if not pidfd_group_flag:
        monkeypatch.setattr(signals, "_pgroup_flag_missing", True)
    p = subprocess.Popen([sys.executable, "-c", GROUP_PARENT], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, start_new_session=True)
    try:
        descendants = [int(x) for x in read_line(p).split()]
        times = {pid: starttime_of(pid) for pid in descendants}
        assert all(os.getpgid(pid) == p.pid for pid in descendants)
        h = child_handle(p, handles)

        r = kill(h, process_group=True)

        assert r.signalled and r.group_signalled and r.error is None
        assert wait_exit(h, 5)
        assert p.wait(timeout=5) == -signal.SIGKILL
        for pid, st in times.items():
            assert wait_dead(pid, st), "descendant %d survived" % pid
    finally:
        if p.returncode is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.kill()
            p.wait(timeout=5)
        p.stdout.close()


def test_process_group_kill_refuses_the_guardians_own_group(spawn, handles):
    p = spawn(SLEEPER)  # same process group as this test runner
    assert os.getpgid(p.pid) == os.getpgrp()
    h = child_handle(p, handles)
    r = kill(h, process_group=True)
    assert r.signalled and not r.group_signalled
    assert "refusing" in r.error and str(os.getpgrp()) in r.error
    assert wait_exit(h, 5)  # we are still here, the victim is not


def test_degraded_mode_without_pidfd(spawn, handles, monkeypatch):
    monkeypatch.setattr(signals, "_pidfd_missing", "forced by test")
    p = spawn(TERM_TRAPPER)
    st = starttime_of(p.pid)
    assert open_process(p.pid, st + 1) is None
    h = handles(open_process(p.pid, st))
    assert h.pidfd is None and h.degraded == "forced by test"
    assert not exited(h)
    assert wait_exit(h, 0.1) is False

    r = kill(h)

    assert (r.signalled, r.mreleased, r.error) == (True, False, None)
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_raw_syscall_fallback_when_python_lacks_the_wrappers(spawn, handles, monkeypatch):
    # Python builds without os.pidfd_open / signal.pidfd_send_signal use syscalls 434 / 424.
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    monkeypatch.delattr(signal, "pidfd_send_signal", raising=False)
    p = spawn(TERM_TRAPPER)
    st = starttime_of(p.pid)
    assert open_process(p.pid, st + 1) is None
    h = child_handle(p, handles)
    assert h.pidfd is not None and h.degraded is None
    assert send_signal(h, 0) is True
    r = kill(h)
    assert r.signalled and r.error is None
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == -signal.SIGKILL
    assert send_signal(h, signal.SIGTERM) is False
