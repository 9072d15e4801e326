"""Metrics for fleets: a Prometheus text-format file for node_exporter's textfile collector.

Off unless a path is given. The file is written whole to a temporary name beside it and
renamed over it, so the collector never reads half a file; at most every `min_interval_s`
unless forced. Put it on tmpfs (e.g. under /run) - rewriting a file on flash every ten seconds
wears it for nothing - and point node_exporter's --collector.textfile.directory there.

    m = Metrics("/run/guardian/metrics/guardian.prom")
    m.update(mem_available_bytes=..., rung="reclaim", wait_mode="psi-trigger", tick_seconds=0.002)
    m.write(time.monotonic())

Kill and action counters also follow the events when the Metrics is given to Telemetry
(`Telemetry(..., metrics=m)`), or take whole dicts through update(actions=..., kills=...).
"""
from __future__ import annotations

import math
import time

from guardian import safefile
from guardian.core.parts import Part, Tick
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional


PREFIX = "guardian_"
RUNGS = ("normal", "reclaim", "terminate", "kill")
ACTION_KINDS = ("reclaim", "terminate", "kill", "restart", "leak")
_GAUGES = {
    # name: (metric, help)
    "mem_total_bytes": ("memory_total_bytes", "Memory of the guarded scope (MemTotal, or the cgroup limit)."),
    "mem_available_bytes": ("memory_available_bytes", "Memory available in the guarded scope."),
    "swap_total_bytes": ("swap_total_bytes", "Swap size."),
    "swap_free_bytes": ("swap_free_bytes", "Swap free."),
    "psi_some_avg10": ("psi_memory_some_avg10_ratio", "Share of the last 10 s some task stalled on memory (0-1)."),
    "psi_full_avg10": ("psi_memory_full_avg10_ratio", "Share of the last 10 s all tasks stalled on memory (0-1)."),
    "psi_some_total_us": ("psi_memory_some_stall_seconds_total", "Time some task stalled on memory."),
    "psi_full_total_us": ("psi_memory_full_stall_seconds_total", "Time all tasks stalled on memory."),
    "kernel_oom_kills": ("kernel_oom_kills_total", "Kills by the kernel OOM killer (vmstat oom_kill or the cgroup's)."),
    "tick_seconds": ("tick_duration_seconds", "Duration of the guardian's ticks."),
}
_KNOWN = set(_GAUGES) | {"rung", "wait_mode", "actions", "kills", "leak_slopes", "lines_bytes", "kernel_oom_causes"}


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Metrics(Part):
    name = "metrics"

    def __init__(self, path: Optional[str], min_interval_s: float = 10.0):
        self.path = path or None
        self.min_interval_s = min_interval_s
        self.values: Dict[str, Any] = {}
        self.actions: Dict[str, int] = {}
        self.kills: Dict[str, int] = {}
        self.kernel_oom_causes: Dict[str, int] = {}
        self.leak_slopes: Dict[str, float] = {}
        self.lines_bytes: Dict[str, int] = {}
        self._tick_sum = 0.0
        self._tick_count = 0
        self._tick_max = 0.0
        self._last_write: Optional[float] = None
        self.start_time = time.time()
        self.writes = 0
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def update(self, **values: Any) -> None:
        """Record the latest values. Keys: mem_total_bytes, mem_available_bytes,
        swap_total_bytes, swap_free_bytes, psi_some_avg10 / psi_full_avg10 (percent, as the
        kernel prints them), psi_some_total_us / psi_full_total_us, rung (name or 0-3),
        wait_mode (str), kernel_oom_kills (int), tick_seconds (one tick's duration, summed),
        actions ({kind: count}), kills ({name: count}), leak_slopes ({name: bytes per second}),
        lines_bytes ({"reclaim": .., "terminate": .., "kill": ..}), kernel_oom_causes
        ({cause: count}). An unknown key raises TypeError (a wiring mistake, found at once)."""
        unknown = set(values) - _KNOWN
        if unknown:
            raise TypeError("Metrics.update: unknown metric(s) %s" % ", ".join(sorted(unknown)))
        for key, value in values.items():
            if key == "tick_seconds":
                if value is not None:
                    self._tick_sum += value
                    self._tick_count += 1
                    self._tick_max = max(self._tick_max, value)
            elif key in ("actions", "kills", "leak_slopes", "lines_bytes", "kernel_oom_causes"):
                setattr(self, key, dict(value or {}))
            elif key == "rung" and isinstance(value, str):
                self.values[key] = RUNGS.index(value) if value in RUNGS else None
            else:
                self.values[key] = value

    def observe_event(self, kind: str, fields: Dict[str, Any]) -> None:
        """Count an event as Telemetry tells it (dry-run decisions are not counted)."""
        if fields.get("dry_run"):
            return
        if kind in ACTION_KINDS:
            self.actions[kind] = self.actions.get(kind, 0) + 1
        if kind == "kill" and fields.get("name"):
            name = str(fields["name"])
            self.kills[name] = self.kills.get(name, 0) + 1
        if kind == "kernel_oom":
            cause = str(fields.get("cause") or "unknown")
            self.kernel_oom_causes[cause] = self.kernel_oom_causes.get(cause, 0) + 1

    def render(self) -> str:
        out: List[str] = []

        def family(name: str, kind: str, help_text: str, samples) -> None:
            samples = [(labels, value) for labels, value in samples if value is not None]
            if not samples and kind != "counter":
                return
            full = PREFIX + name  # text format 0.0.4: HELP/TYPE name the sample, _total included
            out.append("# HELP %s %s" % (full, help_text.replace("\\", "\\\\").replace("\n", "\\n")))
            out.append("# TYPE %s %s" % (full, kind))
            for labels, value in samples:
                label_text = ""
                if labels:
                    label_text = "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))
                out.append("%s%s %s" % (full, label_text, _number(value)))

        v = self.values
        for key in ("mem_total_bytes", "mem_available_bytes", "swap_total_bytes", "swap_free_bytes"):
            name, help_text = _GAUGES[key]
            family(name, "gauge", help_text, [({}, v.get(key))])
        for key in ("psi_some_avg10", "psi_full_avg10"):
            name, help_text = _GAUGES[key]
            value = v.get(key)
            family(name, "gauge", help_text, [({}, None if value is None else value / 100.0)])
        for key in ("psi_some_total_us", "psi_full_total_us"):
            name, help_text = _GAUGES[key]
            value = v.get(key)
            if value is not None:
                family(name, "counter", help_text, [({}, value / 1e6)])
        family("rung", "gauge", "The ladder's rung: 0 normal, 1 reclaim, 2 terminate, 3 kill.",
               [({}, v.get("rung"))])
        if v.get("wait_mode") is not None:
            family("wait_mode", "gauge", "How the guardian waits between ticks (1 for the mode in force).",
                   [({"mode": v["wait_mode"]}, 1)])
        if self.lines_bytes:
            family("line_bytes", "gauge", "Available-memory line of each rung.",
                   [({"rung": k}, val) for k, val in sorted(self.lines_bytes.items())])
        family("actions_total", "counter", "Actions taken, by kind.",
               [({"kind": k}, self.actions.get(k, 0)) for k in sorted(set(ACTION_KINDS) | set(self.actions))])
        family("kills_total", "counter", "Processes killed by the guardian, by name.",
               [({"name": k}, val) for k, val in sorted(self.kills.items())])
        if v.get("kernel_oom_kills") is not None:
            name, help_text = _GAUGES["kernel_oom_kills"]
            family(name, "counter", help_text, [({}, v["kernel_oom_kills"])])
        family("kernel_oom_reports_total", "counter", "Kernel OOM reports read from the kernel log, by cause.",
               [({"cause": k}, val) for k, val in sorted(self.kernel_oom_causes.items())])
        if self.leak_slopes:
            family("leak_slope_bytes_per_second", "gauge", "Growth rate of processes suspected of leaking.",
                   [({"name": k}, val) for k, val in sorted(self.leak_slopes.items())])
        if self._tick_count:
            base = PREFIX + "tick_duration_seconds"
            out.append("# HELP %s %s" % (base, _GAUGES["tick_seconds"][1]))
            out.append("# TYPE %s summary" % base)
            out.append("%s_sum %s" % (base, _number(self._tick_sum)))
            out.append("%s_count %s" % (base, _number(self._tick_count)))
            family("tick_duration_max_seconds", "gauge", "Longest tick since the guardian started.",
                   [({}, self._tick_max)])
        family("start_time_seconds", "gauge", "When the guardian started (Unix time).", [({}, self.start_time)])
        return "\n".join(out) + "\n"

    def write(self, now: float, force: bool = False) -> bool:
        """Write the file if due (or forced). `now` is a monotonic clock. True if written."""
        if self.path is None:
            return False
        if not force and self._last_write is not None and now - self._last_write < self.min_interval_s:
            return False
        self._last_write = now
        text = self.render().encode("utf-8")
        try:
            # Temp file with an unpredictable name (O_EXCL, no links followed) renamed over the
            # file, in a directory only root can write: see guardian.safefile.
            safefile.write_atomic(self.path, text, 0o644)
        except OSError as exc:
            if not self._failed:
                log.error("cannot write metrics to %s: %s (metrics are off until it works)", self.path,
                          exc.strerror or exc)
            self._failed = True
            return False
        if self._failed:
            log.info("metrics written to %s again", self.path)
        self._failed = False
        self.writes += 1
        return True

    def remove(self) -> None:
        """Remove the file (on a clean stop, so a dead guardian's numbers are not scraped)."""
        if self.path:
            safefile.remove(self.path)  # a link is removed, not followed

    def on_tick(self, tick: Tick) -> None:
        """The tick's numbers, and the file when it is due."""
        lines = tick.plan.lines
        self.update(
            mem_total_bytes=tick.reading.total, mem_available_bytes=tick.reading.available,
            psi_some_avg10=tick.reading.psi_some_avg10, psi_full_avg10=tick.reading.psi_full_avg10,
            rung=RUNGS[tick.state.rung], wait_mode=tick.wait_mode,
            lines_bytes={"reclaim": lines.reclaim, "terminate": lines.terminate, "kill": lines.kill},
            tick_seconds=max(0.0, time.monotonic() - tick.now))
        if tick.kernel_oom_kills is not None:
            self.update(kernel_oom_kills=tick.kernel_oom_kills)
        self.write(tick.now)

    def close(self) -> None:
        self.remove()
