"""PyInstaller runtime hook: give the commands the guardian runs the environment it was
started with, let the second process of a onefile build own systemd's watchdog, and print an
uncaught exception with its source lines.

Runs inside the frozen guardian before guardian.cli. Changing these variables here does
not affect the running process: the dynamic loader read LD_LIBRARY_PATH at its start.
"""
import os
import sys


def _restore(name, saved_name):
    saved = os.environ.pop(saved_name, None)
    if saved is None:
        return False
    if saved:
        os.environ[name] = saved
    else:
        os.environ.pop(name, None)
    return True


def _fix_environment():
    # The bootloader points LD_LIBRARY_PATH at the bundle (for itself); a stop command
    # such as systemctl must load the system's libraries, not ours.
    if not _restore("LD_LIBRARY_PATH", "LD_LIBRARY_PATH_ORIG"):
        os.environ.pop("LD_LIBRARY_PATH", None)
    # The init scripts point TMPDIR at flash for the unpacker and keep the caller's in
    # GUARDIAN_TMPDIR (empty: it had none).
    _restore("TMPDIR", "GUARDIAN_TMPDIR")
    # onefile: systemd's main PID is the unpacker, our parent, which only waits for us;
    # the watchdog pings come from here (the unit has NotifyAccess=all).
    wpid = os.environ.get("WATCHDOG_PID")
    if wpid and wpid == str(os.getppid()):
        os.environ["WATCHDOG_PID"] = str(os.getpid())


def _excepthook(kind, value, tb):
    """An uncaught exception as Python prints it, each frame with its line: the build keeps the
    line tables of the guardian's code in a file (guardian.lines), which Python's own printer
    does not read ("line -1")."""
    try:
        from guardian.logger import format_exception
        sys.stderr.write(format_exception((kind, value, tb)) + "\n")
    except Exception:
        sys.__excepthook__(kind, value, tb)


_fix_environment()
sys.excepthook = _excepthook
