"""Running a command a board config names: a graceful stop's command, an on_leak restart or command.

Never parsed by a shell; stdin /dev/null, a short fixed environment (COMMAND_ENV), cwd /, its
own session, and oom_score_adj reset to 0 in the child (the guardian's own protection is not
inherited); killed with SIGKILL at its timeout. A command that cannot be started, times out or
fails is an outcome in words, never an exception.

Commands differ in one way (may_start_service):
- a stop command ends something: its output is kept (the first OUTPUT_LIMIT characters) and
  read while it runs, the wait ends when the command itself exits (not when every descendant
  that inherited the pipe has closed it), and on timeout it is killed together with whatever
  it started (its session's process group);
- a restart (or another on_leak command) may start a service that outlives it: stdout and
  stderr are /dev/null, as a service that inherited a pipe the guardian later closes would
  die of SIGPIPE on its first line of output, and on timeout only the command itself is
  killed, not its group, which may hold the service it has just started.

Started with posix_spawn (vfork and exec: no copy of the guardian's page tables when memory is
short, and none of subprocess's ~2 MiB resident; this module is imported with the daemon).
posix_spawn runs no Python in the child, so the oom_score_adj reset is done by /bin/sh before
it execs the command: `sh -c 'echo 0 >/proc/self/oom_score_adj; exec "$@"' guardian ARGV`. The
command is still never parsed by a shell (its argv are the positional parameters), and nothing
of it runs at the guardian's -1000, not even a child it forks at once - which a write of
/proc/PID/oom_score_adj from the guardian after the spawn could not promise. That write is
only the fallback where there is no /bin/sh. The shell also moves to / (posix_spawn has no
cwd) and drops the variables it would add (PWD, OLDPWD, SHLVL; bash as /bin/sh keeps SHLVL).
"""
from __future__ import annotations

import os
import _signal as signal  # not signal.py: its enums import enum, functools, collections (~0.7 MiB)
import time

from guardian.kernel.libc import POLLIN, poll
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence, Tuple


__all__ = ["Outcome", "run", "COMMAND_ENV", "OUTPUT_LIMIT"]

# What a command the guardian runs as root gets of an environment: a short fixed PATH and
# nothing of the daemon's own (no LD_* loader variables, NOTIFY_SOCKET, credentials).
COMMAND_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}

OUTPUT_LIMIT = 512  # characters of the command's stdout+stderr kept


@record
class Outcome:
    """How a command went: started or not, its exit status, its problem in words, its output."""

    started: bool
    returncode: Optional[int]  # negative: ended by that signal; None: not started, or alive after SIGKILL
    # None: it exited with status 0 in time. Else why it did not start, naming it as `what`
    # ("stop command not found: foo"), or how it ended, for the caller to say which command
    # it was: "timed out after 10s", "exited with status 1", "killed by signal 9".
    problem: Optional[str]
    timed_out: bool
    output: str  # its stdout+stderr, at most OUTPUT_LIMIT characters ("" with may_start_service)
    seconds: float


SHELL = "/bin/sh"
# Run by SHELL with the command's argv as "$@" (never parsed): oom_score_adj back to 0 before
# anything of the command runs, cwd /, and the environment as given (a shell adds these).
_WRAPPER = 'cd / && unset OLDPWD PWD SHLVL; echo 0 2>/dev/null >/proc/self/oom_score_adj; exec "$@"'
# A command that did not die after SIGKILL (D state): reaped at a later run, never waited for.
_unreaped: list[int] = []


def run(argv: Sequence[str], timeout_s: float, what: str = "command", may_start_service: bool = False) -> Outcome:
    """Run argv (a list, never a string for a shell) for at most timeout_s; `what` names the
    command in the words for one that cannot be started. Never raises for the command's sake."""
    if isinstance(argv, (str, bytes)) or not argv:
        return Outcome(False, None, "%s must be a non-empty argv list, not %r" % (what, argv), False, "", 0.0)
    _reap_leftovers()
    started = time.monotonic()
    path, problem = _resolve(str(argv[0]), what)
    if path is not None:
        read_fd = write_fd = None
        try:
            if not may_start_service:
                read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
            pid = _spawn(path, [str(a) for a in argv[1:]], write_fd)
        except FileNotFoundError:
            problem = "%s not found: %s" % (what, argv[0])
        except PermissionError:
            problem = "%s not executable: %s" % (what, argv[0])
        except (OSError, ValueError) as e:
            problem = "%s %s could not be started: %s" % (what, argv[0], e)
        else:
            if write_fd is not None:
                os.close(write_fd)
                write_fd = None
            if read_fd is None:
                returncode, problem = _wait(pid, timeout_s)
                output = ""
            else:
                returncode, problem, output = _wait_reading(pid, read_fd, timeout_s)
                read_fd = None  # closed by _wait_reading
            timed_out = problem is not None  # the only problem a wait has
            if problem is None and returncode:
                problem = ("exited with status %d" % returncode if returncode > 0
                           else "killed by signal %d" % -returncode)
            return Outcome(True, returncode, problem, timed_out, output, time.monotonic() - started)
        finally:
            for fd in (read_fd, write_fd):
                if fd is not None:
                    os.close(fd)
    return Outcome(False, None, problem, False, "", time.monotonic() - started)


def _resolve(name: str, what: str) -> Tuple[Optional[str], Optional[str]]:
    """(the file to run, None) or (None, why not): a name without a slash is searched in
    COMMAND_ENV's PATH, as subprocess did with env= (not the daemon's own PATH)."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in COMMAND_ENV["PATH"].split(":")]
    denied = False
    for path in candidates:
        if os.path.isdir(path) or not os.path.exists(path):
            denied = denied or os.path.isdir(path)
            continue
        if os.access(path, os.X_OK):
            return path, None
        denied = True
    return None, ("%s not executable: %s" if denied else "%s not found: %s") % (what, name)


def _spawn(path: str, args: list[str], stdout_fd: Optional[int]) -> int:
    """posix_spawn the command (through the SHELL wrapper where there is one) in its own
    session: stdin /dev/null, stdout+stderr to `stdout_fd` (None: /dev/null), COMMAND_ENV,
    no other descriptor (the guardian's own are close-on-exec; any other is closed here)."""
    actions: list = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if stdout_fd is None:
        actions.append((os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
    else:
        actions.append((os.POSIX_SPAWN_DUP2, stdout_fd, 1))
    actions.append((os.POSIX_SPAWN_DUP2, 1, 2))
    actions.extend((os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds())
    wrapped = os.path.exists(SHELL)
    program, argv = (SHELL, [SHELL, "-c", _WRAPPER, "guardian", path] + args) if wrapped else (path, [path] + args)
    # Python ignores SIGPIPE (and SIGXFSZ): back to default in the child, as subprocess's
    # restore_signals did; an empty signal mask whatever the calling thread's.
    env, sigdef = dict(COMMAND_ENV), (signal.SIGPIPE, signal.SIGXFSZ)
    try:
        pid = os.posix_spawn(program, argv, env, file_actions=actions, setsigdef=sigdef, setsigmask=(), setsid=True)
    except NotImplementedError:  # a C library without POSIX_SPAWN_SETSID: its own group will do
        pid = os.posix_spawn(program, argv, env, file_actions=actions, setsigdef=sigdef, setsigmask=(), setpgroup=0)
    if not wrapped:
        # No shell to do it before the exec: at once from here (a child it forked already
        # keeps -1000; see the module doc).
        try:
            fd = os.open("/proc/%d/oom_score_adj" % pid, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
    return pid


def _inheritable_fds() -> list[int]:
    """Descriptors above 2 a child would inherit: none of the guardian's own (Python opens
    them close-on-exec), but one its starter leaked would be; close_fds=True closed those."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    fds = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    fds.append(fd)
            except OSError:  # the listing's own descriptor, closed since
                pass
    return fds


def _poll_exit(pid: int) -> Tuple[bool, Optional[int]]:
    """(exited, returncode): returncode negative for a signal."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # reaped by someone else: what subprocess said then
        return True, 0
    if got == 0:
        return False, None
    return True, os.waitstatus_to_exitcode(status)


def _wait_exit(pid: int, timeout_s: float) -> Tuple[bool, Optional[int]]:
    """Wait up to timeout_s for the child to exit (a short sleep between looks)."""
    deadline = time.monotonic() + timeout_s
    while True:
        exited, returncode = _poll_exit(pid)
        if exited:
            return True, returncode
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, None
        time.sleep(min(remaining, 0.02))


def _kill_after_timeout(pid: int, group: bool, timeout_s: float) -> Tuple[Optional[int], str]:
    problem = "timed out after %gs" % timeout_s
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)  # its own group: its session
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    exited, returncode = _wait_exit(pid, 5.0)
    if not exited:  # stuck in D state: reaped later
        _unreaped.append(pid)
        return None, problem + " and did not die after SIGKILL"
    return returncode, problem


def _reap_leftovers() -> None:
    for pid in list(_unreaped):
        if _poll_exit(pid)[0]:
            _unreaped.remove(pid)


def _wait(pid: int, timeout_s: float) -> Tuple[Optional[int], Optional[str]]:
    """(returncode, problem on timeout). On timeout only the command itself is killed."""
    exited, returncode = _wait_exit(pid, timeout_s)
    if exited:
        return returncode, None
    return _kill_after_timeout(pid, False, timeout_s)


def _wait_reading(pid: int, fd: int, timeout_s: float) -> Tuple[Optional[int], Optional[str], str]:
    """(returncode, problem on timeout, output), reading the output while the command runs:
    only the first OUTPUT_LIMIT characters are kept, the rest is drained so that it never
    blocks on a full pipe. On timeout its process group is killed (its own session). Closes fd."""
    kept = bytearray()
    readable = ((fd, POLLIN),)
    deadline = time.monotonic() + timeout_s
    problem = None
    returncode = None
    exited = False
    eof = False
    try:
        while True:
            exited, returncode = _poll_exit(pid)
            if exited:
                # exited: take what is already in the pipe, do not wait for stragglers
                for _ in range(32):  # bounded: a descendant may keep writing
                    if eof or not poll(readable, 0):
                        break
                    eof = not _read_into(fd, kept)
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                returncode, problem = _kill_after_timeout(pid, True, timeout_s)
                exited = True
                break
            if eof:
                time.sleep(min(0.02, remaining))
            elif poll(readable, min(remaining, 0.05) + 0.001):
                eof = not _read_into(fd, kept)
    finally:
        os.close(fd)
        if not exited:  # only on an unexpected exception above
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            _unreaped.append(pid)
    return returncode, problem, kept.decode("utf-8", "replace")[:OUTPUT_LIMIT]


def _read_into(fd: int, kept: bytearray) -> bool:
    """One read; False at EOF. Keeps up to 4 bytes/char of the limit, drops the rest."""
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    if not data:
        return False
    room = OUTPUT_LIMIT * 4 - len(kept)
    if room > 0:
        kept += data[:room]
    return True
