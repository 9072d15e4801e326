"""Tell: the event log, the runtime state file `guardian status` reads, and sd_notify."""
import json
import logging
import os
import socket
import time
from typing import Any, Dict, Optional

log = logging.getLogger("guardian")

DEFAULT_STATE_FILE = "/run/guardian/state.json"


class Telemetry:
    def __init__(self, state_file: Optional[str] = DEFAULT_STATE_FILE, events_file: Optional[str] = None):
        self.state_file = state_file
        self.events_file = events_file
        self._notify = _Notifier()
        self.counts: Dict[str, int] = {}

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """One decision that acts, or a change worth knowing: a log line, and a JSON line when
        an events file is set (flushed before the act it describes)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        level = logging.WARNING if kind in ("terminate", "kill", "error") else logging.INFO
        log.log(level, "%s: %s", kind, message)
        if self.events_file:
            record = {"time": round(time.time(), 3), "event": kind, "message": message}
            record.update(fields)
            try:
                with open(self.events_file, "a") as f:
                    f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            except OSError as exc:
                log.error("cannot append to %s: %s", self.events_file, exc.strerror)

    def write_state(self, state: Dict[str, Any]) -> None:
        """Atomically replace the state file (on tmpfs: no flash wear)."""
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        try:
            os.makedirs(os.path.dirname(self.state_file) or ".", exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(state, f, sort_keys=True)
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.debug("cannot write %s: %s", self.state_file, exc)

    def remove_state(self) -> None:
        if self.state_file:
            try:
                os.unlink(self.state_file)
            except OSError:
                pass

    def notify(self, **fields: str) -> None:
        self._notify.send(**fields)

    def watchdog_interval(self) -> Optional[float]:
        return self._notify.watchdog_interval()


class _Notifier:
    """sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET, silent when unset."""

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") or None
        self._sock: Optional[socket.socket] = None

    def send(self, **fields: str) -> None:
        if not self.address:
            return
        message = "\n".join("%s=%s" % (k, v) for k, v in fields.items()).encode()
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
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
