"""Graceful stop: ask a process to go away before anything harsher.

With a stop command (argv, e.g. ``["systemctl", "stop", "foo.service"]``) the command is run -
never through a shell - and, if it cannot be run, times out or exits non-zero, the victim is
sent SIGTERM instead; the result then says ``method="sigterm"`` and ``error`` keeps the
command's problem. Without a command the victim is sent SIGTERM. Whether the victim then
really exits is for the caller to find out (``signals.wait_exit``).
"""
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from guardian.actions.signals import ProcessHandle, send_signal
from guardian.core.selfprotect import reset_child_oom_score_adj

__all__ = ["StopResult", "graceful_stop", "OUTPUT_LIMIT"]

OUTPUT_LIMIT = 512  # characters of the command's stdout+stderr kept


@dataclass
class StopResult:
    method: str  # "command" | "sigterm"
    ok: bool  # command exited 0 / SIGTERM was delivered
    returncode: Optional[int]  # the command's (negative: killed by that signal); None if it did not run
    error: Optional[str]
    output: str  # the command's stdout+stderr, at most OUTPUT_LIMIT characters


# What a command the guardian runs as root gets of an environment: a short fixed PATH and
# nothing of the daemon's own (no LD_* loader variables, NOTIFY_SOCKET, credentials).
COMMAND_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def _run(argv: Sequence[str], timeout_s: float) -> Tuple[Optional[int], str, Optional[str]]:
    """Run argv; (returncode, output, problem). Never raises.

    The command gets its own session, so on timeout it is killed together with whatever it
    started. Its output is read while it runs (only the first OUTPUT_LIMIT characters are
    kept, the rest is drained so it never blocks on a full pipe), and the wait ends when the
    command itself exits - not when every descendant that inherited the pipe has closed it.
    """
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            close_fds=True, start_new_session=True, preexec_fn=reset_child_oom_score_adj,
            env=dict(COMMAND_ENV), cwd="/",
        )
    except FileNotFoundError:
        return None, "", "stop command not found: %s" % argv[0]
    except PermissionError:
        return None, "", "stop command not executable: %s" % argv[0]
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return None, "", "stop command %s could not be started: %s" % (argv[0], e)

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
                problem = "stop command %s timed out after %gs" % (argv[0], timeout_s)
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
    output = kept.decode("utf-8", "replace")[:OUTPUT_LIMIT]
    return proc.returncode, output, problem


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


def graceful_stop(handle: Optional[ProcessHandle], argv: Optional[Sequence[str]], timeout_s: float = 10) -> StopResult:
    """Run the stop command (if any), falling back to SIGTERM; never raises."""
    if handle is None:  # gone or PID reused: do not run anything on its behalf
        return StopResult("command" if argv else "sigterm", False, None, "process gone (no handle)", "")
    command_problem = None
    returncode = None
    output = ""
    if isinstance(argv, (str, bytes)):
        command_problem = "stop command must be an argv list, not a string: %r" % (argv,)
    elif argv:
        returncode, output, command_problem = _run(argv, timeout_s)
        if command_problem is None and returncode == 0:
            return StopResult("command", True, 0, None, output)
        if command_problem is None:
            command_problem = "stop command %s exited with status %d" % (argv[0], returncode) if returncode > 0 \
                else "stop command %s killed by signal %d" % (argv[0], -returncode)
    try:
        delivered = send_signal(handle, signal.SIGTERM)
        term_problem = None if delivered else "process already gone"
    except (OSError, ValueError) as e:
        delivered = False
        term_problem = "SIGTERM to %d: %s" % (handle.pid, getattr(e, "strerror", None) or e)
    error = "; ".join(p for p in (command_problem, term_problem) if p) or None
    return StopResult("sigterm", delivered, returncode, error, output)
