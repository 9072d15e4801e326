"""Kernel memory settings of a board's [sysctl] table: validated at load, applied at start,
reported by `guardian check`.

Only memory-related keys are accepted (the ``vm.*`` knobs and the panic settings that go with
``vm.panic_on_oom``): a typo must be an error, not a setting silently written nowhere.
"""
from __future__ import annotations

import errno
import os

from guardian.kernel.meminfo import read_meminfo_kib_or_empty
from guardian.kernel.sysctl import read_sysctl
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

# One line each, for `guardian check` and the docs.
EXPLAIN: Dict[str, str] = {
    "vm.overcommit_memory": (
        "0 = heuristic overcommit (refuses only absurd requests), 1 = never refuse, "
        "2 = strict: allocations fail once Committed_AS would pass CommitLimit "
        "(swap + overcommit_ratio% of RAM, or overcommit_kbytes)"
    ),
    "vm.overcommit_ratio": "percent of RAM counted in CommitLimit when overcommit_memory = 2",
    "vm.overcommit_kbytes": ("CommitLimit in KiB (plus swap) when overcommit_memory = 2; replaces overcommit_ratio "
                             "when non-zero"),
    "vm.panic_on_oom": (
        "0 = the OOM killer kills a process, 1 = the kernel panics on a system-wide OOM "
        "(reboots if kernel.panic > 0), 2 = panics on any OOM, cgroup ones included"
    ),
    "vm.min_free_kbytes": "memory the kernel keeps free for atomic allocations; sets the min/low/high watermarks",
    "vm.watermark_scale_factor": (
        "gap between the watermarks in 1/10000 of RAM: higher wakes kswapd earlier so "
        "allocations stall less in direct reclaim (default 10)"
    ),
    "vm.watermark_boost_factor": "temporary watermark boost after fragmentation events, in 1/10000 (0 disables)",
    "vm.oom_kill_allocating_task": (
        "1 = the OOM killer kills whichever task allocated (ignores oom_score_adj), "
        "0 = it picks by oom_score (respects the adj given to critical daemons)"
    ),
    "vm.oom_dump_tasks": "1 = the OOM killer logs every task's memory when it fires",
    "vm.swappiness": ("0..200: how eagerly anonymous memory goes to swap/zram rather than dropping page cache; "
                      "no effect without swap"),
    "vm.admin_reserve_kbytes": "memory kept for root when overcommit_memory = 2, so an admin can still log in",
    "vm.user_reserve_kbytes": "memory kept back from a single user process when overcommit_memory = 2",
    "vm.vfs_cache_pressure": "how eagerly dentry/inode caches are reclaimed relative to page cache (default 100)",
    "vm.dirty_ratio": "percent of memory that may be dirty before writers are throttled",
    "vm.dirty_background_ratio": "percent of memory dirty before background writeback starts",
    "vm.dirty_bytes": "dirty memory in bytes before writers are throttled (replaces dirty_ratio when non-zero)",
    "vm.dirty_background_bytes": "dirty bytes before background writeback starts (replaces dirty_background_ratio)",
    "vm.dirty_expire_centisecs": "age after which dirty data is written back",
    "vm.dirty_writeback_centisecs": "how often the flusher threads wake",
    "vm.compaction_proactiveness": "0..100: background compaction effort (0 disables proactive compaction)",
    "vm.extfrag_threshold": "fragmentation index above which the kernel compacts rather than reclaims",
    "vm.compact_unevictable_allowed": "1 = compaction may move mlocked pages",
    "vm.zone_reclaim_mode": "NUMA zone reclaim (0 on anything without NUMA)",
    "vm.page-cluster": "log2 of pages read from swap at once (0 suits zram)",
    "vm.max_map_count": "maximum memory mappings per process",
    "vm.lowmem_reserve_ratio": "how much of the lower zones is kept back from allocations that could use higher ones",
    "vm.min_slab_ratio": "NUMA: percent of a zone's pages in reclaimable slab before zone reclaim frees slab",
    "vm.min_unmapped_ratio": "NUMA: percent of a zone's pages unmapped before zone reclaim acts",
    "vm.stat_interval": "seconds between VM statistics updates",
    "vm.laptop_mode": "delay writeback to let the disk spin down (0 off)",
    "vm.nr_hugepages": "persistent huge pages reserved (taken from RAM at once)",
    "vm.nr_overcommit_hugepages": "huge pages that may be allocated beyond nr_hugepages",
    "vm.mmap_min_addr": "lowest address a process may mmap",
    "vm.memfd_noexec": "memfd_create exec policy",
    "vm.unprivileged_userfaultfd": "1 = unprivileged users may use userfaultfd",
    "vm.highmem_is_dirtyable": "count highmem for dirty thresholds (32-bit boards with highmem)",
    "vm.nr_trim_pages": "no-MMU kernels: excess pages trimmed from power-of-2 allocations",
    "kernel.panic": "seconds before rebooting after a panic (0 = hang); pairs with vm.panic_on_oom",
    "kernel.panic_on_oops": "1 = an oops panics (and so reboots, with kernel.panic > 0)",
}

# The keys `guardian check` reports even when the board does not set them.
REPORTED = (
    "vm.overcommit_memory",
    "vm.overcommit_ratio",
    "vm.panic_on_oom",
    "vm.min_free_kbytes",
    "vm.watermark_scale_factor",
    "vm.oom_kill_allocating_task",
    "vm.swappiness",
)


def _int_range(lo: Optional[int], hi: Optional[int]) -> Callable[[str], Optional[str]]:
    def check(value: str) -> Optional[str]:
        try:
            n = int(value)
        except ValueError:
            return "expected an integer"
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            if hi is None:
                return "expected an integer >= %d" % lo
            if lo is None:
                return "expected an integer <= %d" % hi
            if hi - lo <= 3:
                return "expected one of %s" % ", ".join(str(i) for i in range(lo, hi + 1))
            return "expected an integer from %d to %d" % (lo, hi)
        return None

    return check


_VALUE_CHECKS: Dict[str, Callable[[str], Optional[str]]] = {
    "vm.overcommit_memory": _int_range(0, 2),
    "vm.panic_on_oom": _int_range(0, 2),
    "vm.oom_kill_allocating_task": _int_range(0, 1),
    "vm.oom_dump_tasks": _int_range(0, 1),
    "vm.swappiness": _int_range(0, 200),
    "vm.watermark_scale_factor": _int_range(1, 3000),
    "vm.watermark_boost_factor": _int_range(0, None),
    "vm.min_free_kbytes": _int_range(128, None),
    "vm.overcommit_ratio": _int_range(0, None),
    "vm.overcommit_kbytes": _int_range(0, None),
    "vm.admin_reserve_kbytes": _int_range(0, None),
    "vm.user_reserve_kbytes": _int_range(0, None),
    "vm.vfs_cache_pressure": _int_range(0, None),
    "vm.dirty_ratio": _int_range(0, 100),
    "vm.dirty_background_ratio": _int_range(0, 100),
    "vm.compaction_proactiveness": _int_range(0, 100),
    "vm.extfrag_threshold": _int_range(0, 1000),
    "vm.compact_unevictable_allowed": _int_range(0, 1),
    "vm.page-cluster": _int_range(0, None),
    "kernel.panic": _int_range(None, None),
    "kernel.panic_on_oops": _int_range(0, 1),
}

# Applied first: the mode-2 commit limit must be in place before the mode is switched on.
_APPLY_FIRST = ("vm.overcommit_kbytes", "vm.overcommit_ratio", "vm.admin_reserve_kbytes", "vm.user_reserve_kbytes")


def known_keys() -> Tuple[str, ...]:
    return tuple(sorted(EXPLAIN))


def normalize_key(key: str) -> str:
    """`vm/overcommit_memory` and `vm.overcommit_memory` name the same setting."""
    return key.strip().replace("/", ".")


def check_setting(key: str, value: str) -> Optional[str]:
    """Why a (normalized) key/value pair is refused, or None. Unknown keys are refused."""
    if key not in EXPLAIN:
        return "not a kernel memory setting the guardian manages"
    check = _VALUE_CHECKS.get(key)
    if check is not None:
        return check(value)
    if not value.strip():
        return "expected a value"
    return None


@record
class SysctlResult:
    key: str
    wanted: Optional[str]  # None: not configured (reported only)
    before: Optional[str]  # None: this kernel has no such setting
    after: Optional[str]
    status: str  # "ok" same already, "set", "would-set" (dry run), "differs" (report), "unset",
    #              "missing" (no such file), "failed", "refused" (safety check)
    error: Optional[str] = None
    explanation: str = ""

    @property
    def good(self) -> bool:
        return self.status in ("ok", "set", "unset")

    def __str__(self) -> str:
        return self.line(explain=self.status not in ("ok", "set"))

    def line(self, explain: bool = True) -> str:
        if self.status == "unset":
            return "%s = %s (not set by the board): %s" % (self.key, self.before, self.explanation)
        if self.status == "missing":
            return "%s: not present in this kernel (wanted %s)" % (self.key, self.wanted)
        text = "%s = %s" % (self.key, self.after if self.after is not None else self.before)
        if self.status == "ok":
            text += " (as wanted)"
        elif self.status == "set":
            text += " (was %s)" % self.before
        elif self.status == "would-set":
            text = "%s = %s, would set %s" % (self.key, self.before, self.wanted)
        else:
            text += ", wanted %s" % self.wanted
        if self.error:
            text += ": " + self.error
        if self.explanation and explain:
            text += " -- " + self.explanation
        return text


def _path(key: str, proc_root: str) -> str:
    return os.path.join(proc_root, "sys", *key.split("."))


def _norm(value: str) -> str:
    return " ".join(value.split())


def commit_limit_kb(meminfo: Dict[str, int], ratio: int, kbytes: int) -> Optional[int]:
    """CommitLimit the kernel would compute under overcommit_memory = 2 (mm/util.c)."""
    total = meminfo.get("MemTotal")
    if total is None:
        return None
    swap = meminfo.get("SwapTotal", 0)
    if kbytes:
        return kbytes + swap
    huge = meminfo.get("Hugetlb", 0)
    return (total - huge) * ratio // 100 + swap


def _safety(key: str, wanted: str, settings: Dict[str, str], proc_root: str) -> Optional[str]:
    """Refuse settings that would hurt the running board at once."""
    if key == "vm.overcommit_memory" and wanted.strip() == "2":
        mem = read_meminfo_kib_or_empty(proc_root)
        ratio = int(settings.get("vm.overcommit_ratio") or read_sysctl("vm.overcommit_ratio", proc_root) or 50)
        kbytes = int(settings.get("vm.overcommit_kbytes") or read_sysctl("vm.overcommit_kbytes", proc_root) or 0)
        limit = commit_limit_kb(mem, ratio, kbytes)
        committed = mem.get("Committed_AS")
        if limit is not None and committed is not None and committed >= limit * 0.9:
            total = mem.get("MemTotal", 0) - mem.get("Hugetlb", 0)
            need = (committed * 100 // 80 - mem.get("SwapTotal", 0)) * 100 // max(total, 1) + 1
            return (
                "refused: Committed_AS is %d MiB and mode 2 would set CommitLimit to %d MiB, so "
                "new allocations would fail at once; raise vm.overcommit_ratio to about %d"
                % (committed // 1024, limit // 1024, need)
            )
    if key == "vm.min_free_kbytes":
        total = read_meminfo_kib_or_empty(proc_root).get("MemTotal")
        if total and int(wanted) > total // 10:
            return "refused: %s KiB is more than 10%% of MemTotal (%d KiB)" % (wanted, total)
    return None


def _ordered(settings: Dict[str, str]) -> List[str]:
    first = [k for k in _APPLY_FIRST if k in settings]
    return first + [k for k in settings if k not in first]


def apply_sysctls(settings: Dict[str, str], proc_root: str = "/proc", dry_run: bool = False) -> List[SysctlResult]:
    """Write each setting whose current value differs; one result per setting, never raises."""
    results: List[SysctlResult] = []
    for raw_key in _ordered(settings):
        key = normalize_key(raw_key)
        wanted = _norm(str(settings[raw_key]))
        explanation = EXPLAIN.get(key, "")
        before = read_sysctl(key, proc_root)
        if before is None:
            results.append(SysctlResult(key, wanted, None, None, "missing", None, explanation))
            continue
        if before == wanted:
            results.append(SysctlResult(key, wanted, before, before, "ok", None, explanation))
            continue
        refusal = _safety(key, wanted, settings, proc_root)
        if refusal:
            results.append(SysctlResult(key, wanted, before, before, "refused", refusal, explanation))
            continue
        if dry_run:
            results.append(SysctlResult(key, wanted, before, before, "would-set", None, explanation))
            continue
        try:
            with open(_path(key, proc_root), "w") as f:
                f.write(wanted + "\n")
        except OSError as e:
            problem = os.strerror(e.errno) if e.errno else str(e)
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                problem += " (needs root, and /proc/sys writable: not in a container's read-only /proc/sys)"
            results.append(SysctlResult(key, wanted, before, before, "failed", problem, explanation))
            continue
        after = read_sysctl(key, proc_root)
        if after != wanted:
            results.append(SysctlResult(
                key, wanted, before, after, "failed", "the kernel kept %s" % after, explanation))
        else:
            results.append(SysctlResult(key, wanted, before, after, "set", None, explanation))
    return results


def report_sysctls(settings: Dict[str, str], proc_root: str = "/proc",
                   include_unset: bool = True) -> List[SysctlResult]:
    """Now vs wanted for each configured setting, then (include_unset) the well-known memory
    settings the board leaves alone, with their current value."""
    results: List[SysctlResult] = []
    seen = set()
    for raw_key in settings:
        key = normalize_key(raw_key)
        seen.add(key)
        wanted = _norm(str(settings[raw_key]))
        now = read_sysctl(key, proc_root)
        explanation = EXPLAIN.get(key, "")
        if now is None:
            results.append(SysctlResult(key, wanted, None, None, "missing", None, explanation))
        elif now == wanted:
            results.append(SysctlResult(key, wanted, now, now, "ok", None, explanation))
        else:
            refusal = _safety(key, wanted, settings, proc_root)
            results.append(SysctlResult(key, wanted, now, now, "differs", refusal, explanation))
    if include_unset:
        for key in REPORTED:
            if key in seen:
                continue
            now = read_sysctl(key, proc_root)
            if now is not None:
                results.append(SysctlResult(key, None, now, now, "unset", None, EXPLAIN.get(key, "")))
    return results
