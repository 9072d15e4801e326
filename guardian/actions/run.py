"""Running a command a board config names: a graceful stop's command, an on_leak restart or command.

Never through a shell; stdin /dev/null, a short fixed environment (COMMAND_ENV), cwd /, its
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

subprocess costs about 2 MiB of RSS: it is imported when a command runs, not with this module.
"""
from __future__ import annotations

import os
import signal
import time

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


def _reset_oom_score_adj() -> None:
    """preexec_fn for commands the guardian runs: the guardian holds oom_score_adj -1000 and
    children inherit it, so a service a command starts must not be exempt from the kernel's
    OOM killer because of us. Only async-signal-safe calls (runs between fork and exec)."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass


def run(argv: Sequence[str], timeout_s: float, what: str = "command", may_start_service: bool = False) -> Outcome:
    """Run argv (a list, never a string for a shell) for at most timeout_s; `what` names the
    command in the words for one that cannot be started. Never raises for the command's sake."""
    if isinstance(argv, (str, bytes)) or not argv:
        return Outcome(False, None, "%s must be a non-empty argv list, not %r" % (what, argv), False, "", 0.0)
    import subprocess  # costs RAM: only when a command runs

    started = time.monotonic()
    problem: Optional[str]
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if may_start_service else subprocess.PIPE,
            stderr=subprocess.DEVNULL if may_start_service else subprocess.STDOUT,
            close_fds=True, start_new_session=True, preexec_fn=_reset_oom_score_adj,
            env=dict(COMMAND_ENV), cwd="/",
        )
    except FileNotFoundError:
        problem = "%s not found: %s" % (what, argv[0])
    except PermissionError:
        problem = "%s not executable: %s" % (what, argv[0])
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        problem = "%s %s could not be started: %s" % (what, argv[0], e)
    else:
        if may_start_service:
            returncode, problem = _wait(proc, timeout_s)
            output = ""
        else:
            returncode, problem, output = _wait_reading(proc, timeout_s)
        timed_out = problem is not None  # the only problem a wait has
        if problem is None and returncode:
            problem = "exited with status %d" % returncode if returncode > 0 else "killed by signal %d" % -returncode
        return Outcome(True, returncode, problem, timed_out, output, time.monotonic() - started)
    return Outcome(False, None, problem, False, "", time.monotonic() - started)


def _wait(proc, timeout_s: float) -> Tuple[Optional[int], Optional[str]]:
    """(returncode, problem on timeout). On timeout only the command itself is killed."""
    import subprocess

    try:
        return proc.wait(timeout=timeout_s), None
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None, "timed out after %gs and did not die after SIGKILL" % timeout_s
        return proc.returncode, "timed out after %gs" % timeout_s


def _wait_reading(proc, timeout_s: float) -> Tuple[Optional[int], Optional[str], str]:
    """(returncode, problem on timeout, output), reading the output while the command runs:
    only the first OUTPUT_LIMIT characters are kept, the rest is drained so that it never
    blocks on a full pipe. On timeout its process group is killed (start_new_session)."""
    import select
    import subprocess

    kept = bytearray()
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout_s
    problem = None
    eof = False
    try:
        while True:
            if proc.poll() is not None:
                # exited: take what is already in the pipe, do not wait for stragglers
                for _ in range(32):  # bounded: a descendant may keep writing
                    if eof or not poller.poll(0):
                        break
                    eof = not _read_into(fd, kept)
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = "timed out after %gs" % timeout_s
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own group: start_new_session
                except OSError:
                    proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # stuck in D state; Popen reaps it later
                    problem += " and did not die after SIGKILL"
                break
            if eof:
                time.sleep(min(0.02, remaining))
            elif poller.poll(int(min(remaining, 0.05) * 1000) + 1):
                eof = not _read_into(fd, kept)
    finally:
        proc.stdout.close()
        if proc.poll() is None and problem is None:  # only on an unexpected exception above
            proc.kill()
    return proc.returncode, problem, kept.decode("utf-8", "replace")[:OUTPUT_LIMIT]


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
