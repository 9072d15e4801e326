"""Why did the kernel OOM killer fire? Classify a parsed report and advise.

Classes (the order they are tested in):
- ``cgroup_limit``: a memory cgroup reached its own limit (constraint CONSTRAINT_MEMCG, the
  victim's cgroup is the one whose limit was hit);
- ``parent_cgroup_limit``: the limit hit belongs to an ancestor of the victim's cgroup, whose
  children share it;
- ``numa_node``: the allocation was confined to some NUMA nodes (cpuset.mems, a memory policy)
  and those were short while others had room;
- ``fragmentation``: a higher-order allocation (order > 0) failed while free memory was above
  the low watermark, because no free block of that order was left;
- ``host_memory``: the whole host was short of memory;
- ``unknown``: too little of the report reached the log (rate-limited or overwritten).

The daemon's watcher (guardian.core.parts.oomwatch) classifies each report it reads, importing
this module at the first one; `guardian diagnose` (guardian.commands.diagnose) classifies the
reports of a saved log or of what the kernel log still holds.
"""
from __future__ import annotations

import os

from guardian.analysis.oomreport import OomReport
from guardian.record import field, mutable_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

CAUSES = {
    "cgroup_limit": "a memory cgroup at its limit",
    "parent_cgroup_limit": "a parent memory cgroup at its limit",
    "numa_node": "the allowed NUMA node(s) short of memory",
    "fragmentation": "fragmentation: no free block of the size asked for",
    "host_memory": "the whole host short of memory",
    "unknown": "not enough of the report in the log to tell",
}

LOG_ADVICE = ("keep more of the kernel log: a larger ring buffer (log_buf_len=1M on the kernel command "
              "line) and a persistent journal or syslog file, so the next report is whole")


def kib(kb: Optional[float]) -> str:
    """A size given in KiB, for people."""
    if kb is None:
        return "?"
    if abs(kb) >= 1024 * 1024:
        return "%.1f GiB" % (kb / 1024.0 / 1024.0)
    if abs(kb) >= 1024:
        return "%.1f MiB" % (kb / 1024.0)
    return "%d KiB" % kb


@mutable_record
class Diagnosis:
    cause: str
    summary: str
    advice: List[str]
    numbers: Dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return CAUSES[self.cause]


def _is_ancestor(parent: str, child: str) -> bool:
    parent = parent.rstrip("/")
    return child.startswith(parent + "/") and child != parent


def _victim_text(report: OomReport) -> str:
    if not report.victims:
        return "no victim" if report.no_killable else "the victim (not in the log)"
    v = report.victims[0]
    text = "%s[%d] (anon-rss %s, file-rss %s, shmem-rss %s)" % (
        v.comm, v.pid, kib(v.anon_rss_kb), kib(v.file_rss_kb), kib(v.shmem_rss_kb))
    if len(report.victims) > 1:
        text += " and %d more" % (len(report.victims) - 1)
    return text


def _usable_zones(report: OomReport):
    """Zones with watermarks; the small legacy DMA zone is left out when others exist (the
    lowmem reserve keeps ordinary allocations out of it)."""
    zones = [z for z in report.zones if z.free_kb is not None and z.low_kb is not None]
    others = [z for z in zones if z.zone != "DMA"]
    return others if others else zones


def _nodes(report: OomReport) -> Dict[int, Dict[str, int]]:
    nodes: Dict[int, Dict[str, int]] = {}
    for z in report.zones:
        if z.free_kb is None or z.low_kb is None:
            continue
        n = nodes.setdefault(z.node if z.node is not None else 0,
                             {"free_kb": 0, "min_kb": 0, "low_kb": 0, "high_kb": 0})
        n["free_kb"] += z.free_kb
        n["min_kb"] += z.min_kb or 0
        n["low_kb"] += z.low_kb
        n["high_kb"] += z.high_kb or z.low_kb
    return nodes


def classify(report: OomReport, nodes_now: Optional[Dict[int, Dict[str, int]]] = None) -> Diagnosis:
    """The cause of one OOM kill, the advice that fits, and the numbers that show it.
    `nodes_now`: per-node free/low right now (live only), to show the room other nodes have."""
    r = report
    victim = _victim_text(r)
    numbers: Dict[str, Any] = {}
    memcg = (r.constraint == "CONSTRAINT_MEMCG" or r.oom_memcg is not None or r.memcg_limit_kb is not None
             or r.memcg_victim is True)
    if memcg:
        return _classify_memcg(r, victim, numbers)

    nodes = _nodes(r)
    confined = r.constraint in ("CONSTRAINT_CPUSET", "CONSTRAINT_MEMORY_POLICY")
    short = sorted(n for n, v in nodes.items() if v["free_kb"] <= v["low_kb"])
    roomy = sorted(n for n, v in nodes.items() if v["free_kb"] > 2 * v["high_kb"])
    if confined or (len(nodes) >= 2 and short and roomy):
        return _classify_numa(r, victim, nodes, short, roomy, nodes_now)

    zones = _usable_zones(r)
    order = r.order or 0
    free = sum(z.free_kb for z in zones)
    low = sum(z.low_kb for z in zones)
    minimum = sum(z.min_kb or 0 for z in zones)
    if order > 0 and zones:
        above = [z for z in zones if z.free_kb > z.low_kb]
        with_buddy = [z for z in above if z.buddy is not None]
        blocks = sum(sum(z.buddy[order:]) for z in with_buddy)
        if above and blocks == 0:
            page_kb = r.page_kb or 4
            numbers.update(order=order, request_kb=page_kb << order, free_kb=free, low_kb=low,
                           free_blocks_at_order_or_above=blocks if with_buddy else None,
                           largest_free_order=_largest_order(zones))
            evidence = ("no free block of order >= %d in %s" % (order, ", ".join(_zone_name(z) for z in with_buddy))
                        if with_buddy else "the buddy lists are not in the log, so this is likely, not shown")
            summary = ("fragmentation: an order-%d allocation (%s contiguous, gfp_mask %s, by %s) failed with %s free, "
                       "above the low watermark %s; %s. The kernel killed %s" % (
                           order, kib(page_kb << order), r.gfp_mask or "?", r.invoker or "?", kib(free), kib(low),
                           evidence, victim))
            advice = [
                "compact memory off-peak: 'echo 1 > /proc/sys/vm/compact_memory' (the guardian's reclaim rung "
                "compacts when blocks of order >= 4 are scarce); check the kernel has CONFIG_COMPACTION",
                "keep more memory free for the buddy allocator: raise vm.min_free_kbytes (now %s at the "
                "min watermark) and lower vm.extfrag_threshold so the kernel compacts sooner" % kib(minimum),
                "if %s needs contiguous buffers (a driver, DMA), allocate them once at boot or from CMA "
                "instead of at run time" % (r.invoker or "the invoker"),
            ]
            if _thp_hint(r):
                advice.append("transparent hugepages compete for the same large blocks: consider THP 'madvise'")
            return Diagnosis("fragmentation", summary, advice, numbers)

    global_evidence = bool(zones) or r.global_oom or r.constraint == "CONSTRAINT_NONE" or r.memcg_victim is False
    if not global_evidence or (not zones and not r.top_tasks and "header" not in r.seen):
        summary = "the kernel OOM killer killed %s; %s" % (
            victim, "the rest of its report was not in the log (rate-limited or overwritten)")
        numbers.update(missing=r.missing())
        advice = [LOG_ADVICE]
        if r.memcg_victim is False:
            advice.insert(0, "it was a system-wide OOM (not a cgroup limit); see 'guardian diagnose' for this "
                             "system's red flags")
        return Diagnosis("unknown", summary, advice, numbers)

    numbers.update(free_kb=free, min_kb=minimum, low_kb=low, order=order)
    if r.swap_total_kb is not None:
        numbers.update(swap_total_kb=r.swap_total_kb, swap_free_kb=r.swap_free_kb)
    ram_kb = r.ram_pages * (r.page_kb or 4) if r.ram_pages else None
    if ram_kb:
        numbers["ram_kb"] = ram_kb
    parts = ["the whole host was short of memory: %s free against a min watermark of %s" % (kib(free), kib(minimum))
             if zones else "the whole host was short of memory"]
    if r.swap_total_kb == 0:
        parts.append("no swap")
    elif r.swap_total_kb:
        parts.append("swap %s free of %s" % (kib(r.swap_free_kb), kib(r.swap_total_kb)))
    slab_heavy = bool(r.slab_unreclaimable_kb and ram_kb and r.slab_unreclaimable_kb > ram_kb // 10)
    if slab_heavy:
        parts.append("the kernel's unreclaimable slab held %s (%.0f %% of RAM)" % (
            kib(r.slab_unreclaimable_kb), 100.0 * r.slab_unreclaimable_kb / ram_kb))
    summary = "; ".join(parts) + ". The kernel killed %s" % victim
    advice = []
    top = r.top_tasks[0] if r.top_tasks else None
    if top is not None:
        numbers["largest_task"] = top
        share = " (%.0f %% of RAM)" % (100.0 * top["rss_kb"] / ram_kb) if ram_kb else ""
        advice.append("the largest task was %s[%d] with %s resident%s: if it grows over time it leaks (the "
                      "guardian's leak detection follows each process's growth); otherwise the workload does not "
                      "fit this board" % (top["name"], top["pid"], kib(top["rss_kb"]), share))
    elif r.victims:
        advice.append("find out whether %s grows over time (a leak) or simply needs more than the board has"
                      % r.victims[0].comm)
    if slab_heavy:
        numbers["slab_unreclaimable_kb"] = r.slab_unreclaimable_kb
        names = ", ".join(s["name"] for s in r.top_slabs[:3])
        advice.insert(0, "the kernel itself held %s of unreclaimable slab (%.0f %% of RAM%s): a kernel or driver "
                         "leak, not a process; watch /proc/slabinfo" % (
                             kib(r.slab_unreclaimable_kb), 100.0 * r.slab_unreclaimable_kb / ram_kb,
                             ": " + names if names else ""))
    if not r.swap_total_kb:
        advice.append("without swap, anonymous memory cannot be reclaimed at all: a small zram swap device "
                      "(compressed, in RAM) often buys a third more room")
    advice.append("let the guardian act before the kernel: list expendable services as [[low_priority]] in the "
                  "board config and check its kill line sits above the kernel's min watermark")
    return Diagnosis("host_memory", summary, advice, numbers)


def _zone_name(z) -> str:
    return ("node %d %s" % (z.node, z.zone)) if z.node is not None else z.zone


def _largest_order(zones) -> Optional[int]:
    best = None
    for z in zones:
        if z.buddy:
            for order, count in enumerate(z.buddy):
                if count and (best is None or order > best):
                    best = order
    return best


def _thp_hint(r: OomReport) -> bool:
    return bool(r.gfp_mask and "__GFP_COMP" in r.gfp_mask and (r.order or 0) >= 9)


def _classify_memcg(r: OomReport, victim: str, numbers: Dict[str, Any]) -> Diagnosis:
    limited, task = r.oom_memcg, r.task_memcg
    for key in ("oom_memcg", "task_memcg", "memcg_usage_kb", "memcg_limit_kb", "memcg_failcnt"):
        if getattr(r, key) is not None:
            numbers[key] = getattr(r, key)
    at = ""
    if r.memcg_usage_kb is not None and r.memcg_limit_kb:
        numbers["usage_percent"] = round(100.0 * r.memcg_usage_kb / r.memcg_limit_kb, 1)
        at = " (usage %s of limit %s, failcnt %s)" % (kib(r.memcg_usage_kb), kib(r.memcg_limit_kb),
                                                      r.memcg_failcnt if r.memcg_failcnt is not None else "?")
    swap = ""
    if r.memcg_swap_limit_kb and r.memcg_swap_limit_kb < 1 << 40:  # 0: no swap allowed; huge: no limit
        swap = "; its swap %s of %s" % (kib(r.memcg_swap_usage_kb), kib(r.memcg_swap_limit_kb))
    elif r.memcg_memsw_limit_kb and r.memcg_memsw_limit_kb < 1 << 40:
        swap = "; memory+swap %s of %s" % (kib(r.memcg_memsw_usage_kb), kib(r.memcg_memsw_limit_kb))
    knob = "memory.max (cgroup v2) or memory.limit_in_bytes (v1)"
    if limited and task and _is_ancestor(limited, task):
        summary = ("parent cgroup %s hit its limit%s%s; the victim %s lives in its child %s, which shares that "
                   "limit with its siblings" % (limited, at, swap, victim, task))
        advice = [
            "raise %s of %s if all its children together need %s" % (knob, limited, kib(r.memcg_usage_kb)),
            "or give each child of %s its own memory.max / memory.high, so one child cannot starve the "
            "others; compare memory.current of the children to find the one that grew" % limited,
        ]
        return Diagnosis("parent_cgroup_limit", summary, advice, numbers)
    where = limited or task
    if where:
        summary = "cgroup %s hit its limit%s%s; the kernel killed %s" % (where, at, swap, victim)
    else:
        summary = ("a memory cgroup hit its limit (which one was not in the log); the kernel killed %s" % victim)
    need = ("if %s is what %s needs, raise its %s" % (kib(r.memcg_usage_kb), where or "the cgroup", knob)
            if r.memcg_usage_kb is not None else "if the service needs more, raise the cgroup's %s" % knob)
    advice = [
        need,
        "if it should not need that much, find the leak: %s when killed; follow its RSS over time "
        "(the guardian's leak detection does)" % victim,
        "set memory.high a little below memory.max (cgroup v2) so the cgroup is throttled and reclaimed "
        "before the OOM killer fires, or run the guardian with --scope cgroup:%s" % (where or "PATH"),
    ]
    if where is None:
        advice.append(LOG_ADVICE)
    return Diagnosis("cgroup_limit", summary, advice, numbers)


def _classify_numa(r: OomReport, victim: str, nodes, short, roomy, nodes_now) -> Diagnosis:
    numbers: Dict[str, Any] = {"constraint": r.constraint, "mems_allowed": r.mems_allowed, "cpuset": r.cpuset,
                               "nodes": {str(n): v for n, v in sorted(nodes.items())}}
    desc = ", ".join("node %d %s free (low %s)" % (n, kib(v["free_kb"]), kib(v["low_kb"]))
                     for n, v in sorted(nodes.items()))
    allowed = r.mems_allowed
    if r.constraint == "CONSTRAINT_MEMORY_POLICY" and r.nodemask and r.nodemask != "(null)":
        allowed = r.nodemask
    elsewhere = ""
    if roomy:
        elsewhere = "; node(s) %s had plenty" % ",".join(str(n) for n in roomy)
    elif nodes_now:
        others = {n: v for n, v in nodes_now.items() if n not in nodes}
        if others:
            numbers["other_nodes_now"] = {str(n): v for n, v in sorted(others.items())}
            elsewhere = "; other nodes have %s free now" % ", ".join(
                "node %d %s" % (n, kib(v["free_kb"])) for n, v in sorted(others.items()))
    how = {"CONSTRAINT_CPUSET": "its cpuset", "CONSTRAINT_MEMORY_POLICY": "a memory policy (mbind/numactl)"}.get(
        r.constraint or "", "the allocation's node mask")
    summary = ("%s confined the allocation to node(s) %s, which ran short%s%s. The kernel killed %s" % (
        how, allowed or "?", " (" + desc + ")" if desc else "", elsewhere, victim))
    cpuset_advice = "widen cpuset.mems of cpuset %s (now %s) or move the workload to a node with room" % (
        r.cpuset or "?", r.mems_allowed or "?")
    policy_advice = ("the memory policy binds it to node(s) %s: prefer 'numactl --preferred' or '--interleave' to "
                     "'--membind' so allocations can fall back to other nodes" % (allowed or "?"))
    advice = [cpuset_advice, policy_advice]
    if r.constraint == "CONSTRAINT_MEMORY_POLICY":
        advice.reverse()
    return Diagnosis("numa_node", summary, advice, numbers)


# --------------------------------------------------------------------------------------------
# Live helpers


def nodes_from_zoneinfo(text: str, page_kb: int = 4) -> Dict[int, Dict[str, int]]:
    """Per-node free/min/low/high (kB) from /proc/zoneinfo."""
    nodes: Dict[int, Dict[str, int]] = {}
    node: Optional[int] = None
    for line in text.splitlines():
        if line.startswith("Node "):
            try:
                node = int(line.split()[1].rstrip(","))
            except (IndexError, ValueError):
                node = None
            if node is not None:
                nodes.setdefault(node, {"free_kb": 0, "min_kb": 0, "low_kb": 0, "high_kb": 0})
            continue
        if node is None:
            continue
        parts = line.split()
        key = None
        if len(parts) == 3 and parts[0] == "pages" and parts[1] == "free":
            key, value = "free_kb", parts[2]
        elif len(parts) == 2 and parts[0] in ("min", "low", "high"):
            key, value = parts[0] + "_kb", parts[1]
        if key is not None:
            try:
                nodes[node][key] += int(value) * page_kb
            except ValueError:
                pass
    return nodes


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None


def report_fields(report: OomReport, proc_root: str = "/proc", live: bool = False) -> Dict[str, Any]:
    """A report with its diagnosis, as event fields: summary, cause, advice, evidence, and
    what the kernel said."""
    nodes_now = None
    if live and report.constraint in ("CONSTRAINT_CPUSET", "CONSTRAINT_MEMORY_POLICY"):
        text = _read(os.path.join(proc_root, "zoneinfo"))
        if text:
            nodes_now = nodes_from_zoneinfo(text, report.page_kb or 4)
    d = classify(report, nodes_now)
    fields = {"summary": d.summary, "cause": d.cause, "advice": d.advice, "evidence": d.numbers}
    fields.update(report.as_fields())
    fields["kills"] = len(report.victims)
    return fields
