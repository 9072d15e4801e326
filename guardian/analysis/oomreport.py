"""Kernel OOM killer reports: the records one report fills in, and the parser that reads them
from kernel log lines.

Two uses:
- live: the daemon's watcher (guardian.core.parts.oomwatch) feeds it the /dev/kmsg records
  logged since the last read;
- offline (parse_log_text): a saved ``dmesg`` / ``journalctl -k`` / syslog text, for
  ``guardian diagnose``.

The parser keeps only what one report needs (a few dozen numbers and the five largest tasks),
never the log itself, so reading a megabyte of backlog costs no memory.

An OOM report, as the kernel prints it (dump_header and oom_kill_process in mm/oom_kill.c):
the "invoked oom-killer" line (who, gfp_mask, order, oom_score_adj), the invoker's CPU/PID
line and stack, then either the memory cgroup's usage/limit lines (cgroup OOM) or Mem-Info with
per-zone free/min/low/high lines and buddy lists (global OOM), the task table, the
"oom-kill:constraint=..." line (kernels >= 4.19; "Task in X killed as a result of limit of Y"
before), and "Killed process PID (comm) total-vm:.. anon-rss:.. file-rss:.. shmem-rss:..".
Other CPUs' messages may be interleaved anywhere, and the ring buffer may have overwritten the
beginning of a report by the time it is read: parts can be missing, and the report says which.
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Tuple

TOP_TASKS = 5  # largest tasks of the report's task table kept

# --------------------------------------------------------------------------------------------
# One report


class _Record:
    """A plain record. Not a dataclass: the code a dataclass generates at import costs about
    half a MiB of RSS for these few classes, on boards where the guardian's whole budget is 8."""

    FIELDS: Tuple[str, ...] = ()
    LISTS: Tuple[str, ...] = ()

    def __init__(self, **values: Any):
        for name in self.FIELDS:
            setattr(self, name, [] if name in self.LISTS else None)
        for name, value in values.items():
            if name not in self.FIELDS:
                raise TypeError("%s has no field %r" % (type(self).__name__, name))
            setattr(self, name, value)

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, v) for k, v in vars(self).items() if v is not None and v != [] and not k.startswith("_")))

    def as_dict(self) -> Dict[str, Any]:
        out = {}
        for k in self.FIELDS:
            v = getattr(self, k)
            if v is not None and v is not False:  # 0 is a value
                out[k] = v
        return out


class Victim(_Record):
    FIELDS = ("pid", "comm", "total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb", "uid", "pgtables_kb",
              "oom_score_adj",
              "score",  # "Kill process N (x) score S or sacrifice child" (< 4.19)
              "reaped")  # an oom_reaper line followed


class Zone(_Record):
    FIELDS = ("node",  # None on kernels that print "Normal free:" without the node
              "zone", "free_kb", "min_kb", "low_kb", "high_kb",
              "buddy",  # free blocks per order
              "buddy_block_kb")  # size of an order-0 block (the page size)

    def as_dict(self) -> Dict[str, Any]:
        d = _Record.as_dict(self)
        if self.buddy is not None:
            d["buddy"] = list(self.buddy)
        return d


class OomReport(_Record):
    """What one OOM killer invocation told the log. Fields are None when not seen."""

    FIELDS = (
        "invoker", "invoker_pid",
        "gfp_mask",  # "0xcc0(GFP_KERNEL)"
        "order", "invoker_oom_score_adj", "nodemask",
        "constraint",  # CONSTRAINT_NONE / _CPUSET / _MEMORY_POLICY / _MEMCG
        "cpuset", "mems_allowed", "global_oom",
        "oom_memcg",  # the cgroup whose limit was hit
        "task_memcg",  # the victim's cgroup
        "memcg_usage_kb", "memcg_limit_kb", "memcg_failcnt",
        "memcg_swap_usage_kb", "memcg_swap_limit_kb",  # v2 "swap: usage"
        "memcg_memsw_usage_kb", "memcg_memsw_limit_kb",  # v1 "memory+swap: usage" (memory and swap together)
        "oom_group",  # "Tasks in X are going to be killed due to memory.oom.group set"
        "victims", "zones", "swap_free_kb", "swap_total_kb", "ram_pages", "page_kb",
        "top_tasks",  # the largest tasks of the task table, largest rss first
        "slab_unreclaimable_kb",  # Mem-Info slab_unreclaimable (pages -> kB)
        "top_slabs",  # "Unreclaimable slab info:" rows
        "memcg_victim",  # "Memory cgroup out of memory: Killed" (True) or "Out of memory: Killed" (False)
        "no_killable",  # "Out of memory and no killable processes..."
        "kernel_time_s",  # seconds since boot of the first line seen
        "records_lost",  # kmsg records overwritten while this report was being read
        "seen",  # which parts were seen: header, meminfo, memcg, tasks, constraint, victim, slab
        "_task_columns",
    )
    LISTS = ("victims", "zones", "top_tasks", "top_slabs")

    def __init__(self, **values: Any):
        _Record.__init__(self, **values)
        self.records_lost = self.records_lost or 0
        self.no_killable = bool(self.no_killable)
        if self.seen is None:
            self.seen = set()

    @property
    def finished(self) -> bool:
        """The kernel has said its last word: a victim is named, or there was none to kill."""
        return bool(self.victims) or self.no_killable

    def missing(self) -> List[str]:
        out = []
        if "header" not in self.seen:
            out.append("header")  # who invoked it, gfp_mask, order
        if "constraint" not in self.seen and "memcg" not in self.seen and self.constraint is None:
            out.append("constraint")
        if not self.finished:
            out.append("victim")
        return out

    def zone(self, node: Optional[int], name: str) -> Zone:
        for z in self.zones:
            if z.node == node and z.zone == name:
                return z
        z = Zone(node=node, zone=name)
        self.zones.append(z)
        return z

    def as_fields(self) -> Dict[str, Any]:
        """The report as event fields (None left out; no key collides with an event's own
        time/event/message or with Telemetry.event's kind/message parameters)."""
        d: Dict[str, Any] = {}
        for name in ("invoker", "invoker_pid", "gfp_mask", "order", "invoker_oom_score_adj", "nodemask",
                     "constraint", "cpuset", "mems_allowed", "global_oom", "oom_memcg", "task_memcg",
                     "memcg_usage_kb", "memcg_limit_kb", "memcg_failcnt", "memcg_swap_usage_kb",
                     "memcg_swap_limit_kb", "memcg_memsw_usage_kb", "memcg_memsw_limit_kb", "oom_group",
                     "swap_free_kb", "swap_total_kb",
                     "slab_unreclaimable_kb", "kernel_time_s"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.ram_pages is not None:
            d["ram_kb"] = self.ram_pages * (self.page_kb or 4)
        if self.victims:
            first = self.victims[0]
            d["victim_pid"] = first.pid
            d["victim_name"] = first.comm
            if first.anon_rss_kb is not None:
                d["victim_anon_rss_kb"] = first.anon_rss_kb
            d["victims"] = [v.as_dict() for v in self.victims]
        if self.no_killable:
            d["no_killable"] = True
        if self.zones:
            d["zones"] = [z.as_dict() for z in self.zones]
        if self.top_tasks:
            d["top_tasks"] = self.top_tasks
        if self.top_slabs:
            d["top_slabs"] = self.top_slabs
        missing = self.missing()
        d["truncated"] = bool(missing)
        if missing:
            d["missing"] = missing
        if self.records_lost:
            d["records_lost"] = self.records_lost
        return d


# --------------------------------------------------------------------------------------------
# Lines

_HEADER = re.compile(r"(?P<comm>.*?) invoked oom-killer: (?P<rest>.*)$")
_GFP = re.compile(r"gfp_mask=(?P<gfp>0x[0-9a-fA-F]+(?:\([^)]*\))?)")
_ORDER = re.compile(r"\border=(-?\d+)")
_ADJ = re.compile(r"\boom_score_adj=(-?\d+)")
_NODEMASK = re.compile(r"\bnodemask=([^,\s]+)")
_CPU = re.compile(r"CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: (.+?) (?:Not tainted|Tainted)")
_ZONE = re.compile(r"(?:Node (\d+) )?(\w+) free:(\d+)kB\b")
_MARK = {m: re.compile(r"\b%s:(\d+)kB" % m) for m in ("min", "low", "high")}
_BUDDY = re.compile(r"(?:Node (\d+), )?(?:Node (\d+) )?(\w+): ((?:\d+\*\d+kB\s*(?:\([A-Z]*\)\s*)?)+)= (\d+)kB")
_BLOCK = re.compile(r"(\d+)\*(\d+)kB")
_SWAP = re.compile(r"(Free|Total) swap\s*=\s*(\d+)kB")
_RAM = re.compile(r"(\d+) pages RAM\b")
_MEMCG_USAGE = re.compile(r"^(memory|memory\+swap|swap): usage (\d+)kB, limit (\d+)kB, failcnt (\d+)")
_TASK_IN = re.compile(r"Task in (\S+) killed as a result of limit of (\S+)")
_OOM_GROUP = re.compile(r"Tasks in (\S+) are going to be killed due to memory\.oom\.group set")
_KILL_SCORE = re.compile(r"Kill process (\d+) \((.*)\) score (\d+) or sacrifice child")
_KILLED = re.compile(
    r"Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB"
    r"(?:, shmem-rss:(\d+)kB)?(?:,? UID:(\d+))?(?: pgtables:(\d+)kB)?(?: oom_score_adj:(-?\d+))?")
_REAPED = re.compile(r"oom_reaper: reaped process (\d+) \(")
_SLAB_UNRECL = re.compile(r"\bslab_unreclaimable:(\d+)\b")
_SLAB_ROW = re.compile(r"(\S+)\s+(\d+)KB\s+(\d+)KB$")
_TASK_ROW = re.compile(r"\[\s*(\d+)\]\s+(.*)$")
_RANGE = re.compile(r"[\d,-]+")

# Prefixes of saved logs: dmesg "[  12.345678] ", journal/syslog "Mar  3 10:00:01 host kernel: ",
# ISO "2024-03-03T10:00:01+0100 host kernel: ", BusyBox syslogd "... host kern.warn kernel: ",
# "dmesg -x" "kern  :warn  : ", and raw "<4>".
_SYSLOG_PREFIX = re.compile(
    r"^(?:\w{3} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?)\s+"
    r"(?P<host>\S+)\s+(?:(?P<fac>\w+\.\w+)\s+)?(?P<ident>[^\s:\[]+)(?:\[\d+\])?:\s?")
_MONO_HOST = re.compile(r"^\S+ kernel: ")
_PRIO_PREFIX = re.compile(r"^<\d+>")
_TS_PREFIX = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_DMESG_X = re.compile(r"^\w+\s*:\s*\w+\s*: ")


def strip_prefix(line: str) -> Tuple[Optional[str], Optional[float]]:
    """(the kernel's message, its seconds since boot) from one line of a saved log; the
    message is None when the line is some other program's (a journal or syslog line whose
    identifier is not "kernel")."""
    line = line.rstrip("\r\n")
    line = _PRIO_PREFIX.sub("", line, count=1)
    m = _SYSLOG_PREFIX.match(line)
    if m:
        if m.group("ident") != "kernel":
            return None, None
        line = line[m.end():]
        line = _PRIO_PREFIX.sub("", line, count=1)
    else:
        m = _DMESG_X.match(line)
        if m and not line.startswith("Node ") and "[" in line[m.end():m.end() + 2]:
            line = line[m.end():]
    ts = None
    m = _TS_PREFIX.match(line)
    if m:
        ts = float(m.group(1))
        line = line[m.end():]
        m = _MONO_HOST.match(line)  # journalctl -o short-monotonic: "[  12.3] host kernel: "
        if m:
            line = line[m.end():]
    return line, ts


def _kv_pairs(text: str) -> Dict[str, Any]:
    """ "constraint=CONSTRAINT_NONE,nodemask=(null),mems_allowed=0-1,3,global_oom,task=x" ->
    dict; a bare number range continues the previous value (mems_allowed=0,2), a bare word is
    a flag (global_oom)."""
    out: Dict[str, Any] = {}
    last = None
    for token in text.split(","):
        token = token.strip()
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
            last = key
        elif last is not None and _RANGE.fullmatch(token):
            out[last] = "%s,%s" % (out[last], token)
        elif token:
            out[token] = True
            last = None
    return out


def _int(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class OomReportParser:
    """Feed kernel log lines one at a time; finished reports come out.

    A report ends at the next report's header, at `finish()` (end of the text, or the live
    reader giving up waiting), or - for the live reader - once its victim line is read and the
    log has nothing more for now (`take_finished`)."""

    def __init__(self, page_kb: Optional[int] = None):
        self.current: Optional[OomReport] = None
        self.page_kb = page_kb

    def _open(self, ts: Optional[float]) -> OomReport:
        report = OomReport(kernel_time_s=ts, page_kb=self.page_kb)
        self.current = report
        return report

    def feed(self, line: str, ts: Optional[float] = None) -> List[OomReport]:
        """Returns the reports this line finished (usually none)."""
        done: List[OomReport] = []
        text = line.strip()
        if not text:
            return done
        r = self.current

        m = _HEADER.match(text)
        if m:
            if r is not None:
                done.append(r)
            r = self._open(ts)
            r.seen.add("header")
            r.invoker = m.group("comm").strip() or None
            rest = m.group("rest")
            g = _GFP.search(rest)
            r.gfp_mask = g.group("gfp") if g else None
            r.order = _int(_ORDER.search(rest).group(1)) if _ORDER.search(rest) else None
            r.invoker_oom_score_adj = _int(_ADJ.search(rest).group(1)) if _ADJ.search(rest) else None
            nm = _NODEMASK.search(rest)
            if nm:
                r.nodemask = nm.group(1)
            return done

        if r is None:
            # Only the tail of a report can start one: its beginning was lost.
            if not ("oom" in text or "Kill" in text or "Task in " in text or "Out of memory" in text
                    or "memory" in text):
                return done
            if not (text.startswith("oom-kill:") or _KILLED.search(text) or _KILL_SCORE.search(text)
                    or _TASK_IN.search(text) or _MEMCG_USAGE.match(text) or _OOM_GROUP.search(text)
                    or "Out of memory and no killable processes" in text):
                return done
            r = self._open(ts)
        elif r.finished and not _REAPED.search(text):
            # After the victim only reaper lines belong, and more victims when the cgroup has
            # memory.oom.group set; anything else of a report starts the next one (whose
            # header was lost: rate-limited or overwritten).
            killed = _KILLED.search(text)
            more_victims = bool(_OOM_GROUP.search(text)) or (killed is not None and (
                r.oom_group is not None  # the rest of the group
                or any(v.pid == int(killed.group(1)) and v.anon_rss_kb is None for v in r.victims)))  # < 4.19
            if not more_victims and (text.startswith("oom-kill:") or _TASK_IN.search(text)
                                     or _MEMCG_USAGE.match(text) or killed or _KILL_SCORE.search(text)
                                     or "Out of memory and no killable" in text):
                done.append(r)
                self.current = None
                return done + self.feed(line, ts)
            if not more_victims:
                return done

        if r.kernel_time_s is None and ts is not None:
            r.kernel_time_s = ts

        if text.startswith("CPU: ") and r.invoker_pid is None:
            m = _CPU.match(text)
            if m:
                r.invoker_pid = int(m.group(1))
                if r.invoker is None:
                    r.invoker = m.group(2)
            return done
        if text.startswith("Mem-Info"):
            r.seen.add("meminfo")
            return done
        if "slab_unreclaimable:" in text:
            m = _SLAB_UNRECL.search(text)
            if m:
                r.slab_unreclaimable_kb = int(m.group(1)) * (r.page_kb or 4)
            return done
        if text.startswith("Unreclaimable slab info"):
            r.seen.add("slab")
            return done
        if text.startswith("oom-kill:"):
            r.seen.add("constraint")
            kv = _kv_pairs(text[len("oom-kill:"):])
            r.constraint = kv.get("constraint") or r.constraint
            if kv.get("nodemask"):
                r.nodemask = kv["nodemask"]
            r.cpuset = kv.get("cpuset", r.cpuset)
            r.mems_allowed = kv.get("mems_allowed", r.mems_allowed)
            if kv.get("global_oom") is True:
                r.global_oom = True
            r.oom_memcg = kv.get("oom_memcg", r.oom_memcg)
            r.task_memcg = kv.get("task_memcg", r.task_memcg)
            return done
        m = _KILLED.search(text)
        if m:
            r.seen.add("victim")
            if "Memory cgroup out of memory" in text:
                r.memcg_victim = True
            elif "Out of memory" in text:
                r.memcg_victim = False
            pid = int(m.group(1))
            victim = next((v for v in r.victims if v.pid == pid and v.anon_rss_kb is None), None)
            if victim is None:
                victim = Victim(pid=pid, comm=m.group(2))
                r.victims.append(victim)
            victim.comm = m.group(2)
            victim.total_vm_kb = int(m.group(3))
            victim.anon_rss_kb = int(m.group(4))
            victim.file_rss_kb = int(m.group(5))
            victim.shmem_rss_kb = _int(m.group(6))
            victim.uid = _int(m.group(7))
            victim.pgtables_kb = _int(m.group(8))
            victim.oom_score_adj = _int(m.group(9))
            return done
        m = _KILL_SCORE.search(text)
        if m:  # < 4.19: "Kill process N (x) score S or sacrifice child", then "Killed process"
            r.seen.add("victim")
            pid = int(m.group(1))
            victim = next((v for v in r.victims if v.pid == pid), None)
            if victim is None:
                victim = Victim(pid=pid, comm=m.group(2))
                r.victims.append(victim)
            victim.score = int(m.group(3))
            return done
        m = _REAPED.search(text)
        if m:
            pid = int(m.group(1))
            for v in r.victims:
                if v.pid == pid:
                    v.reaped = True
            return done
        if "Out of memory and no killable processes" in text:
            r.no_killable = True
            return done
        m = _MEMCG_USAGE.match(text)
        if m:
            r.seen.add("memcg")
            kind, usage, limit, failcnt = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
            if kind == "memory":
                r.memcg_usage_kb, r.memcg_limit_kb, r.memcg_failcnt = usage, limit, failcnt
                if r.constraint is None:
                    r.constraint = "CONSTRAINT_MEMCG"
            elif kind == "swap":
                r.memcg_swap_usage_kb, r.memcg_swap_limit_kb = usage, limit
            else:
                r.memcg_memsw_usage_kb, r.memcg_memsw_limit_kb = usage, limit
            return done
        m = _TASK_IN.search(text)
        if m:
            r.seen.add("constraint")
            r.task_memcg, r.oom_memcg = m.group(1), m.group(2)
            r.constraint = r.constraint or "CONSTRAINT_MEMCG"
            return done
        m = _OOM_GROUP.search(text)
        if m:
            r.oom_group = m.group(1)
            return done
        if " free:" in text:
            m = _ZONE.match(text)
            if m and "kB" in text:
                z = r.zone(_int(m.group(1)), m.group(2))
                z.free_kb = int(m.group(3))
                for mark, rx in _MARK.items():
                    mm = rx.search(text)
                    if mm:
                        setattr(z, "%s_kb" % mark, int(mm.group(1)))
                return done
        if "*" in text and text.endswith("kB"):
            m = _BUDDY.match(text)
            if m:
                node = m.group(1) if m.group(1) is not None else m.group(2)
                z = r.zone(_int(node), m.group(3))
                blocks = _BLOCK.findall(m.group(4))
                z.buddy = tuple(int(count) for count, _size in blocks)
                if blocks:
                    z.buddy_block_kb = int(blocks[0][1])
                    if r.page_kb is None:
                        r.page_kb = z.buddy_block_kb
                return done
        m = _SWAP.match(text)
        if m:
            if m.group(1) == "Free":
                r.swap_free_kb = int(m.group(2))
            else:
                r.swap_total_kb = int(m.group(2))
            return done
        m = _RAM.match(text)
        if m:
            r.ram_pages = int(m.group(1))
            return done
        if text.startswith("[  pid  ]") or text.startswith("[ pid ]"):
            r.seen.add("tasks")
            r._task_columns = text.split("]", 1)[1].split()
            return done
        if text.startswith("[") and r._task_columns:
            self._task_row(r, text)
            return done
        if "slab" in r.seen and text.endswith("KB"):
            m = _SLAB_ROW.match(text)
            if m and len(r.top_slabs) < TOP_TASKS:
                r.top_slabs.append({"name": m.group(1), "used_kb": int(m.group(2)), "total_kb": int(m.group(3))})
            return done
        return done

    @staticmethod
    def _task_row(r: OomReport, text: str) -> None:
        m = _TASK_ROW.match(text)
        if not m:
            return
        cols = r._task_columns or []
        parts = m.group(2).split(None, len(cols) - 1)
        if len(parts) != len(cols):
            return  # a torn row
        row = dict(zip(cols, parts))
        rss = _int(row.get("rss"))
        if rss is None:
            return
        page_kb = r.page_kb or 4
        task = {"pid": int(m.group(1)), "name": row.get("name", "?"), "rss_kb": rss * page_kb}
        adj = _int(row.get("oom_score_adj"))
        if adj is not None:
            task["oom_score_adj"] = adj
        top = r.top_tasks
        if len(top) < TOP_TASKS or task["rss_kb"] > top[-1]["rss_kb"]:
            top.append(task)
            top.sort(key=lambda t: -t["rss_kb"])
            del top[TOP_TASKS:]

    def take_finished(self) -> List[OomReport]:
        """The open report, if the kernel has finished it (a victim named)."""
        r = self.current
        if r is not None and r.finished:
            self.current = None
            return [r]
        return []

    def finish(self) -> List[OomReport]:
        """The open report, finished or not (end of text, or the wait for its end is over)."""
        r = self.current
        self.current = None
        return [r] if r is not None else []


def parse_log_lines(lines: Iterable[str]) -> List[OomReport]:
    """Every OOM report in a saved kernel log (dmesg, journalctl -k, syslog)."""
    parser = OomReportParser()
    reports: List[OomReport] = []
    for line in lines:
        message, ts = strip_prefix(line)
        if message is None:
            continue
        reports.extend(parser.feed(message, ts))
    reports.extend(parser.finish())
    return reports


def parse_log_text(text: str) -> List[OomReport]:
    return parse_log_lines(text.splitlines())
