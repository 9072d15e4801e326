"""Graceful stop: ask a process to go away before anything harsher.

With a stop command (argv, e.g. ``["systemctl", "stop", "foo.service"]``) the command is run
(guardian.actions.run: never through a shell, its output kept, its process group killed at the
timeout) and, if it cannot be run, times out or exits non-zero, the victim is sent SIGTERM
instead; the result then says ``method="sigterm"`` and ``error`` keeps the command's problem.
Without a command the victim is sent SIGTERM. Whether the victim then really exits is for the
caller to find out (``signals.wait_exit``).
"""
from __future__ import annotations

import _signal as signal  # not signal.py: its enums import enum, functools, collections (~0.7 MiB)

from guardian.actions.run import run
from guardian.actions.signals import ProcessHandle, send_signal
from guardian.record import mutable_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

__all__ = ["StopResult", "graceful_stop"]


@mutable_record
class StopResult:
    method: str  # "command" | "sigterm"
    ok: bool  # command exited 0 / SIGTERM was delivered
    returncode: Optional[int]  # the command's (negative: killed by that signal); None if it did not run
    error: Optional[str]
    output: str  # the command's stdout+stderr, at most OUTPUT_LIMIT characters (actions.run)


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
        outcome = run(argv, timeout_s, what="stop command")
        returncode, output = outcome.returncode, outcome.output
        if outcome.problem is None:
            return StopResult("command", True, 0, None, output)
        command_problem = "stop command %s %s" % (argv[0], outcome.problem) if outcome.started else outcome.problem
    try:
        delivered = send_signal(handle, signal.SIGTERM)
        term_problem = None if delivered else "process already gone"
    except (OSError, ValueError) as e:
        delivered = False
        term_problem = "SIGTERM to %d: %s" % (handle.pid, getattr(e, "strerror", None) or e)
    error = "; ".join(p for p in (command_problem, term_problem) if p) or None
    return StopResult("sigterm", delivered, returncode, error, output)
