"""`guardian run`, started lean. What only the start needs (argparse, the board config loader:
TOML, schema, board detection; the board's sysctls; the warnings and log lines) runs in a
short-lived child (guardian.commands.cli.prepare_run); this process, which becomes the
daemon, never imports it: a module once imported stays for the process's life.

The child answers through a pipe, with marshal (builtin: nothing to import), either nothing
(an error, --help: it printed what `run` prints and exits with `run`'s status, which this
process then exits with) or {"start": {...}}: plain data, the config as guardian.config.to_plain
made it, its cmdline patterns as re compiled them (guardian.core.match.programs: this
process does not import re) and the leak state file as the JSON parser read it
(guardian.core.parts.leakstate.preread: this process does not hold the parser). A reload
(SIGHUP) loads again the same way in a child of the daemon (load_again,
guardian.core.parts.reload)."""
import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: the daemon keeps what it imports
    from typing import Any, Dict, List

    from guardian.config import Config

# A start answer is a few KiB, and the leak state file it carries parsed (at most 4 MiB of JSON).
MAX_ANSWER = 16 << 20


def run(argv: "List[str]") -> int:
    """Parse and prepare in a child; start the daemon here with what it answers."""
    # The child's ending, loaded before the fork so that it cannot fail there.
    import guardian.child  # noqa: F401
    for stream in (sys.stdout, sys.stderr):  # or the child would write their buffers again
        stream.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(argv, w)
    os.close(w)
    try:
        try:
            data = read_all(r, MAX_ANSWER)
        finally:
            os.close(r)
        status = wait_status(pid)
    except KeyboardInterrupt:  # Ctrl-C while the child loads: it gets it too
        wait_status(pid)
        return 130
    if not data:  # it printed why (or the help) and exited with run's status
        return status
    try:
        start = marshal.loads(data)["start"]
    except Exception:  # a child that died mid-answer
        return status or 1
    del data  # this frame lasts as long as the daemon: the answer's bytes must not
    return serve(start)


def _child(argv: "List[str]", w: int) -> None:
    """The start-up work; never returns. Its exit status is `run`'s when it does not start."""
    from guardian.child import exit_child, write_all  # imported by run, before the fork

    status = 1
    try:
        from guardian.commands.cli import main

        status = main(argv, hand_over=lambda start: write_all(w, marshal.dumps({"start": start})))
    except SystemExit as exc:  # what the interpreter would do with it, as before
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code
        else:
            sys.stderr.write("%s\n" % (exc.code,))
            status = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())  # the traceback the interpreter would print
        status = 1
    finally:
        exit_child(status)


def serve(start: "Dict[str, Any]") -> int:
    """The daemon, from what prepare_run answered. `start` is emptied before the daemon runs:
    its callers' frames last as long as the daemon, and the plain config and the parsed leak
    state file (up to a few MiB) are the daemon's own objects by then, or garbage."""
    from guardian.config import from_plain
    from guardian.core.daemon import Daemon
    from guardian.core.eventlog import Place
    from guardian.core.match import adopt
    from guardian.core.telemetry import Telemetry

    from guardian.logger import configure

    configure(start["log_level"])  # "guardian: LEVEL: message" lines on stderr
    adopt(start.get("regex"))  # the cmdline patterns, compiled by the child: no re here
    metrics = None
    if start["metrics_file"]:  # only then: a board without metrics does not hold the exporter
        from guardian.core.parts.metrics import Metrics
        metrics = Metrics(start["metrics_file"])
    telemetry = Telemetry(state_file=start["state_file"], syslog=start["syslog"], metrics=metrics)
    try:
        telemetry.use_events(Place(*start["events"]))
        spec = start["reload"]
        daemon = Daemon(from_plain(start.pop("config")), start["scope"], start["proc_root"], start["sys_root"],
                        dry_run=start["dry_run"], telemetry=telemetry, reload=lambda: load_again(spec),
                        why=start["why"], protect_self=start["protect_self"], hotplug=start["hotplug"],
                        metrics=metrics, leak_state=start.pop("leak_state", None))
        start.clear()
        return daemon.run()
    except KeyboardInterrupt:
        return 130
    finally:
        telemetry.close()


def load_again(spec: "Dict[str, Any]") -> "Config":
    """In a reload's child: the config loaded as at the start (--config/--board or the
    detected board, --state-dir over it)."""
    from argparse import Namespace

    from guardian.commands.options import load_config_for

    return load_config_for(Namespace(**spec))[0]


def read_all(fd: int, limit: int) -> bytes:
    """Everything until EOF, at most `limit` bytes (then what came is garbage anyway)."""
    chunks = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def wait_status(pid: int) -> int:
    """The child's exit status, as a shell would tell it (128 + the signal that ended it)."""
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
