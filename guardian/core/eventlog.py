"""The durable event log: one JSON line per event, appended, size-rotated, fsync'd; and syslog.

Durability: each line is one write(2) on an O_APPEND descriptor, so a crash of the guardian
(kill -9 included) leaves whole lines in the page cache, which the kernel writes out. A power
cut can lose what was not yet on disk, so lines marked durable are fsync'd (fdatasync) before
`append` returns, which is before the act they describe - as long as that is cheap. Each sync is
timed; when the recent cost exceeds the budget (a slow SD card under writeback pressure can take
hundreds of milliseconds, and the guardian must not stall while memory runs out), syncs move to a
helper thread and the act goes ahead at once. `guardian.core.eventfiles.measure_fsync(dir)` measures the
cost on a board.

Where: /var/log/guardian/events.jsonl, unless that is RAM (tmpfs, ramfs: on Buildroot's skeleton
/var/log is a link into /tmp), where the fdatasync promise means nothing and the log occupies
the memory the guardian guards. Then (choose_place) the events go beside the leak state (the
board's [leaks] state_dir, /var/lib/guardian) when that is on a persistent filesystem, and
otherwise stay in RAM as a small ring (RAM_MAX_BYTES and RAM_BACKUPS rotation), said at start.
The choosing, the reading back and the fsync probe live in guardian.core.eventfiles: the start
child and the commands use them, the daemon never holds them.

A torn last line (power cut in mid-write) is skipped by `eventfiles.read_events`; the next writer starts on
a fresh line, so the torn piece stays one bad line and never spoils a good one.

Syslog: a datagram to /dev/log (RFC 3164 "<PRI>guardian[PID]: text"), never blocking. Under
systemd (JOURNAL_STREAM set) stderr already is the journal, so nothing is sent to /dev/log.
Events go there with their severity, and so do the log lines (SyslogHandler): on a BusyBox
board started by start-stop-daemon --background, stderr is /dev/null, and `logread` is where
an operator reads why the guardian chose its board, lacks a capability or failed a command.
"""
from __future__ import annotations

import errno
import os
import _thread  # not threading (~0.7 MiB resident): a lock and the fsync helper
import time

from guardian import jsontext  # not json: it imports re (~1 MiB together)
from guardian import safefile
from guardian.kernel import close_quietly
from guardian.kernel.sockets import AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM, Socket
from guardian.record import record
from guardian.logger import DEBUG, ERROR, INFO, WARNING, Record, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Union


DEFAULT_EVENTS_FILE = "/var/log/guardian/events.jsonl"
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_BACKUPS = 2
DEFAULT_FSYNC_BUDGET_S = 0.02
# The ring the events keep when nowhere but RAM holds them: 256 KiB and one rotation.
RAM_MAX_BYTES = 256 << 10
RAM_BACKUPS = 1
EVENTS_NAME = "events.jsonl"
SYSLOG_PATH = "/dev/log"
LOG_DAEMON = 3
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6


@record
class Place:
    """Where the events go, how much is kept, and what to say about it (None: nothing)."""

    path: Optional[str]
    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS
    in_ram: bool = False
    note: Optional[str] = None

    @property
    def ram_bytes(self) -> int:
        return self.max_bytes * (1 + self.backups)


class EventLog:
    """Append JSON lines to `path` (None: no file), rotated at `max_bytes` into path.1 ..
    path.N, and optionally send a text line to syslog."""

    def __init__(self, path: Optional[str] = DEFAULT_EVENTS_FILE, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS, syslog: Union[bool, str] = False, ident: str = "guardian",
                 fsync_budget_s: float = DEFAULT_FSYNC_BUDGET_S, fsync: bool = True):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(0, backups)
        self.fsync = fsync
        self.fsync_budget_s = fsync_budget_s
        self.fd: Optional[int] = None
        self.size = 0
        self._retry_at = 0.0
        self._lock = _thread.allocate_lock()
        self.sync_cost_s: Optional[float] = None  # recent fsync cost (decaying maximum)
        self.syncs = 0
        self.deferred_syncs = 0
        self._syncer: Optional[_Syncer] = None
        self.errors = 0
        self._open_failures = 0
        self.syslog = _Syslog(ident) if _want_syslog(syslog) else None

    # ------------------------------------------------------------------------------------
    # File

    def _open(self) -> bool:
        if self.fd is not None:
            return True
        if not self.path:
            return False
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            # No links followed, nothing but a regular file of ours, in a directory only root
            # can write (guardian.safefile); a refusal turns the event log off like any error.
            fd = safefile.open_append(self.path, 0o640, readable=True)
        except OSError as exc:
            self._retry_at = now + 60.0
            self._open_failures += 1
            log.log(ERROR if self._open_failures == 1 else DEBUG,
                    "cannot open the event log %s: %s (events go to the log lines only; retrying every minute)",
                    self.path, exc.strerror or exc)
            return False
        if self._open_failures:
            log.info("event log %s open again", self.path)
            self._open_failures = 0
        try:
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                # The last line was torn (power cut mid-write): end it so the next line is whole.
                os.write(fd, b"\n")
                size += 1
        except OSError:
            size = 0
        self.fd, self.size = fd, size
        return True

    def _rotate(self, path: str) -> None:
        """events.jsonl -> .1 -> .2 ...; the oldest is dropped."""
        if self.fsync and self.fd is not None and (self.sync_cost_s or 0.0) <= self.fsync_budget_s:
            self.sync_now(self.fd)
        self._close_fd()
        directory, name = os.path.split(os.path.abspath(path))
        try:
            dfd = safefile.open_dir(directory)
            try:  # renames inside the directory judged just now; a link is moved, never followed
                if self.backups == 0:
                    os.unlink(name, dir_fd=dfd)
                else:
                    for i in range(self.backups - 1, 0, -1):
                        older = "%s.%d" % (name, i)
                        try:
                            os.replace(older, "%s.%d" % (name, i + 1), src_dir_fd=dfd, dst_dir_fd=dfd)
                        except FileNotFoundError:
                            pass
                    os.replace(name, name + ".1", src_dir_fd=dfd, dst_dir_fd=dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            log.error("cannot rotate the event log %s: %s", path, exc.strerror or exc)
        self._open()

    def append(self, record: Dict[str, Any], durable: bool = True) -> bool:
        """One record as one JSON line. With `durable`, on disk before returning when that
        is cheap (see the module doc). False when the line could not be written."""
        # The default separators ("event": "kill"): scripts on boards without jq grep for that.
        line = (jsontext.dumps(record, default=str) + "\n").encode("utf-8", "replace")
        with self._lock:
            if not self.path or not self._open():
                return False
            if self.size > 0 and self.size + len(line) > self.max_bytes:
                self._rotate(self.path)
            fd = self.fd
            if fd is None:  # not reopened after the rotation
                return False
            try:
                written = os.write(fd, line)
                while written < len(line):  # a regular file only writes short when the disk is full
                    more = os.write(fd, line[written:])
                    if more <= 0:
                        break
                    written += more
                self.size += written
            except OSError as exc:
                self.errors += 1
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.error("cannot append to %s: %s", self.path, exc.strerror or exc)
                if exc.errno in (errno.EBADF, errno.ESTALE, errno.EIO):
                    self._close_fd()
                return False
        if durable and self.fsync:
            self._sync(fd)
        return True

    def _sync(self, fd: int) -> None:
        if self.sync_cost_s is not None and self.sync_cost_s > self.fsync_budget_s:
            # Too slow to wait for before acting: a helper thread syncs, and its timing brings
            # the cost estimate back down once the disk is quick again.
            if self._syncer is None:
                self._syncer = _Syncer(self)
                log.info("event log fsync took %.0f ms (budget %.0f ms): syncing in the background while it is slow",
                         self.sync_cost_s * 1000, self.fsync_budget_s * 1000)
            self.deferred_syncs += 1
            self._syncer.request(fd)
            return
        self.sync_now(fd)

    def sync_now(self, fd: Optional[int] = None) -> Optional[float]:
        """fdatasync the log; returns how long it took (and remembers it)."""
        fd = self.fd if fd is None else fd
        if fd is None:
            return None
        started = time.monotonic()
        try:
            getattr(os, "fdatasync", os.fsync)(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EBADF):  # EINVAL: a pipe or special file
                log.debug("fsync of %s: %s", self.path, exc)
            return None
        cost = time.monotonic() - started
        self.syncs += 1
        # A decaying maximum: one slow sync counts at once, good ones bring it back slowly.
        previous = self.sync_cost_s
        self.sync_cost_s = cost if previous is None or cost > previous else 0.8 * previous + 0.2 * cost
        return cost

    def _close_fd(self) -> None:
        self.fd = close_quietly(self.fd)

    # ------------------------------------------------------------------------------------
    # Syslog

    def send_syslog(self, text: str, severity: int = LOG_INFO) -> None:
        if self.syslog is not None:
            self.syslog.send(text, severity)

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        with self._lock:
            if self.fd is not None and self.fsync:
                self.sync_now(self.fd)
            self._close_fd()
        if self.syslog is not None:
            self.syslog.close()


class _Syncer:
    """One helper thread doing fsyncs that would stall the loop (started the first time one
    is too slow, then parked on a lock). `wanted` is held while there is nothing to do and
    released by a request (any thread may release a _thread lock): an Event's set and
    wait+clear. `running` is held while the thread runs: stop() waits on it, as join did."""

    def __init__(self, owner: EventLog):
        self.owner = owner
        self.wanted = _thread.allocate_lock()
        self.wanted.acquire()
        self.running = _thread.allocate_lock()
        self.running.acquire()
        self.fd: Optional[int] = None
        self.stopping = False
        _thread.start_new_thread(self._run, ())  # daemonic: never holds up exit

    def _wake(self) -> None:
        try:
            self.wanted.release()
        except RuntimeError:  # released already: a request is pending
            pass

    def request(self, fd: int) -> None:
        self.fd = fd
        self._wake()

    def _run(self) -> None:
        try:
            while True:
                self.wanted.acquire()
                if self.stopping:
                    return
                fd = self.fd
                with self.owner._lock:
                    if fd != self.owner.fd:
                        continue  # rotated or closed since
                self.owner.sync_now(fd)
        finally:
            self.running.release()

    def stop(self) -> None:
        self.stopping = True
        self._wake()
        if self.running.acquire(timeout=5.0):
            self.running.release()


# A log record's level -> its syslog severity.
_SEVERITY = ((ERROR, LOG_ERR), (WARNING, LOG_WARNING), (INFO, LOG_INFO))
LOG_DEBUG = 7


class SyslogHandler:
    """Log lines to syslog with their level's severity, through the event log's sender (never
    blocking). A record marked `syslog_sent` (an event, sent with its own severity) is not
    sent twice. A handler of guardian.logger's log."""

    level = DEBUG

    def __init__(self, sender: "_Syslog"):
        self.sender = sender

    def emit(self, record: Record) -> None:
        if record.syslog_sent:
            return
        severity = next((sev for level, sev in _SEVERITY if record.levelno >= level), LOG_DEBUG)
        # A bad format string in a log call spoils the line, not the guardian.
        self.sender.send(record.text(), severity)


def _want_syslog(setting: Union[bool, str]) -> bool:
    if setting == "auto":
        if os.environ.get("JOURNAL_STREAM"):
            return False  # stderr is the journal already
        try:
            import stat
            return stat.S_ISSOCK(os.stat(SYSLOG_PATH).st_mode)
        except OSError:
            return False
    return bool(setting)


class _Syslog:
    """RFC 3164 datagrams to /dev/log without blocking; a message that cannot be sent now
    (no syslogd, its queue full) is dropped, and the socket reconnected later."""

    def __init__(self, ident: str, path: str = SYSLOG_PATH, facility: int = LOG_DAEMON):
        self.ident = ident
        self.path = path
        self.facility = facility
        self.sock: Optional[Socket] = None
        self.dropped = 0
        self._retry_at = 0.0

    def _connect(self) -> Optional[Socket]:
        if self.sock is not None:
            return self.sock
        now = time.monotonic()
        if now < self._retry_at:
            return None
        for kind in (SOCK_DGRAM, SOCK_STREAM):
            sock = Socket(AF_UNIX, kind | SOCK_CLOEXEC)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EPROTOTYPE:
                    continue  # a stream socket (some syslog-ng setups)
                self._retry_at = now + 30.0
                return None
            sock.setblocking(False)
            self.sock = sock
            return sock
        self._retry_at = now + 30.0
        return None

    def send(self, text: str, severity: int = LOG_INFO) -> None:
        sock = self._connect()
        if sock is None:
            self.dropped += 1
            return
        data = ("<%d>%s[%d]: %s" % (self.facility * 8 + severity, self.ident, os.getpid(), text))
        payload = data.encode("utf-8", "replace")
        if sock.type == SOCK_STREAM:
            payload += b"\0"
        try:
            sock.send(payload)
        except OSError:
            self.dropped += 1
            self.close()
            self._retry_at = time.monotonic() + 5.0

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
