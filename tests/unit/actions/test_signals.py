"""Signalling without a process: a None handle does nothing, no pid 0 or -1 is opened."""
import errno
import os
import signal

from guardian.actions import signals
from guardian.actions.signals import (
    exited,
    kill,
    open_process,
    release_memory,
    send_signal,
    wait_exit,
)


def test_none_handle_means_nothing_is_done():
    assert send_signal(None, signal.SIGKILL) is False
    assert kill(None, process_group=True) == signals.KillResult(False, False, False, None)
    assert exited(None) and wait_exit(None, 1)
    assert release_memory(None) == (False, None)
    assert open_process(0, 0) is None and open_process(-1, 0) is None


class _Handle:
    """A handle whose pidfd is made up: _syscall is replaced, nothing reaches the kernel."""
    pid, pidfd, closed = 4242, 99, False


def _mrelease_raising(monkeypatch, err):
    def fake(name, *args):
        assert name == "process_mrelease" and args == (99, 0)
        if err:
            raise OSError(err, os.strerror(err))
        return 0
    monkeypatch.setattr(signals, "_syscall", fake)
    monkeypatch.setattr(signals, "_mrelease_missing", None)


def test_why_process_mrelease_reaped_nothing_is_kept(monkeypatch):
    # The VM suite counts these per kernel, to tell a kernel without it from a victim that had
    # let go of its memory already.
    for err, skipped in ((errno.ESRCH, "ESRCH"), (errno.EINVAL, "EINVAL"), (0, None)):
        _mrelease_raising(monkeypatch, err)
        assert signals._release_memory(_Handle()) == (err == 0, None, skipped)
        assert release_memory(_Handle()) == (err == 0, None)
    _mrelease_raising(monkeypatch, errno.ENOSYS)
    assert signals._release_memory(_Handle())[2] == "process_mrelease unavailable (ENOSYS)"
    # remembered: the next victim is not tried again, and says why
    assert signals._release_memory(_Handle())[2] == "process_mrelease unavailable (ENOSYS)"
    _mrelease_raising(monkeypatch, errno.EBADF)
    released, error, skipped = signals._release_memory(_Handle())
    assert not released and error.startswith("process_mrelease(4242):") and skipped is None
    h = _Handle()
    h.pidfd = None
    assert signals._release_memory(h) == (False, None, "no pidfd")


def test_kill_result_says_why_nothing_was_reaped(monkeypatch):
    _mrelease_raising(monkeypatch, errno.ESRCH)
    monkeypatch.setattr(signals, "send_signal", lambda handle, sig: True)
    monkeypatch.setattr(os, "getpid", lambda: 1)
    r = kill(_Handle(), mrelease=True)
    assert r == signals.KillResult(True, False, False, None, "ESRCH")
    assert kill(_Handle(), mrelease=False).mrelease_skipped is None
