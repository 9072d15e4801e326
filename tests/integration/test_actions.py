"""The act layer against real processes: pidfd signalling, graceful stop, reclaim knobs."""
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from guardian.actions import signals
from guardian.actions.reclaim import cgroup_reclaim, compact_memory, drop_caches
from guardian.actions.signals import (
    exited,
    kill,
    open_process,
    release_memory,
    send_signal,
    wait_exit,
)
from guardian.actions.run import OUTPUT_LIMIT
from guardian.actions.stop import graceful_stop

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0

SLEEPER = "import time; print('ready', flush=True); time.sleep(120)"
TERM_TRAPPER = """
import signal, sys, time
def on_term(signum, frame):
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
print('ready', flush=True)
while True:
    time.sleep(1)
"""


# --------------------------------------------------------------------------- helpers


def stat_fields(pid):
    """(state, starttime) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def starttime_of(pid):
    return stat_fields(pid)[1]


def dead(pid, starttime):
    """Gone, reused, or a zombie."""
    f = stat_fields(pid)
    return f is None or f[1] != starttime or f[0] in ("Z", "X")


def wait_dead(pid, starttime, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dead(pid, starttime):
            return True
        time.sleep(0.02)
    return dead(pid, starttime)


def read_line(proc, timeout=10.0):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child did not report in time"
    return proc.stdout.readline().decode().strip()


@pytest.fixture
def spawn():
    """Start python children; every one (and, for new sessions, its group) dies at teardown."""
    started = []

    def _spawn(code, new_session=False, wait_ready=True):
        p = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            start_new_session=new_session,
        )
        started.append((p, new_session))
        if wait_ready:  # the child prints 'ready' once its signal handlers are in place
            assert read_line(p) == "ready"
        return p

    try:
        yield _spawn
    finally:
        for p, new_session in started:
            # While we have not reaped it, p.pid (= its PGID with a new session) cannot be reused.
            if new_session and p.returncode is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            finally:
                p.stdout.close()


@pytest.fixture
def handles():
    opened = []

    def _track(h):
        if h is not None:
            opened.append(h)
        return h

    try:
        yield _track
    finally:
        for h in opened:
            h.close()


def child_handle(p, handles):
    h = handles(open_process(p.pid, starttime_of(p.pid)))
    assert h is not None
    return h


# --------------------------------------------------------------------------- signals


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


def test_none_handle_means_nothing_is_done():
    assert send_signal(None, signal.SIGKILL) is False
    assert kill(None, process_group=True) == signals.KillResult(False, False, False, None)
    assert exited(None) and wait_exit(None, 1)
    assert release_memory(None) == (False, None)
    assert open_process(0, 0) is None and open_process(-1, 0) is None


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


# --------------------------------------------------------------------------- graceful stop


def test_sigterm_lets_the_child_exit_cleanly(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, None)
    assert (r.method, r.ok, r.returncode, r.error, r.output) == ("sigterm", True, None, None, "")
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3  # its own exit code, not -9


def test_stop_command_stops_the_child(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["kill", "-TERM", str(p.pid)], timeout_s=10)
    assert (r.method, r.ok, r.returncode, r.error) == ("command", True, 0, None)
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3


def test_missing_stop_command_falls_back_to_sigterm(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["/nonexistent/guardian-stop-helper", "--now"])
    assert r.method == "sigterm" and r.ok and r.returncode is None
    assert "/nonexistent/guardian-stop-helper" in r.error
    assert wait_exit(h, 5)
    assert p.wait(timeout=5) == 3


def test_failing_stop_command_falls_back_to_sigterm(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, ["sh", "-c", "echo cannot stop it >&2; exit 4"])
    assert r.method == "sigterm" and r.ok and r.returncode == 4
    assert "status 4" in r.error and "cannot stop it" in r.output
    assert p.wait(timeout=5) == 3


def test_hanging_stop_command_times_out_is_killed_with_its_children_and_falls_back(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    r = graceful_stop(h, ["sh", "-c", 'sleep 60 & echo $! > "$1"; wait', "sh", str(pidfile)], timeout_s=0.5)
    assert time.monotonic() - t0 < 4
    assert r.method == "sigterm" and r.ok and r.returncode == -signal.SIGKILL
    assert "timed out" in r.error and "sh" in r.error
    assert p.wait(timeout=5) == 3
    bg = int(pidfile.read_text())
    assert wait_dead(bg, starttime_of(bg) if stat_fields(bg) else 0), "the stop command's child survived"


def test_stop_command_exit_is_not_held_up_by_a_descendant_holding_the_pipe(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    try:
        r = graceful_stop(h, ["sh", "-c", 'sleep 60 & echo $! > "$1"; echo stopping; kill -TERM "$2"',
                              "sh", str(pidfile), str(p.pid)], timeout_s=20)
        assert time.monotonic() - t0 < 5
        assert (r.method, r.ok, r.returncode, r.error) == ("command", True, 0, None)
        assert r.output.strip() == "stopping"
        assert p.wait(timeout=5) == 3
    finally:
        bg = int(pidfile.read_text())
        bh = open_process(bg, starttime_of(bg)) if stat_fields(bg) else None
        kill(bh)
        if bh:
            bh.close()


def test_stop_command_output_is_truncated(spawn, handles):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    r = graceful_stop(h, [sys.executable, "-c", "import os, sys\nprint('x' * 200000)\nos.kill(%d, 15)" % p.pid])
    assert r.method == "command" and r.ok
    assert r.output == "x" * OUTPUT_LIMIT
    assert p.wait(timeout=5) == 3


def test_string_argv_is_not_run_through_a_shell(spawn, handles, tmp_path):
    p = spawn(TERM_TRAPPER)
    h = child_handle(p, handles)
    marker = tmp_path / "ran"
    r = graceful_stop(h, "touch %s" % marker)
    assert r.method == "sigterm" and r.ok and "argv list" in r.error
    assert not marker.exists()
    assert p.wait(timeout=5) == 3


def test_graceful_stop_without_handle_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    r = graceful_stop(None, ["touch", str(marker)])
    assert not r.ok and r.error
    assert not marker.exists()


# --------------------------------------------------------------------------- reclaim


@pytest.mark.skipif(not IS_ROOT, reason="the /proc/sys/vm files are writable by UID 0 only")
def test_drop_caches_and_compact_memory_on_this_machine():
    for level in (1, 3):
        r = drop_caches(level)
        assert (r.step, r.ok, r.error) == ("drop_caches", True, None)
    r = compact_memory()
    assert (r.step, r.ok, r.error) == ("compact_memory", True, None)


def test_reclaim_on_a_fake_proc_root_reports_the_path(tmp_path):
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    r = drop_caches(1, proc_root=str(tmp_path))
    assert not r.ok and str(tmp_path / "sys/vm/drop_caches") in r.error and "ENOENT" in r.error
    r = compact_memory(proc_root=str(tmp_path))
    assert not r.ok and str(tmp_path / "sys/vm/compact_memory") in r.error
    assert list((tmp_path / "sys" / "vm").iterdir()) == []  # nothing was created
    r = drop_caches(1, proc_root=str(tmp_path / "nowhere"))
    assert not r.ok and "nowhere" in r.error


def test_drop_caches_rejects_bad_levels(tmp_path):
    for level in (0, 4, "3", True):
        r = drop_caches(level, proc_root=str(tmp_path))
        assert not r.ok and "level" in r.error


def test_reclaim_write_errors_are_reported_not_raised(tmp_path):
    vm = tmp_path / "sys" / "vm"
    vm.mkdir(parents=True)
    (vm / "drop_caches").write_text("")
    (vm / "drop_caches").chmod(0o400)
    if IS_ROOT:  # root bypasses file modes; a directory cannot be opened for writing either way
        (vm / "drop_caches").unlink()
        (vm / "drop_caches").mkdir()
    r = drop_caches(1, proc_root=str(tmp_path))
    assert not r.ok and str(vm / "drop_caches") in r.error


def test_cgroup_reclaim_without_memory_reclaim_is_not_supported(tmp_path):
    r = cgroup_reclaim(str(tmp_path), 1 << 20)
    assert (r.step, r.ok) == ("cgroup_reclaim", False)
    assert r.error.startswith("not supported") and str(tmp_path / "memory.reclaim") in r.error
    assert not (tmp_path / "memory.reclaim").exists()
    r = cgroup_reclaim(str(tmp_path / "gone"), 1 << 20)
    assert not r.ok and "gone" in r.error
    r = cgroup_reclaim(str(tmp_path), 0)
    assert not r.ok and "nbytes" in r.error


def test_cgroup_reclaim_writes_the_byte_count(tmp_path):
    (tmp_path / "memory.reclaim").write_text("")
    r = cgroup_reclaim(str(tmp_path), 12345)
    assert (r.ok, r.error) == (True, None)
    assert (tmp_path / "memory.reclaim").read_text() == "12345"


def _v2_memory_cgroup():
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split(" - ")[0].split()[4] for line in f if " - cgroup2 " in line]
    except OSError:
        return None
    for mnt in mounts:
        if os.path.exists(os.path.join(mnt, "memory.reclaim")):
            return mnt
        for entry in sorted(os.listdir(mnt)):
            if os.path.exists(os.path.join(mnt, entry, "memory.reclaim")):
                return os.path.join(mnt, entry)
    return None


@pytest.mark.skipif(not IS_ROOT or _v2_memory_cgroup() is None,
                    reason="needs root and a cgroup v2 hierarchy with the memory controller")
def test_cgroup_reclaim_on_a_real_cgroup():
    r = cgroup_reclaim(_v2_memory_cgroup(), 1 << 20)
    assert r.ok, r.error
