"""Tell: the event log (JSON lines + syslog), the runtime state file `guardian status` reads,
metrics, and sd_notify."""
from __future__ import annotations

import os
import time

from guardian import jsontext  # not json: it imports re (~1 MiB together)
from guardian import safefile
from guardian.core.eventlog import (DEFAULT_BACKUPS, DEFAULT_EVENTS_FILE, DEFAULT_MAX_BYTES, EventLog, Place,
                                    SyslogHandler)
from guardian.core.eventlog import LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING
from guardian.kernel.sockets import AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, Socket
from guardian.logger import ERROR, INFO, WARNING, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Union


DEFAULT_STATE_FILE = "/run/guardian/state.json"
__all__ = ["Telemetry", "DEFAULT_STATE_FILE", "DEFAULT_EVENTS_FILE"]

# Events logged at WARNING (and sent to syslog as such); everything else is INFO.
_WARNING_KINDS = frozenset(("terminate", "kill", "kernel_oom", "leak", "restart"))
_RESERVED = ("time", "event", "message")


class Telemetry:
    """`events_file`: the JSON-lines log (None: none; DEFAULT_EVENTS_FILE is the usual place).
    `syslog`: True, False or "auto" (on when /dev/log exists and not under systemd, whose
    journal already has stderr): events, and every log line of the "guardian" logger while this
    Telemetry is open. `metrics`: a guardian.core.parts.metrics.Metrics fed with every event."""

    def __init__(self, state_file: Optional[str] = DEFAULT_STATE_FILE, events_file: Optional[str] = None,
                 syslog: Union[bool, str] = False, events_max_bytes: int = DEFAULT_MAX_BYTES,
                 events_backups: int = DEFAULT_BACKUPS, metrics: Any = None):
        self.state_file = state_file
        self._state_problem: Optional[str] = None
        self.events_file = events_file
        self._notify = _Notifier()
        self.counts: Dict[str, int] = {}
        self.metrics = metrics
        self.eventlog: Optional[EventLog] = None
        self._syslog_handler: Optional[SyslogHandler] = None
        if events_file or syslog:
            self.eventlog = EventLog(events_file or None, max_bytes=events_max_bytes, backups=events_backups,
                                     syslog=syslog)
            if self.eventlog.syslog is not None:
                self._syslog_handler = SyslogHandler(self.eventlog.syslog)
                log.addHandler(self._syslog_handler)

    def use_events(self, place: Place) -> None:
        """Where the event log goes, once the board's config says where its state lives."""
        self.events_file = place.path
        if self.eventlog is None:
            if place.path is None:
                return
            self.eventlog = EventLog(place.path, max_bytes=place.max_bytes, backups=place.backups)
            return
        self.eventlog.path, self.eventlog.max_bytes, self.eventlog.backups = place.path, place.max_bytes, place.backups

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """One decision that acts, or a change worth knowing: a log line, a syslog line, and
        a JSON line in the events file, on disk before this returns (where fsync is cheap:
        see guardian.core.eventlog) - so call it before the act it describes."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "error":
            level, severity = ERROR, LOG_ERR
        elif kind in _WARNING_KINDS or fields.get("ok") is False:  # a failure it reports (a file refused...)
            level, severity = WARNING, LOG_WARNING
        elif kind in ("start", "stop", "reload"):
            level, severity = INFO, LOG_NOTICE
        else:
            level, severity = INFO, LOG_INFO
        sent = self.eventlog is not None and self.eventlog.syslog is not None
        log.log(level, "%s: %s", kind, message, syslog_sent=sent)
        if self.eventlog is not None:
            record: Dict[str, Any] = {"time": round(time.time(), 3), "event": kind, "message": message}
            for key, value in fields.items():
                record["field_" + key if key in _RESERVED else key] = value
            self.eventlog.append(record, durable=True)
            self.eventlog.send_syslog("%s: %s" % (kind, message), severity)
        if self.metrics is not None:
            try:
                self.metrics.observe_event(kind, fields)
            except Exception as exc:  # metrics must never stop an act
                log.debug("metrics: %s", exc)

    def close(self) -> None:
        """Sync and close the event log (the daemon's last act)."""
        if self._syslog_handler is not None:
            log.removeHandler(self._syslog_handler)
            self._syslog_handler = None
        if self.eventlog is not None:
            self.eventlog.close()

    def write_state(self, state: Dict[str, Any]) -> None:
        """Atomically replace the state file (on tmpfs: no flash wear): a temp file with an
        unpredictable name beside it, renamed over it, in a directory only root can write
        (guardian.safefile). A refusal or failure is logged once; `status` then sees no daemon."""
        if not self.state_file:
            return
        try:
            safefile.write_atomic(self.state_file, jsontext.dumps(state, sort_keys=True).encode("utf-8"), 0o644)
        except OSError as exc:
            problem = "%s" % (exc.strerror or exc)
            if problem != self._state_problem:
                log.log(ERROR if isinstance(exc, safefile.UnsafePath) else WARNING,
                        "cannot write the state file %s: %s (status will not see this daemon)",
                        self.state_file, problem)
            self._state_problem = problem
            return
        if self._state_problem is not None:
            log.info("state file %s written again", self.state_file)
            self._state_problem = None

    def remove_state(self) -> None:
        if self.state_file:
            safefile.remove(self.state_file)  # a link is removed, not followed

    def notify(self, **fields: str) -> None:
        self._notify.send(**fields)

    def watchdog_interval(self) -> Optional[float]:
        return self._notify.watchdog_interval()


class _Notifier:
    """sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET, silent when unset."""

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") or None
        self._sock: Optional[Socket] = None

    def send(self, **fields: str) -> None:
        if not self.address:
            return
        message = "\n".join("%s=%s" % (k, v) for k, v in fields.items()).encode()
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        try:
            if self._sock is None:
                self._sock = Socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC)
            self._sock.sendto(message, addr)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)

    def watchdog_interval(self) -> Optional[float]:
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1e6 / 2.0  # ping at half the interval, as systemd advises
        except ValueError:
            return None
