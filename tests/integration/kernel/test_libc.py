"""guardian.kernel.libc against the real kernel: the calls from the C extension and the same
calls through ctypes (the fallback where no compiler built it) give the same results and the
same errors. Each call that changes the process runs in a child."""
import os
import select
import time

import pytest

from guardian.actions.signals import _syscall_number
from guardian.kernel import libc as libc_mod
from guardian.kernel import libc_fallback
from tests.support.tools import NO_EXTENSION, fallback_and_extension

try:
    from guardian import _rest
except ImportError:
    _rest = None

@pytest.fixture(params=fallback_and_extension(libc_fallback.CtypesLibc(), "ctypes", _rest))
def calls(request):
    return request.param


def test_the_daemon_uses_the_extension_where_it_is_built():
    if _rest is None:
        pytest.skip(NO_EXTENSION)
    assert libc_mod.libc() is _rest


def in_child(fn):
    """fn() in a forked child; its return value (an int 0..255) is the child's exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            code = fn()
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_syscall_pidfd_open_and_its_error(calls):
    fd = calls.syscall(_syscall_number("pidfd_open"), os.getpid(), 0)
    try:
        assert os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:[pidfd]"
    finally:
        os.close(fd)
    with pytest.raises(OSError) as err:
        calls.syscall(_syscall_number("pidfd_open"), -1, 0)
    assert err.value.errno == 22 and err.value.strerror == os.strerror(22)


def test_prctl_answers_and_refuses(calls):
    PR_GET_DUMPABLE = 3
    assert calls.prctl(PR_GET_DUMPABLE) in (0, 1)
    with pytest.raises(OSError) as err:
        calls.prctl(-1)
    assert err.value.errno == 22


def _gone_or_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_the_death_signal_arrives(calls):
    """prctl(PR_SET_PDEATHSIG, SIGKILL) in a grandchild: it dies when its parent (the child)
    exits, as the reload child does when the daemon dies."""
    r, w = os.pipe()

    def child():
        pid = os.fork()
        if pid == 0:
            calls.prctl(1, 9)
            os.write(w, b"%d\n" % os.getpid())
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        return 0

    assert in_child(child) == 0
    os.close(w)
    grandchild = int(os.read(r, 32))
    os.close(r)
    deadline = time.monotonic() + 5
    while not _gone_or_zombie(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone_or_zombie(grandchild)


def test_mlockall_locks_and_refuses_bad_flags(calls):
    def lock():
        calls.mlockall(1 | 2 | 4)  # MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT (x86, arm)
        with open("/proc/self/status") as f:
            locked = [line for line in f if line.startswith("VmLck:")][0]
        return 0 if int(locked.split()[1]) > 0 else 1

    assert in_child(lock) == 0
    with pytest.raises(OSError) as err:
        calls.mlockall(0)
    assert err.value.errno == 22


def test_timerfd_fires_at_the_interval_and_stops(calls):
    fd = calls.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        calls.timerfd_settime(fd, 0.05)
        assert select.select([fd], [], [], 2)[0] == [fd]
        time.sleep(0.2)
        assert int.from_bytes(os.read(fd, 8), "little") >= 2
        calls.timerfd_settime(fd, 0)
        assert select.select([fd], [], [], 0.2)[0] == []
        with pytest.raises(ValueError):
            calls.timerfd_settime(fd, -1)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as err:
        calls.timerfd_settime(fd, 1)  # closed
    assert err.value.errno == 9
    with pytest.raises(OSError) as err:
        calls.timerfd_create(12345, 0)
    assert err.value.errno == 22


def test_attach_filter_drops_then_accepts(calls):
    """A classic BPF filter on a real socket: `ret #0` drops every datagram in the kernel,
    `ret #-1` takes them all again (what the proc connector's filter does for exec events)."""
    import socket
    import struct

    drop, accept = struct.pack("=HBBI", 0x06, 0, 0, 0), struct.pack("=HBBI", 0x06, 0, 0, 0xFFFFFFFF)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        calls.attach_filter(b.fileno(), drop)
        a.send(b"dropped")
        with pytest.raises(BlockingIOError):
            b.recv(64)
        calls.attach_filter(b.fileno(), accept)
        a.send(b"kept")
        assert b.recv(64) == b"kept"
        with pytest.raises(ValueError):
            calls.attach_filter(b.fileno(), b"short")
    closed = os.open("/dev/null", os.O_RDONLY)
    os.close(closed)
    with pytest.raises(OSError) as err:
        calls.attach_filter(closed, accept)
    assert err.value.errno == 9


def test_eventfd_counts_what_is_written_and_is_non_blocking(calls):
    """os.eventfd came in Python 3.10; the cgroup v1 usage thresholds need one on 3.9 too."""
    fd = calls.eventfd(0, os.O_NONBLOCK | os.O_CLOEXEC)  # EFD_NONBLOCK, EFD_CLOEXEC
    try:
        assert os.get_blocking(fd) is False and os.get_inheritable(fd) is False
        with pytest.raises(BlockingIOError):
            os.read(fd, 8)
        os.write(fd, (2).to_bytes(8, "little"))
        os.write(fd, (3).to_bytes(8, "little"))
        assert select.select([fd], [], [], 0)[0] == [fd]
        assert int.from_bytes(os.read(fd, 8), "little") == 5
    finally:
        os.close(fd)
    with pytest.raises(OSError) as err:
        calls.eventfd(0, 1 << 30)  # no such flag
    assert err.value.errno == 22
