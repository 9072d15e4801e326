"""The reload's child (guardian.core.parts.reload): real forks. Whatever the child does (answers,
refuses, crashes, hangs, writes garbage), the daemon side gets one answer, reaps it and lives."""
import os
import signal
import time

from guardian.config import Config, Victims
from guardian.core.parts import reload as reload_part
from guardian.core.parts.reload import Reloader
from guardian.core.waiter import Waiter
from guardian.config import Wait


def run(load, timeout_s=20.0, limit=20.0):
    """One reload of `load` through a real poll set; returns what done() was told."""
    waiter = Waiter(Wait(use_psi=False), None)
    told = []
    r = Reloader(load, lambda new, error, refused: told.append((new, error, refused)), waiter, timeout_s=timeout_s)
    r.start()
    pid = r.pid
    deadline = time.monotonic() + limit
    while (not told or r.exiting) and time.monotonic() < deadline:
        waiter.wait_for(min(0.05, r.next_due(time.monotonic())))
        r.on_wake(time.monotonic())
    r.close()
    assert len(told) == 1, told
    assert not r.busy and not r.exiting
    try:  # reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)
        raise AssertionError("child %d not reaped" % pid)
    except ChildProcessError:
        pass
    return told[0]


def test_the_childs_config_arrives_whole():
    new, error, refused = run(lambda: Config(board="b", victims=Victims(ignore_names=("x", "y")), sysctl={"a": "1"}))
    assert new == Config(board="b", victims=Victims(ignore_names=("x", "y")), sysctl={"a": "1"})
    assert error == "" and not refused


def test_a_refusal_carries_the_loaders_message():
    def bad():
        raise ValueError("b.toml:2: thresholds.kil: unknown key")

    assert run(bad) == (None, "b.toml:2: thresholds.kil: unknown key", True)


def test_a_crash_is_a_failed_reload():
    new, error, refused = run(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert new is None and not refused and "signal 9" in error
    new, error, refused = run(lambda: os._exit(3))
    assert new is None and not refused and "status 3" in error


def test_a_hang_is_killed_at_the_timeout():
    began = time.monotonic()
    new, error, refused = run(lambda: time.sleep(3600), timeout_s=0.5)
    assert new is None and not refused and "did not answer within" in error
    assert time.monotonic() - began < 10


def test_garbage_on_the_pipe_is_a_failed_reload(monkeypatch):
    monkeypatch.setattr(reload_part.marshal, "dumps", lambda answer: b"\xffgarbage")  # in the child
    new, error, refused = run(Config)
    assert new is None and not refused and "garbage" in error


def test_the_child_leaves_the_daemons_handlers():
    def load():
        dfl = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
        return Config(board="default handlers" if dfl else "inherited handlers")

    before = signal.signal(signal.SIGHUP, lambda signum, frame: None)
    try:
        assert run(load)[0].board == "default handlers"
    finally:
        signal.signal(signal.SIGHUP, before)


def test_the_childs_cmdline_patterns_arrive_compiled(monkeypatch):
    """The reloaded config's patterns are compiled by the child (re stays out of the daemon)."""
    from guardian.config import Critical, Match
    from guardian.core import match

    monkeypatch.setattr(match, "_regex_cache", {})
    pattern = r"^/usr/sbin/(foo|bar)d\b"
    new, error, refused = run(lambda: Config(critical=(Critical(name="foo", match=Match(cmdline=pattern)),)))
    assert error == "" and not refused and new.critical[0].match.cmdline == pattern
    assert pattern in match._regex_cache  # adopted as the answer arrived
    assert match.regex(pattern).search("/usr/sbin/bard -n") and not match.regex(pattern).search("/usr/sbin/bazd")
