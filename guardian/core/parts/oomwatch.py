"""The kernel log: read /dev/kmsg from where we left off, and parse OOM killer reports.

Two uses:
- live (KernelOomWatcher): the daemon hands it the vmstat oom_kill count every tick; when the
  count moves, the records logged since the last read are parsed and each OOM report comes back
  as a dict of fields for a ``kernel_oom`` event (parsed and classified by guardian.analysis.forensics);
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
import errno
import logging
import os
import re
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from guardian.kernel import close_quietly

log = logging.getLogger("guardian")

KMSG_PATH = "/dev/kmsg"
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
                     "memcg_swap_limit_kb", "memcg_memsw_usage_kb", "memcg_memsw_limit_kb", "oom_group", "swap_free_kb", "swap_total_kb",
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


# --------------------------------------------------------------------------------------------
# /dev/kmsg

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


class KmsgRecord:
    __slots__ = ("level", "seq", "ts", "flags", "message")

    def __init__(self, level: int, seq: int, ts: float, flags: str, message: str):
        self.level = level  # 0 (emerg) .. 7 (debug)
        self.seq = seq
        self.ts = ts  # seconds since boot
        self.flags = flags  # "-" whole line, "c" starts a continued line, "+" continues one (old kernels)
        self.message = message


def parse_record(data: bytes) -> Optional[KmsgRecord]:
    """One read() of /dev/kmsg: "prio,seq,usec,flags[,..];message\\n[ KEY=value\\n...]".
    None for a record of another shape."""
    head, sep, rest = data.partition(b";")
    if not sep:
        return None
    parts = head.split(b",")
    if len(parts) < 3:
        return None
    try:
        prio, seq, usec = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    flags = parts[3].decode("ascii", "replace") if len(parts) > 3 else "-"
    message = rest.split(b"\n", 1)[0]  # continuation lines " KEY=value" are device metadata
    if b"\\x" in message:
        message = _ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), message)
    return KmsgRecord(prio & 7, seq, usec / 1e6, flags, message.decode("utf-8", "replace"))


class KmsgReader:
    """/dev/kmsg opened O_RDONLY|O_NONBLOCK; each read() returns one record. `from_end`
    starts after the records already there (SEEK_END), else at the oldest still held."""

    _read = staticmethod(os.read)  # tests put a fake ring buffer here

    def __init__(self, path: str = KMSG_PATH, from_end: bool = True):
        self.path = path
        self.fd: Optional[int] = None
        self.error: Optional[str] = None
        self.lost = 0  # times records were overwritten before we read them (EPIPE)
        self._partial: Optional[KmsgRecord] = None  # a "c" record awaiting its "+" pieces
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            self.error = "%s: %s" % (path, exc.strerror or exc)
            if exc.errno in (errno.EPERM, errno.EACCES):
                self.error += " (kernel.dmesg_restrict=1 needs CAP_SYSLOG)"
            return
        if from_end:
            try:
                os.lseek(self.fd, 0, os.SEEK_END)
            except OSError as exc:  # a plain file (tests) or an odd kernel: read it all
                log.debug("cannot seek %s to its end: %s", path, exc)

    def fileno(self) -> Optional[int]:
        return self.fd

    def records(self, limit: int = 20000) -> Iterator[KmsgRecord]:
        """The records logged since the last call (at most `limit`; the rest next time)."""
        if self.fd is None:
            return
        bufsize = 8192
        n = 0
        while n < limit:
            try:
                data = self._read(self.fd, bufsize)
            except BlockingIOError:
                break
            except BrokenPipeError:  # EPIPE: the ring buffer overwrote records we had not read
                self.lost += 1
                continue
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINVAL and bufsize < 65536:
                    bufsize = 65536  # a record larger than the buffer
                    continue
                self.error = "%s: %s" % (self.path, exc.strerror or exc)
                log.warning("reading %s failed: %s; kernel OOM reports without details from now on",
                            self.path, exc.strerror or exc)
                self.close()
                break
            if not data:
                break  # a plain file at its end
            n += 1
            record = parse_record(data)
            if record is None:
                continue
            # Kernels before 4.9 wrote pr_cont pieces as records of their own.
            if "+" in record.flags and self._partial is not None:
                p = self._partial
                self._partial = KmsgRecord(p.level, p.seq, p.ts, p.flags, p.message + record.message)
                continue
            if self._partial is not None:
                yield self._partial
                self._partial = None
            if "c" in record.flags:
                self._partial = record
                continue
            yield record
        if self._partial is not None and n < limit:
            yield self._partial
            self._partial = None

    def close(self) -> None:
        self.fd = close_quietly(self.fd)


def read_kmsg_lines(path: str = KMSG_PATH) -> Tuple[List[Tuple[str, float]], Optional[str], int]:
    """Everything the kernel log still holds, for `guardian diagnose` without --log:
    ([(message, seconds since boot)], error, records lost)."""
    reader = KmsgReader(path, from_end=False)
    if reader.fd is None:
        return [], reader.error, 0
    try:
        lines = [(line, r.ts) for r in reader.records(limit=1 << 22) for line in r.message.split("\n")]
    finally:
        reader.close()
    return lines, None, reader.lost


# --------------------------------------------------------------------------------------------
# The daemon's watcher


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


class KernelOomWatcher:
    """Kernel OOM kills, with the kernel's own report, parsed and classified.

    `check(count)` is called every tick with the vmstat oom_kill count (or the cgroup's); it
    reads /dev/kmsg only when the count moved, a report is half read, or there is no count to go
    by. A report is returned once its victim line is in (or after `wait_s` without it, marked
    truncated); kills the log could not explain (no access to /dev/kmsg, records overwritten)
    still come back, as reports from the count alone. Each report is a dict for
    ``tell.event("kernel_oom", report["summary"], **report)``.

    `fileno()` is /dev/kmsg for the poll set (None when it cannot be read). Polling it wakes
    the guardian for every kernel message; the count read each tick finds every kill anyway,
    so poll it only if reports must arrive between ticks. Whoever polls it must call
    `on_readable()` when it is readable, which drains it."""

    def __init__(self, proc_root: str = "/proc", kmsg_path: str = KMSG_PATH, sys_root: str = "/sys",
                 wait_s: float = 1.0, clock=time.monotonic, scope_dir: Optional[str] = None):
        self.proc_root = proc_root
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
        self.parser = OomReportParser(page_kb=page_kb)
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
    def available(self) -> bool:
        return self.reader.fd is not None

    def fileno(self) -> Optional[int]:
        return self.reader.fileno()

    def on_readable(self) -> List[Dict[str, Any]]:
        return self.check(None, drain=True)

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
                                           or self.parser.current is not None):
            finished = self._drain(now)
        if self._deadline is not None and now >= self._deadline:
            finished.extend(self.parser.finish())
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
        if not self._unexplained and self.parser.current is None:
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
                if self.parser.current is not None:
                    self.parser.current.records_lost += self.reader.lost - self._lost_seen
                self._lost_seen = self.reader.lost
            # One printk with embedded newlines is one record (kmsg shows them as \x0a).
            for line in record.message.split("\n"):
                finished.extend(self.parser.feed(line, record.ts))
        if self.reader.lost != self._lost_seen:
            if self.parser.current is not None:
                self.parser.current.records_lost += self.reader.lost - self._lost_seen
            self._lost_seen = self.reader.lost
        finished.extend(self.parser.take_finished())
        if self.parser.current is not None and self._deadline is None:
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
        why = self.reader.error or "its report was not found in the kernel log (overwritten, or logged at a level not kept)"
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
