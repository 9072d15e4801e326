"""Keep the board's oom_score_adj: critical daemons protected, expendable ones exposed, also
after they restart under a new PID.

How a restart is noticed:
- the netlink proc connector (guardian.kernel.connector): the kernel sends an event on every
  exec and every comm change (a BPF filter drops every other event, and threads', in the
  kernel), so the guardian wakes only when a program starts or renames itself: nothing at idle.
  On a board that execs all the time (shell scripts in loops) that would mean a wake-up per
  exec: above MAX_WAKES_PER_S the filter is swapped for one that drops everything in the
  kernel and the keeper polls instead ("netlink-batched") until new processes are rare again
  (the kernel's fork counter says so, or no PID was given out for three polls), or a hold has
  passed (forks that exec nothing count too: events are tried again). fileno() is an epoll set
  holding the socket and, while batched, a 1 s timerfd: the daemon keeps waiting on the same fd
  whatever the mode.
- otherwise (no CAP_NET_ADMIN, not the initial PID namespace), poll(): list /proc every
  poll_interval_s(), when /proc/loadavg's last PID moved since the last listing (a 30-byte
  read otherwise), and look only at PIDs not seen before (and, for two more polls, at new
  ones that fit no entry yet: programs that rename themselves). A process that was already
  listed and execs a daemon later than that is only caught by the next apply() of a full
  process-table read.

An exec of an unrelated program costs one or two small reads (comm, cmdline) when every
entry names a comm or a cmdline (all shipped boards do), a full read_proc otherwise.

Direction: the keeper only ever adds protection to a critical daemon (it lowers the adj to
the wanted value, and leaves a lower one alone: OpenSSH and systemd's OOMScoreAdjust= set
-1000 themselves) and only ever takes it away from a low-priority one (raises to the wanted
value). Each (pid, starttime) is handled once.
"""
from __future__ import annotations

import errno
import os
import struct
import time

from guardian.config import Config, Critical, LowPriority, Match
from guardian.kernel.connector import (
    PROC_EVENT_COMM,
    PROC_EVENT_EXEC,
    attach_filter,
    close_proc_connector,
    open_proc_connector,
    parse_events,
)
from guardian.kernel.libc import POLLIN, epoll_add, epoll_create, libc
from guardian.kernel.procs import ProcInfo, list_pids, read_cmdline_text, read_comm, read_proc, read_procs
from guardian.kernel.stat import read_fork_count, read_last_pid
from guardian.core.match import MAX_MATCH_CHARS, classify, regex
from guardian.core.parts import NEVER, Part
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

    from guardian.kernel.sockets import Socket

    Entry = Union[Critical, LowPriority]



def _log_all(lines: List[str]) -> None:
    for line in lines:
        log.info("%s", line)


class _Ticker:
    """A periodic timerfd (CLOCK_MONOTONIC), through libc: the keeper's own once-a-second
    wake-up while exec events are batched, so the guardian's wait need not know of it."""

    def __init__(self) -> None:
        self._libc = libc()
        try:
            self.fd: int = self._libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)  # CLOCK_MONOTONIC
        except OSError as e:
            raise OSError(e.errno, "timerfd_create: %s" % e.strerror) from None

    def set(self, interval_s: float) -> None:
        """Fire every interval_s from now on (0: stop)."""
        try:
            self._libc.timerfd_settime(self.fd, interval_s)
        except OSError as e:
            raise OSError(e.errno, "timerfd_settime: %s" % e.strerror) from None

    def consume(self) -> int:
        try:
            return struct.unpack("=Q", os.read(self.fd, 8))[0]
        except (BlockingIOError, struct.error):
            return 0

    def close(self) -> None:
        os.close(self.fd)


def _write_adj(fd: int, data: bytes) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    if os.fstat(fd).st_size > len(data):  # a regular file (a fake tree), not procfs
        os.ftruncate(fd, len(data))


def _wanted(entry: Entry) -> Optional[int]:
    return entry.oom_score_adj


def _describe(kind: str, entry: Entry) -> str:
    return "%s %r" % ("critical" if kind == "critical" else "low-priority", entry.name)


class AdjKeeper(Part):
    """Applies the board's oom_score_adj values. See the module docstring."""

    name = "oom_score_adj keeper"

    POLL_INTERVAL_S = 1.0
    FRESH_POLLS = 2  # unmatched new PIDs are looked at again this many polls (late renames)
    # A board that execs all the time (shell scripts in loops) would wake the guardian on
    # every exec. Above MAX_WAKES_PER_S over RATE_WINDOW_S, the socket's filter drops all
    # events in the kernel and the keeper polls /proc once a second instead ("batched");
    # when fewer than half that many new processes appear per second, events come back.
    MAX_WAKES_PER_S = 1.0
    RATE_WINDOW_S = 10.0
    # The fork counter also counts forks that exec nothing (subshells, threads): a board whose
    # scripts fork without exec would keep the keeper polling for good. So events are also
    # tried again once the batched spell has lasted BATCH_HOLD_S; a board that still execs
    # fast sends it back within a window, and the next spell lasts twice as long (at most
    # BATCH_HOLD_MAX_S: ten wakes per try).
    BATCH_HOLD_S = 60.0
    BATCH_HOLD_MAX_S = 960.0
    # No PID given out at all over this many polls: quiet for sure, events come back now.
    QUIET_POLLS = 3

    def __init__(self, config: Config, proc_root: str = "/proc", use_netlink: bool = True, dry_run: bool = False):
        self.dry_run = dry_run  # say what would be set, set nothing
        self.proc_root = proc_root
        self._sock: Optional[Socket] = None
        self._ep: Optional[int] = None  # an epoll descriptor
        self._ticker: Optional[_Ticker] = None
        self.mode = "poll"
        self.mode_detail = "polling %s every %.1f s" % (proc_root, self.POLL_INTERVAL_S)
        if use_netlink and os.path.realpath(proc_root) == "/proc":
            sock, detail = open_proc_connector()
            if sock is not None:
                self._sock, self.mode, self.mode_detail = sock, "netlink", detail
                # fileno() is an epoll set: the socket, and a timer while events are batched.
                self._ep = epoll_create()
                epoll_add(self._ep, sock.fileno(), POLLIN)
            else:
                self.mode_detail = detail + "; " + self.mode_detail
        self._me = os.getpid()
        # (pid, starttime) -> (entry name, value applied or left); handled, not looked at again
        self._done: Dict[Tuple[int, int], Tuple[str, Optional[int]]] = {}
        self._seen: Optional[Set[int]] = set()  # PIDs listed by the last poll/apply; None: look at all
        self._fresh: Dict[int, int] = {}  # unmatched new PIDs -> polls left to look again
        self._running: Dict[str, Set[int]] = {}  # entry name -> PIDs seen matching
        self._missing: Set[str] = set()  # entries reported as not running
        self._rescan = False
        self._batched = False
        self._hold_s = self.BATCH_HOLD_S  # how long this batched spell lasts at most
        self._batched_at = self._left_at = float("-inf")  # when the last spell began, ended
        self._window_start = time.monotonic()
        self._window_count = 0  # wakes (netlink) or new PIDs (batched) in this window
        self._window_forks = 0  # the fork counter when the batched window opened
        self._polled = 0.0  # when poll() last ran from the loop's wakes
        self._last_pid: Optional[int] = None  # /proc/loadavg's last PID at the last listing
        self._quiet_polls = 0  # polls in a row that saw no PID given out
        self._set_config(config)

    # -------------------------------------------------------------------------------- config

    def _set_config(self, config: Config) -> None:
        self.config = config
        entries: List[Entry] = list(config.critical) + [e for e in config.low_priority if e.oom_score_adj is not None]
        self._active = bool(entries)
        # When every entry names its comm or cmdline, a new program that fits none of them
        # is skipped after one or two small reads (comm, cmdline) instead of a full read_proc:
        # that is the cost of every exec on the system.
        matches = [e.match for e in entries]
        self._quick: Optional[List[Match]] = None
        if all(m.comm is not None or m.cmdline is not None for m in matches):
            self._quick = matches
        # Nothing to keep: the kernel drops every event (the socket stays, for a reload).
        if self._sock is not None and not self._batched:
            attach_filter(self._sock, drop_all=not self._active)

    def update_config(self, config: Config) -> List[str]:
        """After a reload: keep the socket and what is known of the process table, forget
        what was decided under the old entries, and apply the new ones to every process."""
        self._set_config(config)
        self._done.clear()
        self._fresh.clear()
        self._running.clear()
        self._missing.clear()
        return self.apply(read_procs(self.proc_root))

    # -------------------------------------------------------------------------------- sources

    def fileno(self) -> Optional[int]:
        return self._ep

    def poll_interval_s(self) -> Optional[float]:
        if not self._active or (self._sock is not None and (not self._batched or self._ticker is not None)):
            return None
        return self.POLL_INTERVAL_S

    def _window(self, now: float) -> Optional[float]:
        """The rate counted in the window just closed, or None while it is still open."""
        elapsed = now - self._window_start
        if elapsed < self.RATE_WINDOW_S:
            return None
        rate = self._window_count / elapsed
        self._window_start, self._window_count = now, 0
        return rate

    def _forks_window(self, now: float) -> Optional[float]:
        """While batched: processes created per second (the kernel's fork counter, which
        also sees the short-lived ones a listing of /proc misses), once a window closes."""
        if now - self._window_start < self.RATE_WINDOW_S:
            return None  # /proc/stat is read once a window, not at every poll
        forks = read_fork_count(self.proc_root)
        if forks is None:
            return self._window(now)  # no /proc/stat: the new PIDs counted by poll()
        rate = (forks - self._window_forks) / (now - self._window_start)
        self._window_start, self._window_forks, self._window_count = now, forks, 0
        return rate

    def _enter_batched(self, rate: float, now: float) -> str:
        assert self._sock is not None
        if not attach_filter(self._sock, drop_all=True):
            return ""
        # straight back after a try of events: the execs go on, hold longer this time
        retried = now - self._left_at <= 2 * self.RATE_WINDOW_S
        self._hold_s = min(2 * self._hold_s, self.BATCH_HOLD_MAX_S) if retried else self.BATCH_HOLD_S
        self._batched_at = now
        self._window_forks = read_fork_count(self.proc_root) or 0
        try:
            if self._ticker is None:
                self._ticker = _Ticker()
                assert self._ep is not None
                epoll_add(self._ep, self._ticker.fd, POLLIN)
            self._ticker.set(self.POLL_INTERVAL_S)
        except (OSError, AttributeError, ImportError):
            self._ticker = None  # the daemon polls at poll_interval_s() instead
        self._batched = True
        self.mode = "netlink-batched"
        # A process that execs around the switch may have lost its event: the next poll
        # looks at every process once (comm/cmdline reads only, for those that fit nothing).
        self._seen = None
        return ("exec events at %.1f/s: polling %s every %.1f s until it is quieter (events tried "
                "again in %.0f s)" % (rate, self.proc_root, self.POLL_INTERVAL_S, self._hold_s))

    def _leave_batched(self, rate: Optional[float], now: float) -> str:
        """rate: new processes per second over the window just closed; None: no PID given out
        over the last QUIET_POLLS polls."""
        assert self._sock is not None
        attach_filter(self._sock)  # events first, then a full look: nothing falls in between
        if self._ticker is not None:
            try:
                self._ticker.set(0)
            except OSError:
                pass
        self._batched = False
        self.mode = "netlink"
        self._seen = None
        self._left_at = now
        if rate is None:
            return "no process started for %.0f s: back to exec events" % (self.QUIET_POLLS * self.POLL_INTERVAL_S)
        if rate < self.MAX_WAKES_PER_S / 2:
            return "new processes at %.1f/s: back to exec events" % rate
        return ("new processes at %.1f/s, after %.0f s of polling: trying exec events again (forks that "
                "exec nothing count too)" % (rate, now - self._batched_at))

    # -------------------------------------------------------------------------------- the loop's part

    def on_readable(self) -> None:
        _log_all(self.read_events())

    def next_due(self, now: float) -> float:
        interval = self.poll_interval_s()  # None: exec events find a restarted daemon
        return NEVER if interval is None else interval

    def on_wake(self, now: float) -> None:
        interval = self.poll_interval_s()
        if interval is not None and now - self._polled >= interval:
            self._polled = now
            _log_all(self.poll())

    def on_table(self, procs: Tuple[ProcInfo, ...]) -> None:
        _log_all(self.apply(procs))

    def reload(self, config: Config) -> None:
        _log_all(self.update_config(config))

    def close(self) -> None:
        if self._sock is not None:
            close_proc_connector(self._sock)
            self._sock = None
        if self._ticker is not None:
            self._ticker.close()
            self._ticker = None
        if self._ep is not None:
            os.close(self._ep)
            self._ep = None

    # -------------------------------------------------------------------------------- work

    def apply(self, procs: Iterable[ProcInfo]) -> List[str]:
        """Apply to every process of a full process-table read; report listed daemons that
        are not running (once, until they are seen again)."""
        procs = tuple(procs)
        findings: List[str] = []
        roles = classify(procs, self.config, self.proc_root) if self._active else {}
        by_pid = {p.pid: p for p in procs}
        self._seen = set(by_pid)
        running: Dict[str, Set[int]] = {}
        for pid, role in roles.items():
            running.setdefault(role.entry.name, set()).add(pid)
            findings += self._handle(by_pid[pid], role.kind, role.entry)
        optional: List[str] = []
        for entry in self.config.critical:
            if entry.name in running:
                self._missing.discard(entry.name)
            elif entry.name not in self._missing:
                self._missing.add(entry.name)
                if entry.optional:
                    optional.append(entry.name)
                else:
                    findings.append("critical %r is not running (match %s): it is protected as soon as it starts"
                                    % (entry.name, _match_text(entry)))
        if optional:
            findings.append("optional critical entries not running: %s" % ", ".join(optional))
        self._running = running
        live = {(p.pid, p.starttime) for p in procs}
        for key in [k for k in self._done if k not in live]:
            del self._done[key]
        return findings

    def _drain(self) -> Tuple[List[int], bool]:
        """Every PID in the queued events (exec or comm of a thread-group leader), and
        whether the kernel dropped some (ENOBUFS)."""
        pids: List[int] = []
        overrun = False
        while self._sock is not None:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped events: look at everything
                    overrun = True
                    continue
                raise
            if not data:
                break
            for what, pid, tgid in parse_events(data):
                if what in (PROC_EVENT_EXEC, PROC_EVENT_COMM) and pid == tgid and pid not in pids:
                    pids.append(pid)
        return pids, overrun

    def read_events(self) -> List[str]:
        """Drain the proc connector and handle each PID that exec'd or renamed itself (or,
        while batched, poll when the timer fires)."""
        if self._sock is None:
            return []
        findings: List[str] = []
        if self._ticker is not None and self._ticker.consume():
            findings += self.poll()
        if self._batched:
            self._drain()  # events from before the filter changed: the polls cover them
            return findings
        pids, overrun = self._drain()
        if overrun or self._rescan:
            self._rescan = False
            findings += ["proc connector overrun: rescanning the process table"]
            findings += self.apply(read_procs(self.proc_root))
        else:
            for pid in pids:
                findings += self._check_pid(pid, recheck=True)
        self._window_count += 1
        now = time.monotonic()
        if self._window_count > self.MAX_WAKES_PER_S * self.RATE_WINDOW_S:  # over budget: no need to wait
            rate: Optional[float] = self._window_count / max(now - self._window_start, 1e-3)
            self._window_start, self._window_count = now, 0
        else:
            rate = self._window(now)
        if rate is not None and rate > self.MAX_WAKES_PER_S and not self._batched:
            note = self._enter_batched(rate, now)
            if note:
                findings.append(note)
                self._drain()  # queued before the switch: the next poll looks at everything
        return findings

    def poll(self, now: Optional[float] = None) -> List[str]:
        """Look at PIDs that appeared since the last call (and, for a couple of calls, at new
        ones that matched nothing yet: programs that rename themselves). Without netlink,
        or while events are batched."""
        findings: List[str] = []
        if self._batched:
            now = time.monotonic() if now is None else now
            rate = self._forks_window(now)
            if rate is not None and (rate < self.MAX_WAKES_PER_S / 2 or now - self._batched_at >= self._hold_s):
                findings.append(self._leave_batched(rate, now))
        # No PID given out since the last listing: nothing new to look at, and none gone that
        # could come back under a reused number. One small read instead of listing /proc,
        # once a second wherever the keeper polls (batched, or no netlink at all).
        last_pid = read_last_pid(self.proc_root)
        if last_pid is not None and last_pid == self._last_pid and self._seen is not None and not self._fresh:
            self._quiet_polls += 1
            if self._batched and self._quiet_polls >= self.QUIET_POLLS:
                now = time.monotonic() if now is None else now
                findings.append(self._leave_batched(None, now))
            return findings
        self._quiet_polls = 0
        self._last_pid = last_pid
        pids = set(list_pids(self.proc_root))
        if self._seen is None:  # a full look after a switch; not counted as new processes
            new = pids
        else:
            new = pids - self._seen
            self._window_count += len(new)
        self._seen = pids
        for key in [k for k in self._done if k[0] not in pids]:
            del self._done[key]
        for pid in sorted(new):
            findings += self._check_pid(pid, recheck=False)
        for pid in [p for p in self._fresh if p not in new]:
            left = self._fresh.pop(pid)
            if pid in pids:
                findings += self._check_pid(pid, recheck=True, polls_left=left - 1)
        return findings

    # -------------------------------------------------------------------------------- one pid

    def _check_pid(self, pid: int, recheck: bool, polls_left: Optional[int] = None) -> List[str]:
        if not self._active or pid == self._me or pid == 1:
            return []
        if self._quick is not None:
            fits = self._could_match(pid)
            if fits is None:
                return []
            if not fits:
                if polls_left is None:
                    polls_left = self.FRESH_POLLS
                if polls_left > 0 and (self._sock is None or self._batched):
                    self._fresh[pid] = polls_left
                return []
        proc = read_proc(pid, self.proc_root)
        if proc is None:
            return []
        if recheck is False and (pid, proc.starttime) in self._done:
            return []
        roles = classify((proc,), self.config, self.proc_root)
        role = roles.get(pid)
        if role is None:
            if self._sock is None or self._batched:
                if polls_left is None:
                    polls_left = self.FRESH_POLLS
                if polls_left > 0:
                    self._fresh[pid] = polls_left
            return []
        findings: List[str] = []
        name = role.entry.name
        pids = self._running.setdefault(name, set())
        gone = {p for p in pids if not os.path.exists("%s/%d" % (self.proc_root, p))}
        if name in self._missing:
            self._missing.discard(name)
            findings.append("%s is running now: pid %d (%s)" % (_describe(role.kind, role.entry), pid, proc.comm))
        elif gone and pid not in pids:
            findings.append("%s restarted: pid %d (was %s)" % (
                _describe(role.kind, role.entry), pid, ", ".join(str(p) for p in sorted(gone))))
        pids -= gone
        pids.add(pid)
        return findings + self._handle(proc, role.kind, role.entry)

    def _could_match(self, pid: int) -> Optional[bool]:
        """Whether an entry could match, judged on comm and cmdline alone; None if gone."""
        comm = read_comm(pid, self.proc_root)
        if comm is None:
            return None
        cmdline: Optional[str] = None
        for m in self._quick or ():
            if m.comm is not None and comm != m.comm[:15]:
                continue
            if m.cmdline is not None:
                if cmdline is None:
                    cmdline = read_cmdline_text(pid, self.proc_root, MAX_MATCH_CHARS)
                    if cmdline is None:
                        return None
                if not regex(m.cmdline).search(cmdline):
                    continue
            return True
        return False

    def _handle(self, proc: ProcInfo, kind: str, entry: Entry) -> List[str]:
        key = (proc.pid, proc.starttime)
        wanted = _wanted(entry)
        done = self._done.get(key)
        if done is not None and done[0] == entry.name:
            return []
        if wanted is None or proc.pid == self._me or proc.pid == 1:
            self._done[key] = (entry.name, None)
            return []
        result = self._write(proc, kind, entry, wanted)
        self._done[key] = (entry.name, wanted)
        return [result] if result else []

    def _write(self, proc: ProcInfo, kind: str, entry: Entry, wanted: int) -> Optional[str]:
        """Set the adj through a descriptor of /proc/PID after checking the start time, so a
        PID reused in between is never touched. Returns a finding, or None if nothing to say."""
        who = "%s: pid %d (%s)" % (_describe(kind, entry), proc.pid, proc.comm)
        try:
            dfd = os.open("%s/%d" % (self.proc_root, proc.pid), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None  # gone
        try:
            try:
                fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    stat = os.read(fd, 4096)
                finally:
                    os.close(fd)
                starttime = int(stat[stat.rindex(b")") + 2:].split()[19])
                if starttime != proc.starttime:
                    return None  # another process now has this pid
                fd = os.open("oom_score_adj", os.O_RDWR | os.O_CLOEXEC, dir_fd=dfd)
            except (OSError, ValueError, IndexError):
                return None
            try:
                try:
                    now = int(os.read(fd, 32))
                except ValueError:
                    now = proc.oom_score_adj
                if kind == "critical" and now <= wanted:
                    return None if now == wanted else (
                        "%s: oom_score_adj %d is already below the wanted %d: left alone" % (who, now, wanted))
                if kind != "critical" and now >= wanted:
                    return None
                if self.dry_run:
                    return "%s: dry run: would set oom_score_adj %d -> %d" % (who, now, wanted)
                try:
                    _write_adj(fd, b"%d\n" % wanted)
                except OSError as e:
                    if e.errno == errno.ESRCH:
                        return None
                    hint = ""
                    if e.errno == errno.EACCES and wanted < now:
                        hint = " (lowering needs CAP_SYS_RESOURCE)"
                    return "%s: cannot set oom_score_adj %d (now %d): %s%s" % (who, wanted, now, e.strerror, hint)
                return "%s: oom_score_adj %d -> %d" % (who, now, wanted)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)


def _match_text(entry: Entry) -> str:
    m = entry.match
    return ", ".join("%s=%r" % (k, getattr(m, k)) for k in ("comm", "exe", "cmdline", "unit", "cgroup")
                     if getattr(m, k) is not None)
