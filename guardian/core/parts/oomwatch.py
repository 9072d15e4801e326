"""The daemon's kernel OOM watcher: when the kernel's OOM killer fires, read its report from
/dev/kmsg and hand it back as the fields of a ``kernel_oom`` event.

The daemon hands it the vmstat oom_kill count every tick; only when the count moves are the
records logged since the last read parsed (guardian.analysis.oomreport). Each report is
classified (guardian.analysis.forensics), imported at the first report only: the daemon's idle
memory matters more, and a kill has just given memory back.
"""
from __future__ import annotations

import os
import time

from guardian.core.parts import Part, Tick
from guardian.kernel.kmsg import KMSG_PATH, KmsgReader
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

    from guardian.analysis.oomreport import OomReport, OomReportParser
    from guardian.core.parts import Tell



def kernel_cgroup_path(directory: str) -> str:
    """A cgroup directory (/sys/fs/cgroup/memory/apps/web) as the kernel names it in its log
    (/apps/web): the part below the hierarchy's mount point, found where the device changes."""
    directory = os.path.abspath(directory)
    try:
        dev = os.stat(directory).st_dev
    except OSError:
        return directory
    top = directory
    while True:
        parent = os.path.dirname(top)
        if parent == top:
            break
        try:
            if os.stat(parent).st_dev != dev:
                break
        except OSError:
            break
        top = parent
    rel = directory[len(top):]
    return rel if rel.startswith("/") else "/" + rel


class KernelOomWatcher(Part):
    """Kernel OOM kills, with the kernel's own report, parsed and classified.

    `check(count)` is called every tick with the vmstat oom_kill count (or the cgroup's); it
    reads /dev/kmsg only when the count moved, a report is half read, or there is no count to go
    by. A report is returned once its victim line is in (or after `wait_s` without it, marked
    truncated); kills the log could not explain (no access to /dev/kmsg, records overwritten)
    still come back, as reports from the count alone. Each report is a dict for
    ``tell.event("kernel_oom", report["summary"], **report)``: as the daemon's part, each full
    tick does that (on_tick).

    /dev/kmsg is not in the loop's poll set (the part has no fileno): polling it would wake the
    guardian for every kernel message, and the count read each tick finds every kill anyway.
    `drain_reports()` reads whatever the log holds now, count or not."""

    name = "kernel OOM reports"

    def __init__(self, proc_root: str = "/proc", kmsg_path: str = KMSG_PATH, sys_root: str = "/sys",
                 wait_s: float = 1.0, clock=time.monotonic, scope_dir: Optional[str] = None,
                 tell: Optional[Tell] = None):
        self.proc_root = proc_root
        self.tell = tell  # where on_tick's kernel_oom events go
        # Guarding one cgroup: reports of OOMs elsewhere are left out (the kernel names
        # cgroups relative to the hierarchy's mount point).
        self.scope_cgroup: Optional[str] = kernel_cgroup_path(scope_dir) if scope_dir else None
        self.sys_root = sys_root
        self.wait_s = wait_s
        self.clock = clock
        self.reader = KmsgReader(kmsg_path, from_end=True)
        try:
            page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        except (ValueError, OSError):
            page_kb = 4
        self._page_kb = page_kb
        self._parser: Optional[OomReportParser] = None
        self._count: Optional[int] = None
        self._unexplained = 0  # kills counted but not yet matched by a report from the log
        self._ahead = 0  # kills reported from the log before the count showed them
        self._ahead_since = 0.0
        self._deadline: Optional[float] = None
        self._lost_seen = 0
        if self.reader.fd is None:
            log.warning("kernel log unreadable (%s): kernel OOM kills are counted but not explained",
                        self.reader.error)

    @property
    def parser(self) -> OomReportParser:
        """The report parser, made at the first kernel message drained: its patterns and re
        cost ~1 MiB, which the idle daemon does not hold, and a kill has just given memory back."""
        if self._parser is None:
            from guardian.analysis.oomreport import OomReportParser
            self._parser = OomReportParser(page_kb=self._page_kb)
        return self._parser

    def _current(self) -> Any:
        """The report being read, if any (without making a parser)."""
        return None if self._parser is None else self._parser.current

    @property
    def available(self) -> bool:
        return self.reader.fd is not None

    def drain_reports(self) -> List[Dict[str, Any]]:
        return self.check(None, drain=True)

    def on_tick(self, tick: Tick) -> None:
        """Each tick: vmstat oom_kill (in the reading) is cheap; the kernel log is read only
        when it moved."""
        for report in self.check(tick.kernel_oom_kills):
            summary = report.pop("summary", "the kernel OOM killer fired")
            if self.tell is not None:
                self.tell.event("kernel_oom", summary, **report)

    def check(self, oom_kill_count: Optional[int], drain: bool = False) -> List[Dict[str, Any]]:
        now = self.clock()
        moved = 0
        if oom_kill_count is not None:
            if self._count is not None and oom_kill_count > self._count:
                moved = oom_kill_count - self._count
            self._count = oom_kill_count
        if moved:
            absorbed = min(moved, self._ahead)
            self._ahead -= absorbed
            self._unexplained += moved - absorbed
            if self._unexplained and self._deadline is None:
                self._deadline = now + self.wait_s
        if self._ahead and now - self._ahead_since > 60.0:
            self._ahead = 0  # reports of another scope's kills, not coming in this count

        finished: List[OomReport] = []
        if self.reader.fd is not None and (drain or moved or oom_kill_count is None or self._unexplained
                                           or self._current() is not None):
            finished = self._drain(now)
        if self._deadline is not None and now >= self._deadline:
            if self._parser is not None:
                finished.extend(self._parser.finish())
            self._deadline = None
        out = []
        for report in finished:
            if not self._in_scope(report):
                continue
            out.append(self._fields(report, "kmsg"))
            # A report whose victim line never came still stands for one kill.
            kills = len(report.victims) or (0 if report.no_killable else 1)
            used = min(kills, self._unexplained)
            self._unexplained -= used
            if kills > used:
                self._ahead += kills - used
                self._ahead_since = now
        if self._unexplained and (self.reader.fd is None or self._deadline is None or now >= self._deadline):
            out.append(self._count_only(self._unexplained))
            self._unexplained = 0
            self._deadline = None
        if not self._unexplained and self._current() is None:
            self._deadline = None
        return out

    def _in_scope(self, report: OomReport) -> bool:
        scope = self.scope_cgroup
        if scope is None or scope == "/":
            return True
        cgroups = [c for c in (report.task_memcg, report.oom_memcg) if c]
        if not cgroups:
            return True  # the report does not say: keep it
        return any(c == scope or c.startswith(scope.rstrip("/") + "/") for c in cgroups)

    def _drain(self, now: float) -> List[OomReport]:
        finished: List[OomReport] = []
        for record in self.reader.records():
            if self.reader.lost != self._lost_seen:
                if self._current() is not None:
                    self.parser.current.records_lost += self.reader.lost - self._lost_seen
                self._lost_seen = self.reader.lost
            # One printk with embedded newlines is one record (kmsg shows them as \x0a).
            for line in record.message.split("\n"):
                finished.extend(self.parser.feed(line, record.ts))
        if self.reader.lost != self._lost_seen:
            if self._current() is not None:
                self.parser.current.records_lost += self.reader.lost - self._lost_seen
            self._lost_seen = self.reader.lost
        if self._parser is None:
            return finished
        finished.extend(self._parser.take_finished())
        if self._parser.current is not None and self._deadline is None:
            self._deadline = now + self.wait_s
        return finished

    def _fields(self, report: OomReport, source: str) -> Dict[str, Any]:
        # Imported at the first report, not at start: idle RSS matters more, and a kill has
        # just given memory back.
        from guardian.analysis.forensics import report_fields
        fields = report_fields(report, proc_root=self.proc_root, live=True)
        fields["source"] = source
        if self._count is not None:
            fields["count"] = self._count
        return fields

    def _count_only(self, new: int) -> Dict[str, Any]:
        why = self.reader.error or ("its report was not found in the kernel log (overwritten, or logged at a level "
                                    "not kept)")
        return {
            "summary": "the kernel OOM killer fired %d time(s); no details: %s" % (new, why),
            "cause": "unknown",
            "source": "vmstat",
            "new": new,
            "count": self._count,
            "truncated": True,
            "missing": ["report"],
        }

    def close(self) -> None:
        self.reader.close()
