"""The loop: wait -> sense -> remember -> decide -> act -> tell.

Everything that can fail on a live board (a vanished victim, a garbled /proc file, a refused
write, a bad reload) is logged and survived here; the loop itself only stops on SIGTERM/SIGINT.
"""
from __future__ import annotations

import gc
import os
import _signal as signal  # not signal.py: its enums import enum, functools, collections (~0.7 MiB)
import _thread  # not threading (~0.7 MiB resident): one thread per stop command
import time

from guardian.core import policy
from guardian.actions import reclaim as reclaim_actions
from guardian.actions import signals as sig
from guardian.actions.stop import graceful_stop  # at start: nothing to import when memory is short
from guardian.config import MIB, Config
from guardian.kernel.libc import libc
from guardian.kernel.libc import poll as libc_poll
from guardian.kernel.meminfo import glance_meminfo
from guardian.kernel.procs import ProcInfo
from guardian.core.history import FillRate, Growth
from guardian.core.match import classify
from guardian.core.match import precompile
from guardian.core.parts import Part, Tick
from guardian.core.policy import NORMAL, RUNG_NAMES, TERMINATE, Ended, PolicyState, Recent
from guardian.core.reading import Reading
from guardian.core.sense import Sensor
from guardian.core.telemetry import Telemetry
from guardian.core.waiter import UsageThresholds, Waiter, adaptive_timeout
from guardian.record import replace
from guardian.logger import log

try:  # the loop at rest in C (guardian/_rest.c), where the install had a compiler; else in Python
    from guardian import _rest as rest_in_c
except ImportError:
    rest_in_c = None

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from guardian.core.parts.reload import Reloader

    ReloadFn = Callable[[], Config]


# Seconds between process-table samples while available memory is near the reclaim line.
NEAR_LINE_SAMPLE_S = 1.0
# After a kernel OOM kill: read MemAvailable this often until it stops rising (the victim's
# memory is back), for at most KERNEL_KILL_SETTLE_MAX_S.
KERNEL_KILL_SETTLE_POLL_S = 0.02
KERNEL_KILL_SETTLE_MAX_S = 0.3
# A part's call that holds the loop up this long is logged (the guardian is blind meanwhile).
SLOW_PART_S = 0.5
# How many recent ends (ours and the kernel's) are remembered to recognise a respawn.
ENDED_KEPT = 16
# After ending a process that may be respawned (its parent is not init), wake every
# min_timeout_s for this long: stress-ng's next heap filled 110 MiB in 0.25 s while the
# guardian slept 0.4 s on the rate it had measured.
RESPAWN_ALERT_S = 10.0


def _uptime() -> Optional[float]:
    """Seconds since boot on the clock /proc/PID/stat starttime counts from."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None


def _die_with_parent(ppid: int) -> None:
    """A onefile build's worker must not outlive its unpacker: an init script that SIGKILLs
    the PID in its pidfile (the unpacker) would otherwise start a second guardian beside it."""
    try:
        PR_SET_PDEATHSIG = 1
        libc().prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError) as exc:
        log.debug("prctl(PR_SET_PDEATHSIG): %s", exc)
        return
    if os.getppid() != ppid:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def apply_board_sysctls(config: Config, proc_root: str, dry_run: bool) -> None:
    """The board's [sysctl], set by the short-lived child that loaded the config (at the start
    and on each reload): guardian.board stays out of the daemon's memory."""
    if not config.sysctl:
        return
    from guardian.board.sysctl import apply_sysctls
    try:
        for result in apply_sysctls(config.sysctl, proc_root, dry_run=dry_run):
            log.info("sysctl: %s", result)
    except Exception as exc:
        log.error("applying [sysctl] failed: %s", exc)


class Daemon:
    def __init__(self, config: Config, scope_dir: Optional[str] = None, proc_root: str = "/proc",
                 sys_root: str = "/sys", dry_run: bool = False, telemetry: Optional[Telemetry] = None,
                 reload: Optional[ReloadFn] = None, protect_self: bool = True, why: str = "",
                 hotplug: str = "off", metrics: Optional[Part] = None, leak_state: Optional[List[Any]] = None):
        self.config = config
        # The leak state file as the start child read and parsed it (leakstate.preread): no JSON
        # parser here. Handed to the leak watch when it starts, then dropped.
        self._leak_state = leak_state
        precompile(config)  # re, if a pattern needs it, now and not at the first classification
        self.scope_dir = scope_dir
        self.proc_root = proc_root
        self.sys_root = sys_root
        self.dry_run = dry_run or config.actions.dry_run
        self.tell = telemetry or Telemetry(state_file=None)
        self.reload_fn = reload  # called in a child (guardian.core.parts.reload)
        self.reloader: Optional[Reloader] = None  # the reload part, from the first SIGHUP on
        self.protect_self = protect_self
        self.why = why
        self.pid = os.getpid()
        self.state = PolicyState()
        # The lines follow the fill of the last seconds; the sleep follows the fastest fill
        # seen in minutes, so one burst keeps the guardian alert without moving its lines.
        self.fill = FillRate(half_life_s=10.0)
        self.fill_long = FillRate(half_life_s=300.0)
        self.growth = Growth(config.victims.growth_window_s, clock_ticks=os.sysconf("SC_CLK_TCK"))
        self.ended: Tuple[Ended, ...] = ()  # recent ends, ours and the kernel's (respawns)
        self._last_table: Dict[Tuple[int, int], ProcInfo] = {}
        self._last_table_uptime: Optional[float] = None  # seconds since boot when it was read
        self._oom_noted: Optional[int] = None  # the kernel's kill count when victims were last noted
        self._kernel_took_respawn = False  # the kernel's last victim was a respawning runaway
        self._alert_until = float("-inf")  # wake often until then: a respawn may come
        self.last_proc_sample = float("-inf")
        self.sensor = Sensor(scope_dir, proc_root, sys_root)
        self.waiter: Optional[Waiter] = None
        self._stop = False
        self._reload = False
        self._wake_r: Optional[int] = None
        self._pending_handle: Optional[sig.ProcessHandle] = None
        self._last_status_key: Any = None
        self._last_watchdog = 0.0
        self.last_plan: Optional[policy.Plan] = None
        self.kernel_oom_kills: Optional[int] = None  # the count when last read
        self.parts: List[Part] = []  # in the order they were started
        self._wakers: List[Part] = []  # the parts with an on_wake, next_due, needs_tick of their own
        self._due_askers: List[Part] = []
        self._tick_askers: List[Part] = []
        self._glance_until = float("-inf")
        self._glance_line = self._glance_kill = 0  # the lines of the last full tick
        self._glance_fill = 0.0  # the fastest fill then (fill_long)
        self._glance_last: Tuple[float, int] = (0.0, 0)  # (time, headroom) at the last look
        self._watchdog_s: Optional[float] = None
        self.oom_watch: Optional[Part] = None  # when on, it reports kernel OOM kills in place of a count
        self.hotplug_mode = hotplug  # "auto", "on" or "off"
        self.metrics = metrics
        self._parent: Optional[Tuple[int, ...]] = None
        self.self_protection = "off"
        self.keeper_watch = "not running"  # how the adj keeper hears of new processes, for the start line
        self._last_full_tick = float("-inf")
        self._last_total: Optional[int] = None

    # ----------------------------------------------------------------------------------------
    # Setup and teardown

    def setup(self, signals: bool = True) -> None:
        if self.protect_self:
            from guardian.core import selfprotect
            self.self_protection = selfprotect.lock_memory()
            err = selfprotect.set_oom_score_adj(-1000, proc_root=self.proc_root)
            if err:
                log.warning("cannot set own oom_score_adj to -1000: %s", err)
        self._watchdog_s = self.tell.watchdog_interval()  # the environment is read once
        self.sensor.refresh_slow()
        self._own_pids()
        self.kernel_oom_kills = self._oom_noted = self.sensor.oom_kills()
        thresholds = None
        if self.scope_dir is not None and os.path.exists(os.path.join(self.scope_dir, "cgroup.event_control")):
            thresholds = UsageThresholds(self.scope_dir)
        self.waiter = Waiter(self.config.wait, self.sensor.psi_path, thresholds)
        first = self.sensor.read(time.monotonic(), self.pid)
        if first is not None:
            self._update_thresholds(first, policy.lines_for(first, Recent(), self.config))
        if signals:
            self._install_signals()
        self._start_parts()
        z = self.sensor.last_zram
        zram = "; swap on zram %.0f MiB (%.0f MiB free), counted as %.1f MiB of headroom" % (
            z.total / MIB, z.free / MIB, z.relief / MIB) if z is not None else ""
        self.tell.event("start", "guardian %s, scope %s, wait %s, %s%s; rest loop in %s; oom_score_adj keeper: %s" % (
            "dry run" if self.dry_run else "armed", self.scope_dir or "system", self.waiter.describe(),
            self.self_protection, zram, "Python" if rest_in_c is None else "C", self.keeper_watch),
            board=self.config.board, config=self.config.source, why=self.why)
        self.tell.notify(READY="1", STATUS="watching, wait mode %s" % self.waiter.mode)

    def _install_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread (a test running the loop): no signal handlers
            os.close(r)
            os.close(w)
            return
        self._wake_r = r

        def on_stop(signum, frame):
            self._stop = True

        def on_hup(signum, frame):
            self._reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        self.waiter.add(r, self._drain_wake)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 64):
                pass
        except OSError:
            pass

    def _start_parts(self) -> None:
        """The adj keeper, leak watch, kernel OOM reports, hotplug and metrics: each optional,
        none may stop the loop."""
        from guardian.core.parts.adj import AdjKeeper
        from guardian.core.parts.leakwatch import LeakWatcher
        from guardian.core.parts.oomwatch import KernelOomWatcher

        keeper = self._start("oom_score_adj keeper",
                             lambda: AdjKeeper(self.config, self.proc_root, dry_run=self.dry_run))
        if keeper is not None:
            self.guarded(keeper, keeper.on_table, self.sensor.procs())
            self.keeper_watch = keeper.mode_detail  # type: ignore[attr-defined]  # an AdjKeeper
        self._start("leak watch", lambda: LeakWatcher(
            self.config, self.proc_root, state_dir=self.config.leaks.state_dir, tell=self.tell, dry_run=self.dry_run,
            preread=self._leak_state))
        self._leak_state = None
        self.oom_watch = self._start("kernel OOM reports", lambda: KernelOomWatcher(
            self.proc_root, sys_root=self.sys_root, scope_dir=self.scope_dir, tell=self.tell))
        if self.hotplug_mode != "off":
            from guardian.core.parts.hotplug import HotplugWatcher
            hotplug, reason = HotplugWatcher.open(tell=self.tell, on_change=self._totals_changed)
            if hotplug is None and self.hotplug_mode == "on":
                log.warning("hotplug asked for but unavailable: %s", reason)
            if hotplug is not None:
                self._add_part(hotplug)
        if self.metrics is not None:
            self._add_part(self.metrics)

    def _start(self, name: str, make: Callable[[], Part]) -> Optional[Part]:
        try:
            part = make()
        except Exception as exc:  # an optional part must never take the guardian down
            log.error("%s failed to start: %s", name, exc)
            return None
        self._add_part(part)
        return part

    def _add_part(self, part: Part) -> None:
        self.parts.append(part)
        # The quiet wake-up calls only the parts that do something there.
        kind = type(part)
        if kind.on_wake is not Part.on_wake:
            self._wakers.append(part)
        if kind.needs_tick is not Part.needs_tick:
            self._tick_askers.append(part)
        if kind.next_due is not Part.next_due:
            self._due_askers.append(part)
        fd = part.fileno()
        if fd is not None:
            self.waiter.add(fd, lambda: self.guarded(part, part.on_readable))

    @staticmethod
    def guarded(part: Part, call: Callable[..., Any], *args: Any) -> Any:
        """The one guard around every call into a part: its failure is logged, never raised,
        and so is a call that held the loop up (a /proc read that blocked, a slow disk)."""
        started = time.monotonic()
        try:
            return call(*args)
        except Exception as exc:
            log.error("%s: %s", part.name, exc)
            return None
        finally:
            took = time.monotonic() - started
            if took >= SLOW_PART_S:  # info: `journalctl -p warning` shows the decisions alone
                log.info("%s: %s took %.1f s, the loop waiting", part.name, getattr(call, "__name__", "a call"), took)

    def _totals_changed(self) -> None:
        """Memory or swap was hot-plugged: totals and swap are re-read every tick, but the fill
        rate before the change is no rate."""
        self.fill.reset_baseline()
        self.fill_long.reset_baseline()
        self._glance_until = float("-inf")  # swap may have come or gone: the next wake reads all

    def close(self) -> None:
        if self.waiter:
            self.waiter.close()
        for part in self.parts:
            self.guarded(part, part.close)
        if self._pending_handle is not None:
            self._pending_handle.close()
        self.sensor.close()
        self.tell.remove_state()

    # ----------------------------------------------------------------------------------------
    # The loop

    def run(self) -> int:
        self.setup()
        frozen = False
        try:
            while not self._stop:
                if self._reload:
                    self._reload = False
                    self.reload()
                timeout = self.tick(time.monotonic())
                if not frozen:
                    frozen = True
                    self._freeze_gc()
                # Between full ticks, a wake by timeout alone at ease only glances at
                # MemAvailable (as earlyoom does): a third of a tick's cost.
                while not self._stop and not self._reload:
                    if timeout <= 0:
                        woke = ["now"]
                    elif time.monotonic() < self._glance_until:
                        woke = self._rest(timeout)
                    else:
                        woke = self.waiter.wait_for(timeout)
                    now = time.monotonic()
                    for part in self._wakers:
                        self.guarded(part, part.on_wake, now)
                    # A part's descriptor (an exec the adj keeper handled) is no news about
                    # memory: glance. PSI, a cgroup threshold or a signal: a full tick.
                    glance = None if any(w != "fd" for w in woke) else self._glance(time.monotonic())
                    if glance is None:
                        break
                    timeout = glance
        finally:
            self.tell.event("stop", "guardian stopping", kills=self.state.kills,
                            terminations=self.state.terminations)
            self.tell.notify(STOPPING="1")
            self.close()
        return 0

    @staticmethod
    def _freeze_gc() -> None:
        """What the start (or a reload) made stays for good: out of the cyclic collector's
        sight. Else each full collection walks every function, class and config object
        again: on a small board under emulation, 60-200 ms of CPU in one go, several times
        a minute at rest. Reference counting still frees what is dropped."""
        gc.collect()
        gc.freeze()

    def _glance(self, now: float) -> Optional[float]:
        """After a quiet timeout: the next timeout if MemAvailable alone shows the system at
        ease and nothing else is due, else None (a full tick). A full tick still comes at
        least every max_timeout_s (PSI avg10, kernel OOM count, metrics, state).

        This runs several times a second on a small board at rest, where it is most of the
        guardian's CPU: it reads two numbers of the raw file and compares them with what the
        last full tick worked out. A fall of more than 1 % of the total since the last look is
        news: the full tick measures its rate from that look."""
        if now >= self._glance_until:  # set by the last full tick: -inf when not at ease
            return None
        for part in self._tick_askers:
            if self.guarded(part, part.needs_tick, now):
                return None
        got = None if self.sensor.last_zram is not None else self.sensor.glance()
        if got is None:  # zram to estimate, an old kernel, or a read that failed
            return self._glance_parsed(now)
        total, available = got
        if total != self._last_total or available < self._glance_line:
            return None
        if available < self._glance_last[1] - total // 100:
            self._add_fill(*self._glance_last)
            return None
        self._glance_last = (now, available)
        timeout = adaptive_timeout(available - self._glance_kill, self._glance_fill, self.config.wait,
                                   self.waiter.armed)
        return self._bounded(min(timeout, self._glance_until - now), now)

    def _rest(self, timeout: float) -> List[str]:
        """The loop at rest: wait, glance, wait again, in one frame, until a wake is more than a
        quiet glance. What it returns is what woke the last wait (nothing: a timeout, which
        the loop then glances at itself, with every check of _glance).

        On a small board at rest this is nearly all the guardian does, several times a second:
        under emulation each Python call here cost more than one of earlyoom's wake-ups, so the
        wake that finds memory at ease makes none but the syscalls and the one parse."""
        fd = self.sensor.meminfo_fd()
        if fd is None:
            return self.waiter.wait_for(timeout)
        now = time.monotonic()
        until = self._glance_until
        for part in self._due_askers:  # a part's schedule changes only in its own calls
            due = self.guarded(part, part.next_due, now)
            if due is not None:
                until = min(until, now + due)
        for part in self._tick_askers:
            if self.guarded(part, part.needs_tick, now):
                return []
        wait, armed, total = self.config.wait, self.waiter.armed, self._last_total
        line, kill, fill = self._glance_line, self._glance_kill, self._glance_fill
        before = self._glance_last[1]
        in_c = rest_in_c
        if in_c is not None:  # the same loop, without the interpreter: guardian/_rest.c
            z = self.sensor.last_zram  # swap on zram: C glances at the headroom Sensor.headroom makes
            kind, events, last, available = in_c.rest(
                self.waiter.rest_fds(), fd, timeout, until, line, kill, -1 if total is None else total, before,
                fill, wait.assumed_fill_rate_mib_s, wait.min_timeout_s,
                wait.max_timeout_s if armed else wait.max_timeout_poll_s,
                None if z is None else (z.total, z.free, z.relief))
            if last is not None:
                self._glance_last = (last, available)
            if kind == "events":
                return self.waiter.handle(events)
            return ["signal"] if kind == "signal" else []
        if self.sensor.last_zram is not None:  # zram's share of swap is glanced at in C only
            return self.waiter.wait_for(timeout)
        pairs, poll = self.waiter.poll_set(), libc_poll
        monotonic, pread, glance = time.monotonic, os.pread, glance_meminfo
        while True:
            try:
                events = poll(pairs, timeout)
            except InterruptedError:
                return ["signal"]
            if events:
                return self.waiter.handle(events)
            now = monotonic()
            if now >= until:
                return []
            try:
                got = glance(pread(fd, 8192, 0))
            except OSError:
                return []
            if got is None or got[0] != total or got[1] < line or got[1] < before - total // 100:
                return []  # _glance reads it again and says what it means
            before = got[1]
            self._glance_last = (now, before)
            timeout = min(adaptive_timeout(before - kill, fill, wait, armed), until - now)

    def _glance_parsed(self, now: float) -> Optional[float]:
        """The glance with MemInfo parsed: zram's share of swap counts as headroom."""
        before = self.sensor.last_meminfo
        info = self.sensor.meminfo()
        if info is None or info is before or info.total != self._last_total:  # kept, not read: no news
            return None
        headroom = self.sensor.headroom(info)
        self._add_fill(now, headroom)
        self._glance_last = (now, headroom)  # where the loop at rest in C takes up
        lines = policy.lines_at(info.total, self.fill.peak(now), self.config)
        if headroom < lines.reclaim + lines.hysteresis:
            return None
        timeout = adaptive_timeout(headroom - lines.kill, self.fill_long.peak(now), self.config.wait,
                                   self.waiter.armed)
        return self._bounded(min(timeout, self._glance_until - now), now)

    def _plan_glances(self, now: float, reading: Reading, lines: policy.Lines) -> None:
        """After a full tick: until when a quiet wake may only glance (at ease, with nothing of
        the loop's own falling due: a full tick every max_timeout_s, the process sample, the
        watchdog), and the lines it compares with."""
        wait, plan = self.config.wait, self.last_plan
        self._glance_line, self._glance_kill = lines.reclaim + lines.hysteresis, lines.kill
        self._glance_fill = self.fill_long.peak(now)
        self._glance_last = (now, reading.headroom)
        if (self.scope_dir is not None or plan is None or plan.action != "none" or self.state.rung != NORMAL
                or self.state.pending is not None or now < self._alert_until):
            self._glance_until = float("-inf")
            return
        until = min(now + wait.max_timeout_s, self.last_proc_sample + wait.proc_sample_interval_s)
        watchdog = self._watchdog_s
        if watchdog:
            until = min(until, self._last_watchdog + watchdog)
        self._glance_until = until

    def reload(self) -> None:
        """SIGHUP: load the config again, in a child (the loader never stays in the daemon's
        memory, and the loop goes on meanwhile); a bad one is refused and the old stays in force."""
        if self.reload_fn is None:
            log.info("SIGHUP: no config file to reload")
            return
        if self.reloader is None:  # made at the first SIGHUP: the daemon does not hold it before
            from guardian.core.parts.reload import Reloader

            self.reloader = Reloader(self._load_in_child, self._reloaded, self.waiter, began=lambda: self.tell.notify(
                RELOADING="1", MONOTONIC_USEC=str(int(time.monotonic() * 1e6))))
            self._add_part(self.reloader)
        self.reloader.start()

    def _load_in_child(self) -> Config:
        """The reload's child: the new config, and the board's sysctls it sets."""
        assert self.reload_fn is not None
        new = self.reload_fn()
        apply_board_sysctls(new, self.proc_root, self.dry_run or new.actions.dry_run)
        return new

    def _reloaded(self, new: Optional[Config], error: str, refused: bool) -> None:
        if new is None:
            if refused:
                self.tell.event("reload", "config refused, keeping the old one: %s" % error, ok=False)
            else:
                self.tell.event("reload", "reload failed, keeping the old config: %s" % error, ok=False)
            self.tell.notify(READY="1")
            return
        self.config = new
        precompile(new)
        self.dry_run = self.dry_run or new.actions.dry_run
        self.growth.window_s = new.victims.growth_window_s
        self.waiter.wait = new.wait
        for part in self.parts:
            self.guarded(part, part.reload, new)
        self._freeze_gc()
        self.tell.event("reload", "config reloaded from %s" % new.source, ok=True, board=new.board)
        self.tell.notify(READY="1")

    def tick(self, now: float) -> float:
        """One pass; returns how long to wait before the next."""
        try:
            return self._tick(now)
        except Exception as exc:  # last resort: log, keep what we knew, try again soon
            log.exception("tick failed: %s", exc)
            return self.config.wait.min_timeout_s * 5

    def _tick(self, now: float) -> float:
        cfg = self.config
        reading = self.sensor.read(now, self.pid)
        if reading is None:
            return cfg.wait.max_timeout_poll_s
        self._last_full_tick, self._last_total = now, reading.total
        self._add_fill(now, reading.headroom)
        recent = Recent(fill_rate=self.fill.peak(now))
        lines = policy.lines_for(reading, recent, cfg)
        close_to_line = reading.headroom < lines.reclaim_exit
        # A victim is always chosen from a fresh table (decide asks for one). Near the lines a
        # table a second keeps the growth history that names a culprit; a scan on every wake
        # of a board parked just above a line cost 15 % of a small core.
        interval = cfg.wait.proc_sample_interval_s
        if close_to_line:
            interval = min(interval, NEAR_LINE_SAMPLE_S)
        due = now - self.last_proc_sample >= interval
        # The kernel killed since the last table: a table now tells whom (a respawn of it is known).
        kernel_moved = (reading.oom_kills is not None and self._oom_noted is not None
                        and reading.oom_kills > self._oom_noted)
        if due or kernel_moved or self.state.pending is not None or self.state.rung >= TERMINATE:
            reading = self._with_procs(reading, now, with_buddy=close_to_line)
        elif close_to_line:  # a reclaim decision wants to know whether compaction would help
            reading = replace(reading, high_order_free_percent=self.sensor.high_order_free_percent())
        recent = self._recent(now)
        roles = classify(reading.procs, cfg, self.proc_root) if reading.procs else {}
        plan = policy.decide(reading, recent, self.state, cfg, roles, self._scope_kind())
        if plan.needs_procs and reading.procs is None:
            reading = self._with_procs(reading, now, with_buddy=True)
            recent = self._recent(now)
            roles = classify(reading.procs, cfg, self.proc_root)
            plan = policy.decide(reading, recent, self.state, cfg, roles, self._scope_kind())
        settled = plan.needs_settle
        if settled:
            reading = self._settled_reading(reading, now)
            recent = self._recent(now)
            roles = classify(reading.procs, cfg, self.proc_root) if reading.procs else {}
            plan = policy.decide(reading, recent, self.state, cfg, roles, self._scope_kind())
        stopped = self.state.pending is not None and plan.state.pending is None and plan.action != "kill"
        # A respawning runaway's parent starts the next at the same pace: keep its lines.
        stopped = stopped and not self.state.pending.respawns
        before, after = self.state.kernel_oom_kills, plan.state.kernel_oom_kills
        kernel_killed = before is not None and after is not None and after > before
        self.state = plan.state
        self.last_plan = plan
        # The runaway is gone, by our hand or the kernel's (a settled reading has dealt with it).
        if stopped or (kernel_killed and not settled and not self._kernel_took_respawn):
            self._forget_burst()
        acted = self._act(plan, reading, now)
        self._update_thresholds(reading, plan.lines)
        self._count_kernel_ooms(reading.oom_kills)
        self._report(reading, plan)
        tick = Tick(now=now, reading=reading, plan=plan, state=self.state, roles=roles,
                    kernel_oom_kills=self.kernel_oom_kills,
                    wait_mode=self.waiter.mode if self.waiter else "none", read_table=self.sensor.procs,
                    classify=lambda procs: classify(procs, self.config, self.proc_root))
        for part in self.parts:
            self.guarded(part, part.on_tick, tick)
        self._plan_glances(now, reading, plan.lines)
        if acted:
            return 0.0  # re-evaluate at once after every act
        return self._bounded(self._timeout(reading, plan, lines, now), now)

    def _add_fill(self, now: float, available: int) -> None:
        self.fill.add(now, available)
        self.fill_long.add(now, available)

    def _bounded(self, timeout: float, now: float) -> float:
        """A timeout cut short by whatever else falls due: a part (a leak sample, the adj
        keeper's poll), the systemd watchdog."""
        for part in self._due_askers:
            due = self.guarded(part, part.next_due, now)
            if due is not None:
                timeout = min(timeout, due)
        watchdog = self._watchdog_s
        if watchdog:
            timeout = min(timeout, watchdog)
        return max(0.0, timeout)

    def _timeout(self, reading: Reading, plan: policy.Plan, lines: policy.Lines, now: float) -> float:
        cfg = self.config
        if self.state.pending is not None:
            # Watch a graceful stop closely, and more closely still when memory runs fast.
            fast = adaptive_timeout(reading.headroom - lines.kill, self.fill_long.peak(now), cfg.wait,
                                    self.waiter.armed)
            return max(0.0, min(0.25, fast, self.state.pending.deadline - now))
        if now < self._alert_until:
            return cfg.wait.min_timeout_s
        if plan.action == "wait":
            settling = self.state.last_act_time + cfg.actions.settle_s - now
            if 0 < settling < cfg.wait.min_timeout_s:
                return settling
            return cfg.wait.min_timeout_s
        return adaptive_timeout(reading.headroom - lines.kill, self.fill_long.peak(now), cfg.wait, self.waiter.armed)

    def _scope_kind(self) -> str:
        if self.scope_dir is None:
            return "system"
        return "cgroup-v%d" % (self.sensor.cgroup_version or 1)

    def _own_pids(self) -> Tuple[int, ...]:
        """Our parent when it runs our own executable: a onefile build's unpacker, which
        only waits for us and must never be chosen as a victim."""
        if self._parent is None:
            self._parent = ()
            ppid = os.getppid()
            try:
                if ppid > 1 and os.readlink("%s/%d/exe" % (self.proc_root, ppid)) == os.readlink("/proc/self/exe"):
                    self._parent = (ppid,)
                    _die_with_parent(ppid)
                    if self.protect_self:
                        from guardian.core import selfprotect
                        err = selfprotect.set_oom_score_adj(-1000, pid=ppid, proc_root=self.proc_root)
                        if err:
                            log.debug("cannot set our parent's oom_score_adj: %s", err)
            except OSError:
                pass
        return self._parent

    def _settled_reading(self, reading: Reading, now: float) -> Reading:
        """The kernel OOM killer ended a process since the last reading: wait (briefly) until
        MemAvailable stops rising, its victim's memory being back, then read everything again.
        The victim, found in the last table, is remembered so that a respawn of it is known."""
        deadline = time.monotonic() + KERNEL_KILL_SETTLE_MAX_S
        last = reading.available
        while time.monotonic() < deadline:
            time.sleep(KERNEL_KILL_SETTLE_POLL_S)
            info = self.sensor.meminfo()
            if info is None or info.available <= last + MIB // 4:
                break
            last = info.available
        fresh = self.sensor.read(time.monotonic(), self.pid) or reading
        fresh = self._with_procs(fresh, time.monotonic(), with_buddy=False)
        if not self._kernel_took_respawn:
            # Its victim's fill is no rate: the lines return to the board's own (but not for a
            # respawning runaway, whose parent starts the next at the same pace).
            self._forget_burst()
        else:
            self._alert_until = time.monotonic() + RESPAWN_ALERT_S
        self._add_fill(fresh.time, fresh.headroom)
        return replace(fresh, oom_settled=True)

    def _note_kernel_victims(self, before: Dict[Tuple[int, int], ProcInfo], procs: Tuple[ProcInfo, ...], killed: int,
                            now: float, alive_at: Optional[float]) -> bool:
        """Who the kernel took: of the processes in the table before (read from `alive_at`,
        seconds since boot) that are gone now, those with the highest oom_score (the kernel's
        own measure), one per kill. True when one of them was itself a respawn of an earlier end."""
        now_ids = {(p.pid, p.starttime) for p in procs}
        gone = sorted((p for ident, p in before.items() if ident not in now_ids and p.held > 0),
                      key=lambda p: p.oom_score, reverse=True)
        respawned = False
        for p in gone[:max(1, killed)]:
            # A respawn, or a child of anything but init, may come back at the same pace.
            respawned = respawned or p.ppid > 1 or bool(policy.respawn_of(p, self.ended, now))
            self._remember_end(p.pid, p.starttime, p.comm, p.ppid, p.uid, p.cgroup, now, "kernel", alive_at)
        return respawned

    def _remember_end(self, pid: int, starttime: int, comm: str, ppid: int, uid: int, cgroup: str,
                      when: float, by: str, alive_at: Optional[float]) -> None:
        """`alive_at`: seconds since boot when it was last known alive (None: unknown); a
        respawn of it is born after that."""
        born_after = 0 if alive_at is None else int(alive_at * self.growth.clock_ticks)
        kept = tuple(e for e in self.ended if when - e.time <= policy.RESPAWN_WINDOW_S)
        self.ended = (kept + (Ended(pid, starttime, comm, ppid, uid, cgroup, when, by, born_after),))[-ENDED_KEPT:]

    def _with_procs(self, reading: Reading, now: float, with_buddy: bool) -> Reading:
        before, before_uptime = self._last_table, self._last_table_uptime
        uptime = _uptime()  # before the read: what the table shows was alive at this time or later
        procs = self.sensor.procs()
        self.growth.add(now, procs, uptime)
        self._last_table, self._last_table_uptime = {(p.pid, p.starttime): p for p in procs}, uptime
        for part in self.parts:  # the adj keeper's safety net: whatever a table shows gets its adj
            self.guarded(part, part.on_table, procs)
        self.last_proc_sample = now
        self.sensor.refresh_slow()
        buddy = self.sensor.high_order_free_percent() if with_buddy else None
        # Read again after the table: a runaway the kernel killed meanwhile is missing from it,
        # and the policy must know why rather than pick a bystander.
        oom_kills = self.sensor.oom_kills() if self.scope_dir is None else reading.oom_kills
        if oom_kills is not None and self._oom_noted is not None and oom_kills > self._oom_noted and before:
            self._kernel_took_respawn = self._note_kernel_victims(before, procs, oom_kills - self._oom_noted, now,
                                                                  before_uptime)
        if oom_kills is not None:
            self._oom_noted = oom_kills
        return replace(reading, procs=procs, high_order_free_percent=buddy, own_pids=self._own_pids(),
                       overcommit_mode=self.sensor.overcommit_mode if self.scope_dir is None else None,
                       oom_kills=oom_kills if oom_kills is not None else reading.oom_kills)

    def _count_kernel_ooms(self, count: Optional[int]) -> None:
        if count is not None:
            if self.oom_watch is None and self.kernel_oom_kills is not None and count > self.kernel_oom_kills:
                self.tell.event("kernel_oom", "the kernel OOM killer fired %d time(s) in scope %s" % (
                    count - self.kernel_oom_kills, self.scope_dir or "system"), count=count)
            self.kernel_oom_kills = count

    def _recent(self, now: float) -> Recent:
        return Recent(fill_rate=self.fill.peak(now), fill_now=self.fill.recent(), growth=self.growth.growth(),
                      growth_span_s=self.growth.span_s(),
                      ended=self.ended, fill_rate_long=self.fill_long.peak(now), growth_rate=self.growth.rate())

    # ----------------------------------------------------------------------------------------
    # Act

    def _act(self, plan: policy.Plan, reading: Reading, now: float) -> bool:
        if plan.action == "reclaim":
            self._reclaim(plan, reading)
            return True
        if plan.action == "terminate" and plan.victim is not None:
            return self._terminate(plan, reading, now)
        if plan.action == "kill" and plan.victim is not None:
            return self._kill(plan, reading)
        return False

    def _free_now(self) -> int:
        """What a reclaim step can raise: MemFree, or (in a cgroup) the room under the limit."""
        if self.scope_dir is not None:
            reading = self.sensor.read(time.monotonic(), self.pid)
            return reading.available if reading else 0
        info = self.sensor.meminfo()
        return info.free if info else 0

    def _reclaim(self, plan: policy.Plan, reading: Reading) -> None:
        freed: Dict[str, int] = {}
        began = time.monotonic()
        for step in plan.reclaim_steps:
            if self.dry_run:
                self.tell.event("reclaim", "dry run: would run %s (%s)" % (step, plan.reason), step=step, dry_run=True)
                freed[step] = 1
                continue
            before = self._free_now()
            started = time.monotonic()
            if step == "compact":
                result = reclaim_actions.compact_memory(self.proc_root)
            elif step == "drop_caches":
                result = reclaim_actions.drop_caches(self.config.actions.drop_caches_level, self.proc_root)
            else:
                want = max(MIB, plan.lines.reclaim_exit - reading.available)
                result = reclaim_actions.cgroup_reclaim(self.scope_dir, want)
            gained = max(0, self._free_now() - before)
            freed[step] = gained if result.ok else 0
            self.tell.event("reclaim", "%s %s: freed %.1f MiB in %.0f ms (%s)" % (
                step, "ok" if result.ok else "failed: %s" % result.error, gained / MIB,
                (time.monotonic() - started) * 1000, plan.reason), step=step, ok=result.ok,
                freed_bytes=gained, error=result.error)
        done = time.monotonic()
        self.state = policy.after_reclaim(self.state, done, freed, 0.0 if self.dry_run else done - began)
        self.fill.reset_baseline()
        self.fill_long.reset_baseline()
        self._glance_until = float("-inf")  # swap may have come or gone: the next wake reads all

    def _victim_fields(self, plan: policy.Plan, reading: Reading) -> Dict[str, Any]:
        v = plan.victim
        fields = dict(pid=v.pid, name=v.name, rss_bytes=v.rss, oom_score=v.oom_score, growth_bytes=v.growth,
                      why=v.why, runner_up=v.runner_up, reason=plan.reason, available_bytes=reading.available)
        if v.respawns:
            fields.update(respawns=v.respawns, parent_pid=v.ppid)
        return fields

    def _terminate(self, plan: policy.Plan, reading: Reading, now: float) -> bool:
        v = plan.victim
        grace = self.config.actions.grace_s
        how = "stop command %s" % list(v.stop) if v.stop else "SIGTERM"
        message = "%s[%d] by %s: %s; chosen as %s%s" % (
            v.name, v.pid, how, plan.reason, v.why, "; spared %s" % v.runner_up if v.runner_up else "")
        if self.dry_run:
            self.tell.event("terminate", "dry run: would stop " + message, dry_run=True,
                            **self._victim_fields(plan, reading))
            self.state = policy.after_dry_run(self.state, now + grace)
            return False
        handle = sig.open_process(v.pid, v.starttime, self.proc_root)
        if handle is None:
            self.tell.event("gone", "%s[%d] exited before it could be stopped" % (v.name, v.pid), pid=v.pid)
            self.state = policy.after_gone(self.state, now)
            return True
        self.tell.event("terminate", message, grace_s=grace, **self._victim_fields(plan, reading))
        self._remember_end(v.pid, v.starttime, v.name, v.ppid, v.uid, v.cgroup, now, "guardian", _uptime())
        self.state = policy.after_terminate(self.state, v, now, grace)
        self._watch_pending(handle)
        if not v.stop:
            # SIGTERM needs nothing that is not in RAM already: no thread, no import, no read
            # from flash at the moment memory is shortest (a 128 MiB VM livelocked on that).
            try:
                if not sig.send_signal(handle, signal.SIGTERM):
                    log.info("%s[%d] was gone before SIGTERM", v.name, v.pid)
            except (OSError, ValueError) as exc:
                log.warning("SIGTERM to %s[%d]: %s", v.name, v.pid, exc)
            return False
        timeout = self.config.actions.stop_command_timeout_s
        # A stop command may take seconds; memory keeps being watched meanwhile.
        _thread.start_new_thread(self._run_stop, (handle, v, timeout))  # daemonic: never holds up exit
        return False

    def _run_stop(self, handle: sig.ProcessHandle, victim: policy.Victim, timeout: float) -> None:
        try:
            result = graceful_stop(handle, victim.stop or None, timeout)
            if result.error:
                log.warning("stopping %s[%d]: %s (%s)", victim.name, victim.pid, result.error, result.method)
        except Exception as exc:
            log.error("stopping %s[%d] failed: %s", victim.name, victim.pid, exc)

    def _watch_pending(self, handle: sig.ProcessHandle) -> None:
        if self._pending_handle is not None:
            self.waiter.remove(self._pending_handle.pidfd)
            self._pending_handle.close()
        self._pending_handle = handle
        if handle.pidfd is not None:
            self.waiter.add(handle.pidfd, lambda: None)

    def _drop_pending(self) -> None:
        if self._pending_handle is not None:
            if self._pending_handle.pidfd is not None:
                self.waiter.remove(self._pending_handle.pidfd)
            self._pending_handle.close()
            self._pending_handle = None

    def _kill(self, plan: policy.Plan, reading: Reading) -> bool:
        v = plan.victim
        act = self.config.actions
        message = "%s[%d]: %s; chosen as %s%s%s" % (
            v.name, v.pid, plan.reason, v.why, "; spared %s" % v.runner_up if v.runner_up else "",
            "; SIGTERM first, SIGKILL after %.2f s" % plan.term_first_s if plan.term_first_s > 0 else "")
        if self.dry_run:
            self.tell.event("kill", "dry run: would kill " + message, dry_run=True,
                            **self._victim_fields(plan, reading))
            self.state = policy.after_dry_run(self.state, time.monotonic() + act.grace_s)
            return False
        self._drop_pending()
        handle = sig.open_process(v.pid, v.starttime, self.proc_root)
        if handle is None:
            self.tell.event("gone", "%s[%d] exited before it could be killed" % (v.name, v.pid), pid=v.pid)
            self.state = policy.after_gone(self.state, time.monotonic())
            return True
        fields = self._victim_fields(plan, reading)
        fields.update(process_group=act.kill_process_group)
        # On disk before the act: a power cut mid-kill still leaves the reason.
        self.tell.event("kill", message, **fields)
        self._remember_end(v.pid, v.starttime, v.name, v.ppid, v.uid, v.cgroup, time.monotonic(), "guardian",
                           _uptime())
        try:
            asked = False
            if plan.term_first_s > 0 and not act.kill_process_group:
                try:
                    asked = sig.send_signal(handle, signal.SIGTERM) and sig.wait_exit(handle, plan.term_first_s)
                except (OSError, ValueError) as exc:
                    log.warning("SIGTERM to %s[%d]: %s; SIGKILL", v.name, v.pid, exc)
            if asked:
                result = sig.KillResult(False, False, False, None)
            else:
                result = sig.kill(handle, process_group=act.kill_process_group, mrelease=act.mrelease)
            exited = asked or sig.wait_exit(handle, 2.0)
        finally:
            handle.close()
        done = time.monotonic()
        after = self.sensor.read(done, self.pid)
        freed = (after.available - reading.available) if after else 0
        reaction_ms = round((done - reading.time) * 1000, 1)
        self.tell.event("kill_result", "%s[%d] %s, %.1f MiB back within %.0f ms of the reading" % (
            v.name, v.pid, "exited on SIGTERM" if asked else "exited" if exited else "has NOT exited yet",
            freed / MIB, reaction_ms),
            pid=v.pid, name=v.name, exited=exited, freed_bytes=freed, mreleased=result.mreleased,
            mrelease_skipped=result.mrelease_skipped, error=result.error, reaction_ms=reaction_ms,
            sigterm_first_s=plan.term_first_s, exited_on_sigterm=asked)
        self.state = policy.after_kill(self.state, done)
        if not v.respawns and v.ppid <= 1:
            # Its burst is over: the lines return to the board's own. A victim with a parent
            # other than init may be respawned at the same pace (stress-ng restarts what is
            # SIGKILLed): its lines are kept and decay; only a grower may be ended on them.
            self._forget_burst()
        else:
            self._alert_until = done + RESPAWN_ALERT_S
        return True

    def _forget_burst(self) -> None:
        """A victim is gone (killed, stopped within its grace, or killed by the kernel). The
        lines followed the burst it made; they return to the board's own, or a bystander would
        be stopped at idle. The long peak keeps the guardian waking often for a while."""
        self.fill.reset_baseline()
        self.fill.reset_peak()
        self.fill_long.reset_baseline()

    # ----------------------------------------------------------------------------------------
    # Tell

    def _update_thresholds(self, reading: Reading, lines: policy.Lines) -> None:
        """cgroup v1: a fixed ladder of usage thresholds, set again only when the limit changes.
        Each registration blocks in the kernel for milliseconds, so the ladder does not follow
        the moving lines; it is dense enough (every 1/32 of the limit over the top half, plus
        the base lines) that a fill crosses a rung between any two of the guardian's lines."""
        thresholds = self.waiter.thresholds if self.waiter else None
        if thresholds is None or self.sensor.last_cgroup is None:
            return
        limit = reading.total
        step = max(MIB, limit // 32)
        usages = set(range(limit // 2, limit, step))
        for line in (lines.reclaim, lines.terminate, lines.kill):
            usages.add(limit - line)
        if thresholds.limit != limit:
            thresholds.set(sorted(u // MIB * MIB for u in usages if 0 < u < limit))
            thresholds.limit = limit

    def _report(self, reading: Reading, plan: policy.Plan) -> None:
        if self.state.pending is None and self._pending_handle is not None:
            self._drop_pending()
        key = (self.waiter.mode if self.waiter else None, self.state.rung, self.state.kills, self.state.terminations)
        if key != self._last_status_key:
            if self._last_status_key is not None and self.state.rung != self._last_status_key[1]:
                self.tell.event("rung", "%s: %s" % (RUNG_NAMES[self.state.rung], plan.reason),
                                rung=RUNG_NAMES[self.state.rung], available_bytes=reading.available)
            self._last_status_key = key
            self.tell.write_state(self.status(reading, plan))
            self.tell.notify(STATUS="%s, %.0f MiB available" % (RUNG_NAMES[self.state.rung], reading.available / MIB))
        interval = self._watchdog_s
        if interval and time.monotonic() - self._last_watchdog >= interval:
            self._last_watchdog = time.monotonic()
            self.tell.notify(WATCHDOG="1")

    def status(self, reading: Reading, plan: policy.Plan) -> Dict[str, Any]:
        return {
            "pid": self.pid,
            "scope": self.scope_dir or "system",
            "board": self.config.board,
            "config": self.config.source,
            "dry_run": self.dry_run,
            "wait_mode": self.waiter.mode if self.waiter else "none",
            "wait_detail": self.waiter.describe() if self.waiter else "",
            "self_protection": self.self_protection,
            "rung": RUNG_NAMES[self.state.rung],
            "reason": plan.reason,
            "lines_bytes": {"reclaim": plan.lines.reclaim, "terminate": plan.lines.terminate, "kill": plan.lines.kill},
            "kills": self.state.kills,
            "kernel_oom_kills": self.kernel_oom_kills,
            "terminations": self.state.terminations,
            "updated": time.time(),
        }
