"""What the guardian remembers between ticks: how fast memory fills, and who grew.

Pure data structures: the daemon feeds them samples with their times; nothing here reads a
clock or a file, so the policy's inputs stay reproducible in tests.
"""
from __future__ import annotations

from _collections import deque  # the C type: collections/__init__.py imports keyword, operator, reprlib

from guardian.kernel.procs import ProcInfo

try:  # not 0.5 ** t: the first pow() maps 64-240 KiB of libm into the locked memory
    from guardian._rest import exp
except ImportError:
    from math import exp

_LN2 = 0.6931471805599453

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Deque, Dict, Iterable, Optional, Tuple

    Identity = Tuple[int, int]  # (pid, starttime): a PID alone is reused


class FillRate:
    """The rate at which available memory falls, from successive (time, available) samples.

    `peak()` is the fastest fall seen recently; it decays by half every `half_life_s`, so one
    burst sharpens the guardian for a while and an idle device relaxes again.
    """

    def __init__(self, half_life_s: float = 300.0, min_interval_s: float = 0.2, span_s: float = 1.0):
        self.half_life_s = half_life_s
        # Readings milliseconds apart (an event right after a tick) would turn one page-sized
        # step into a huge "rate": measure over at least this long.
        self.min_interval_s = min_interval_s
        self._last: Optional[Tuple[float, int]] = None
        self._peak = 0.0
        self._peak_time = 0.0
        self.current = 0.0  # bytes/s over the last interval; negative when memory came back
        # The samples of the last span_s: the pace now, steadier than one interval (a reader
        # stalled in reclaim for a moment) and forgotten a second after a burst ends.
        self.span_s = span_s
        self._span: Deque[Tuple[float, int]] = deque()

    def add(self, now: float, available: int) -> None:
        if self._last is not None:
            then, before = self._last
            dt = now - then
            if dt < self.min_interval_s:
                return  # keep the older baseline
            self.current = (before - available) / dt
            if self.current > self.peak(now):
                self._peak, self._peak_time = self.current, now
        self._last = (now, available)
        span = self._span
        span.append((now, available))
        while span[0][0] < now - self.span_s:
            span.popleft()

    def recent(self) -> float:
        """bytes/s over the samples of the last span_s, or over the last interval where that
        span holds one sample: the pace now. Negative when memory came back."""
        span = self._span
        if len(span) < 2:
            return self.current
        (then, before), (last, available) = span[0], span[-1]
        return (before - available) / (last - then)

    def peak(self, now: float) -> float:
        if self._peak <= 0.0:
            return 0.0
        age = max(0.0, now - self._peak_time)
        return self._peak * exp(-_LN2 * age / self.half_life_s)

    def reset_baseline(self) -> None:
        """Forget the last sample (after an action freed memory, the jump is not a rate)."""
        self._last = None
        self._span.clear()

    def reset_peak(self) -> None:
        """Forget the peak: the burst it measured was just ended by a kill."""
        self._peak = 0.0
        self.current = 0.0
        self._span.clear()


# The samples kept between the oldest and the newest: about one per window_s / this.
KEPT_PER_WINDOW = 8
# A newborn's rate is its RSS over its age, at least this long: a table read a moment after a
# fork would otherwise make a huge rate of a few pages.
MIN_WATCHED_S = 0.5


class Growth:
    """Per-process RSS samples over a sliding window: who grew, and by how much.

    A process born inside the window grew from nothing: it counts its whole RSS from its first
    reading, even when the window holds a single sample (a runaway the guardian has seen only
    once is still the culprit, not the idle bystander beside it). Birth comes from the
    starttime in the table (clock ticks after boot) against the boot clock the caller passes.
    """

    def __init__(self, window_s: float = 30.0, max_samples: int = 64, clock_ticks: int = 100):
        self.window_s = window_s
        self.clock_ticks = clock_ticks
        # (monotonic time, seconds since boot or None, identity -> rss)
        self._samples: Deque[Tuple[float, Optional[float], Dict[Identity, int]]] = deque(maxlen=max_samples)
        self._growth: Optional[Dict[int, int]] = None  # growth() of the samples as they are
        self._rate: Optional[float] = None  # rate() of the samples as they are

    def add(self, now: float, procs: Iterable[ProcInfo], uptime_s: Optional[float] = None) -> None:
        """`uptime_s`: seconds since boot at `now` (CLOCK_BOOTTIME), to tell who was born
        inside the window; None leaves birth to the samples alone."""
        sample = {(p.pid, p.starttime): p.held for p in procs}
        samples = self._samples
        if len(samples) >= 2 and samples[-1][0] - samples[-2][0] < self.window_s / KEPT_PER_WINDOW:
            # Growth needs the oldest sample and the newest, and a few between to be the next
            # oldest: under pressure, a table a second over 30 s held 0.3 MiB (100 processes),
            # taken while memory is shortest. The newest too close to the one before: replaced.
            samples[-1] = (now, uptime_s, sample)
        else:
            samples.append((now, uptime_s, sample))
        self._growth = self._rate = None
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def last_time(self) -> Optional[float]:
        return self._samples[-1][0] if self._samples else None

    def _age(self, ident: Identity, uptime_s: float) -> float:
        """Seconds since its birth (starttime, in clock ticks after boot) at `uptime_s`."""
        return uptime_s - ident[1] / float(self.clock_ticks)

    def _born_within(self, ident: Identity, uptime_s: Optional[float], since_s: float) -> bool:
        return uptime_s is not None and self._age(ident, uptime_s) <= since_s

    def growth(self) -> Dict[int, int]:
        """Bytes each current process grew since the oldest sample in the window (or since its
        birth, when it was born inside the window), by PID.

        The dict is shared until the next add(): read it, do not change it.
        """
        if not self._samples:
            return {}
        if self._growth is None:  # the daemon asks on every wake; samples change far less often
            then, _, oldest = self._samples[0]
            now, uptime, latest = self._samples[-1]
            if len(self._samples) < 2:
                # One look so far: only the newly born have grown, by all they hold.
                self._growth = {ident[0]: rss for ident, rss in latest.items()
                                if self._born_within(ident, uptime, self.window_s)}
            else:
                self._growth = {ident[0]: rss - oldest.get(ident, 0) for ident, rss in latest.items()}
        return self._growth

    def rate(self) -> float:
        """Bytes/s the current processes grow at together: each grower's growth over the time
        it was watched (the window, or its life when it was born inside it). Unlike the fall of
        MemAvailable between two glances, a stall and the burst that catches up after it (an
        allocator held in reclaim) average out here."""
        if not self._samples:
            return 0.0
        if self._rate is None:
            self._rate = self._rate_of_samples()
        return self._rate

    def _rate_of_samples(self) -> float:
        then, _, oldest = self._samples[0]
        now, uptime, latest = self._samples[-1]
        span = now - then
        total = 0.0
        for ident, rss in latest.items():
            if len(self._samples) > 1 and ident in oldest:
                grown, watched = rss - oldest[ident], span
            elif len(self._samples) > 1 or self._born_within(ident, uptime, self.window_s):
                # Born since the oldest sample (or, seen once, inside the window): all it holds grew.
                grown = rss
                watched = span if uptime is None else min(self.window_s, self._age(ident, uptime))
            else:
                continue
            if grown > 0:
                total += grown / max(watched, MIN_WATCHED_S)
        return total

    def span_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        return self._samples[-1][0] - self._samples[0][0]

    def latest(self) -> Dict[Identity, int]:
        return self._samples[-1][2] if self._samples else {}
