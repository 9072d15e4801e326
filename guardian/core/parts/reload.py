"""SIGHUP's reload, in a short-lived child: loading a config imports the board loader (TOML,
schema, board detection), which must not stay in the daemon's memory, and may take a while or
hang (a config on a stuck mount). The daemon keeps watching memory meanwhile: the child's pipe
is in its poll set, and the answer, plain data through marshal ({"config": to_plain(...),
"regex": its cmdline patterns as re compiled them (guardian.core.match.programs)} or
{"error": text}), is applied when it arrives. A child that crashes, hangs past timeout_s (it
is killed) or writes garbage is a failed reload, never the daemon's end; every child is reaped.

What a fork child inherits of the daemon and must not act on: the signal handlers and the
wakeup fd (reset to the defaults), the PSI trigger and netlink sockets (never polled here: the
child only loads and exits); memory locks and the death signal are not inherited (the child
asks for SIGKILL at the daemon's death itself)."""
import marshal
import os
import _signal as signal  # not signal.py: its enums import enum, functools, collections (~0.7 MiB)
import sys
import time

from guardian.child import exit_child, write_all
from guardian.config import from_plain, to_plain
from guardian.core.match import adopt, programs
from guardian.core.parts import NEVER, Part
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: the daemon keeps what it imports
    from typing import Callable, List, Optional

    from guardian.config import Config
    from guardian.core.waiter import Waiter

TIMEOUT_S = 30.0
MAX_ANSWER = 1 << 20  # a config is a few KiB: more is garbage
REAP_EVERY_S = 0.1  # how often an exiting child is looked at until it is reaped


class Reloader(Part):
    """load(): in the child, the new config (raises to refuse it). done(config, error,
    refused): in the daemon, once per reload: (the new config, "", False), or (None, why,
    True) when the loader refused it, (None, why, False) when the child failed."""

    name = "reload"

    def __init__(self, load: "Callable[[], Config]", done: "Callable[[Optional[Config], str, bool], None]",
                 waiter: "Waiter", timeout_s: "Optional[float]" = None,
                 began: "Optional[Callable[[], None]]" = None):
        self.load = load
        self.done = done
        self.began = began  # in the daemon, as each child starts (sd_notify RELOADING=1)
        self.waiter = waiter
        self.timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        self.pid: Optional[int] = None  # the child whose answer is awaited
        self.fd: Optional[int] = None  # its pipe
        self.deadline = NEVER
        self.chunks: List[bytes] = []
        self.size = 0
        self.exiting: List[int] = []  # children done with, not reaped yet
        self.queued = False  # a SIGHUP came while a reload ran: another follows it
        self.garbage = ""  # what was wrong with an answer that was no answer

    @property
    def busy(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        """Fork the loader (a second call while one runs queues one more)."""
        if self.busy:
            self.queued = True
            log.info("SIGHUP: a reload is under way; another follows it")
            return
        self.queued = False
        for stream in (sys.stdout, sys.stderr):  # or the child would write their buffers again
            stream.flush()
        try:
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                pid = os.fork()
            except OSError:
                os.close(r)
                os.close(w)
                raise
        except OSError as exc:  # no memory for a child now: the old config stays
            self.done(None, "cannot start the loader: %s" % (exc.strerror or exc), False)
            return
        if pid == 0:
            os.close(r)
            self._child(w)
        os.close(w)
        os.set_blocking(r, False)
        self.pid, self.fd, self.chunks, self.size = pid, r, [], 0
        self.deadline = time.monotonic() + self.timeout_s
        self.waiter.add(r, self._on_pipe)
        if self.began is not None:
            self.began()

    # ---------------------------------------------------------------------- in the child

    def _child(self, w: int) -> None:
        code = 1
        try:
            _leave_the_daemon()
            try:
                config = self.load()
                answer = {"config": to_plain(config), "regex": programs(config)}
            except Exception as exc:
                answer = {"error": str(exc) or type(exc).__name__}
            write_all(w, marshal.dumps(answer))
            code = 0
        except BaseException as exc:
            try:
                log.error("reload: %s", exc)
            except BaseException:
                pass
        finally:
            exit_child(code)

    # ---------------------------------------------------------------------- in the daemon

    def _on_pipe(self) -> None:
        """The waiter calls this directly (not through the loop's guard): nothing may escape."""
        try:
            self.on_readable()
        except Exception as exc:
            log.error("reload: %s", exc)
            if self.busy:
                try:
                    self._finish(None, str(exc), False, kill=True)
                except Exception as again:
                    log.error("reload: %s", again)

    def on_readable(self) -> None:
        if self.fd is None:
            return
        try:
            while self.size <= MAX_ANSWER:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.chunks.append(chunk)
                self.size += len(chunk)
            else:
                self._finish(None, "the loader's answer is too long", False, kill=True)
                return
        except BlockingIOError:
            return  # more to come
        except OSError as exc:
            self._finish(None, "reading the loader's answer: %s" % exc, False, kill=True)
            return
        self._answered(b"".join(self.chunks))

    def _answered(self, data: bytes) -> None:
        new, error = None, ""
        try:
            answer = marshal.loads(data)
            if "config" in answer:
                new = from_plain(answer["config"])
                if not hasattr(new, "thresholds"):
                    raise ValueError("not a config")
                adopt(answer.get("regex"))  # its cmdline patterns, compiled: no re here
            else:
                error = str(answer["error"])
        except Exception as exc:  # EOF without an answer (a crash) or garbage
            self._close_pipe()
            self.garbage = "garbage (%s)" % (exc,) if data else ""
            self._crashed(time.monotonic())
            return
        self._finish(new, error, new is None)

    def _crashed(self, now: float) -> None:
        """No answer: tell why once the child's exit status is known (it closed the pipe as it
        died, a moment before it can be reaped), or at the deadline."""
        assert self.pid is not None
        status = self._reap(self.pid)
        if status is None and now < self.deadline:
            return  # on_wake looks again
        if status is not None:
            self.pid = None
        if self.garbage:
            why = "the loader answered %s" % self.garbage
        else:
            why = "the loader %s" % (_died(status) if status is not None else "closed its pipe without an answer")
        self._finish(None, why, False, kill=True)

    def _close_pipe(self) -> None:
        if self.fd is not None:
            self.waiter.remove(self.fd)
            os.close(self.fd)
            self.fd = None

    def _finish(self, new: "Optional[Config]", error: str, refused: bool, kill: bool = False) -> None:
        self._close_pipe()
        if self.pid is not None:
            if kill:
                _kill(self.pid)
            if self._reap(self.pid) is None:
                self.exiting.append(self.pid)
            self.pid = None
        self.chunks, self.size, self.deadline = [], 0, NEVER
        self.done(new, error, refused)
        if self.queued:
            self.start()

    def _reap(self, pid: int) -> "Optional[int]":
        """Its wait status once it has exited (it is reaped then), else None."""
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        return status if done else None

    def next_due(self, now: float) -> float:
        due = max(0.0, self.deadline - now)
        if self.exiting or (self.busy and self.fd is None):
            return min(due, REAP_EVERY_S)
        return due

    def on_wake(self, now: float) -> None:
        self.exiting = [pid for pid in self.exiting if self._reap(pid) is None]
        if not self.busy:
            return
        if self.fd is None:
            self._crashed(now)
        elif now >= self.deadline:
            self._finish(None, "the loader did not answer within %.0f s (killed)" % self.timeout_s, False, kill=True)

    def close(self) -> None:
        for pid in self.exiting + ([self.pid] if self.pid is not None else []):
            _kill(pid)
            self._reap(pid)  # SIGKILLed: a zombie a moment later at most, and we exit
        self._close_pipe()
        self.pid, self.exiting = None, []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _died(status: int) -> str:
    if os.WIFSIGNALED(status):
        return "died of signal %d" % os.WTERMSIG(status)
    return "exited with status %d without an answer" % os.WEXITSTATUS(status)


def _leave_the_daemon() -> None:
    """In a fresh fork of the daemon: its handlers would set the daemon's flags in the child and
    its wakeup fd would wake the daemon. Back to the defaults, and die with the daemon."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread: no wakeup fd was set from here
        pass
    try:
        from guardian.kernel.libc import libc

        PR_SET_PDEATHSIG = 1
        libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    try:  # the daemon's -1000 is not for its loader: the kernel may take it, the reload fails
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("0")
    except OSError:
        pass
