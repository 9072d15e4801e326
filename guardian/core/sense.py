"""Sense: turn the kernel's files into one Reading for the scope being guarded.

The cheap part (meminfo or the cgroup's counters, PSI) is read every tick through file
descriptors kept open; the costly part (buddyinfo, the process table) only when memory is
getting short or the sampling interval is due.
"""
from __future__ import annotations

import os

from guardian.kernel import ParseError, close_quietly
from guardian.kernel.buddyinfo import high_order_free_bytes, parse_buddyinfo
from guardian.kernel.cgroup import CgroupMemory, cgroup_pids, read_cgroup_memory
from guardian.kernel.meminfo import MemInfo, glance_meminfo, parse_meminfo
from guardian.kernel.procs import ProcInfo, read_procs
from guardian.kernel.psi import Psi, parse_psi
from guardian.kernel.sysctl import read_sysctl
from guardian.core.reading import Reading
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Set, Tuple



class KeptFile:
    """A /proc file read again and again through one descriptor (pread at 0 regenerates it)."""

    def __init__(self, path: str):
        self.path = path
        self.fd: Optional[int] = None

    def read(self) -> Optional[str]:
        data = self.read_bytes()
        return None if data is None else data.decode("ascii", "replace")

    def read_bytes(self) -> Optional[bytes]:
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(self.fd, 65536, 0)
        except OSError:
            self.close()
            return None

    def close(self) -> None:
        self.fd = close_quietly(self.fd)


class Sensor:
    """Reads the scope. `scope` is "system" or the directory of a memory cgroup."""

    def __init__(self, scope_dir: Optional[str] = None, proc_root: str = "/proc", sys_root: str = "/sys"):
        self.scope_dir = scope_dir
        self.proc_root = proc_root
        self.sys_root = sys_root
        self.cgroup_version: Optional[int] = None
        self._meminfo = KeptFile(proc_root + "/meminfo")
        psi_path = proc_root + "/pressure/memory"
        if scope_dir is not None:
            psi_path = os.path.join(scope_dir, "memory.pressure")
        self.psi_path: Optional[str] = psi_path if os.path.exists(psi_path) else None
        self._psi = KeptFile(psi_path)
        self._vmstat = KeptFile(proc_root + "/vmstat")
        self._said: Set[str] = set()
        self.overcommit_mode: Optional[int] = None
        self.last_meminfo: Optional[MemInfo] = None
        self.last_cgroup: Optional[CgroupMemory] = None
        self.last_zram: Any = None  # the zram part of swap at the last full read (kernel.zram.ZramSwap)

    def say_once(self, key: str, message: str) -> None:
        """Degradations are normal on small kernels: say each once, then carry on."""
        if key not in self._said:
            self._said.add(key)
            log.warning(message)

    def meminfo(self) -> Optional[MemInfo]:
        text = self._meminfo.read()
        if text is None:
            self.say_once("meminfo", "%s unreadable; keeping the last reading" % self._meminfo.path)
            return self.last_meminfo
        try:
            info = parse_meminfo(text, self._meminfo.path)
        except ParseError as exc:
            self.say_once("meminfo-parse", "%s; keeping the last reading" % exc)
            return self.last_meminfo
        if info.available_estimated:
            self.say_once("memavailable", "no MemAvailable in %s (kernel < 3.14): estimating it from "
                          "MemFree and the file LRU" % self._meminfo.path)
        self.last_meminfo = info
        return info

    def meminfo_fd(self) -> Optional[int]:
        """The kept descriptor of meminfo (opened if need be), for a loop that reads it itself."""
        if self._meminfo.fd is None and self._meminfo.read_bytes() is None:
            return None
        return self._meminfo.fd

    def glance(self) -> Optional[Tuple[int, int]]:
        """(MemTotal, MemAvailable) in bytes, read raw; None when the file does not read or
        lacks either (the caller then reads it in full, which says why)."""
        data = self._meminfo.read_bytes()
        return None if data is None else glance_meminfo(data)

    def psi(self) -> Optional[Psi]:
        if self.psi_path is None:
            self.say_once("psi", "no PSI for this scope (no %s/pressure/memory or cgroup v1): "
                          "memory lines only" % self.proc_root)
            return None
        text = self._psi.read()
        if text is None:
            self.say_once("psi-read", "%s unreadable (PSI disabled? boot with psi=1)" % self.psi_path)
            return None
        try:
            return parse_psi(text, self.psi_path)
        except ParseError as exc:
            self.say_once("psi-parse", str(exc))
            return None

    def refresh_slow(self) -> None:
        """Settings that change rarely: read at start and at each process sample."""
        value = read_sysctl("vm.overcommit_memory", self.proc_root)
        try:
            self.overcommit_mode = int(value) if value is not None else None
        except ValueError:
            self.say_once("overcommit", "vm.overcommit_memory reads %r, not a number" % value)

    def oom_kills(self) -> Optional[int]:
        """The kernel OOM killer's count for this scope: vmstat oom_kill, or the cgroup's."""
        if self.scope_dir is not None:
            return self.last_cgroup.oom_kill if self.last_cgroup is not None else None
        # Every tick: find the one counter rather than parse all ~190 lines (5x cheaper).
        text = self._vmstat.read()
        if text is None:
            self.say_once("vmstat", "%s unreadable: kernel OOM kills not counted" % self._vmstat.path)
            return None
        at = text.find("\noom_kill ")
        if at < 0:
            self.say_once("vmstat",
                          "no oom_kill in %s (kernel < 4.13): kernel OOM kills not counted" % self._vmstat.path)
            return None
        end = text.find("\n", at + 10)
        try:
            return int(text[at + 10:end if end >= 0 else len(text)])
        except ValueError:
            self.say_once("vmstat-parse", "%s: oom_kill: expected an integer" % self._vmstat.path)
            return None

    def zram(self, info: MemInfo) -> Any:
        """Swap on zram, read only where there is swap at all (two small files). The reader is
        imported then, at the first reading: a board without swap does not hold it."""
        if info.swap_total <= 0:
            self.last_zram = None
            return None
        from guardian.kernel.zram import read_zram_swap
        try:
            self.last_zram = read_zram_swap(self.proc_root, self.sys_root)
        except (OSError, ParseError) as exc:
            self.say_once("zram", "%s; counting all swap as disk swap until it reads again" % exc)
            self.last_zram = None
        return self.last_zram

    def headroom(self, info: MemInfo) -> int:
        """A glance's headroom: MemAvailable plus what zram could still take in, estimated from
        SwapFree at the ratio of the last full read (a full tick reads mm_stat again)."""
        z = self.last_zram
        if z is None or z.free <= 0 or info.swap_total <= 0:
            return info.available
        disk_free = max(0, info.swap_free - z.free) if info.swap_total > z.total else 0
        zram_free = max(0, min(z.free, info.swap_free - disk_free))
        return info.available + z.relief * zram_free // z.free  # exact, as guardian/_rest.c's

    def high_order_free_percent(self) -> Optional[float]:
        path = self.proc_root + "/buddyinfo"
        try:
            with open(path) as f:
                zones = parse_buddyinfo(f.read(), path)
        except (OSError, ParseError) as exc:
            self.say_once("buddyinfo", "%s: %s; no compaction decisions" % (path, exc))
            return None
        total = high_order_free_bytes(zones, 0)
        if total <= 0:
            return 0.0
        return 100.0 * high_order_free_bytes(zones, 4) / total

    def procs(self) -> Tuple[ProcInfo, ...]:
        if self.scope_dir is None:
            return read_procs(self.proc_root)
        try:
            pids = cgroup_pids(self.scope_dir)
        except OSError as exc:
            self.say_once("cgroup-procs", "%s: cannot list processes: %s" % (self.scope_dir, exc))
            return ()
        return read_procs(self.proc_root, pids)

    def read(self, now: float, self_pid: int, with_procs: bool = False, with_buddy: bool = False) -> Optional[Reading]:
        """One reading, or None when nothing could be read at all (never raises for /proc)."""
        info = self.meminfo()
        psi = self.psi()
        procs = self.procs() if with_procs else None
        buddy = self.high_order_free_percent() if with_buddy else None
        some = psi.some.avg10 if psi else None
        full = psi.full.avg10 if psi and psi.full else None
        if self.scope_dir is not None:
            cg: Optional[CgroupMemory]
            try:
                cg = read_cgroup_memory(self.scope_dir)
            except (OSError, ParseError) as exc:
                self.say_once("cgroup", "%s: %s; keeping the last reading" % (self.scope_dir, exc))
                cg = self.last_cgroup
            if cg is None:
                return None
            self.last_cgroup, self.cgroup_version = cg, cg.version
            mem_total = info.total if info else None
            limit = cg.limit
            if limit is None or (mem_total is not None and limit > mem_total):
                limit = mem_total if mem_total is not None else cg.usage
            available = max(0, limit - cg.usage + cg.reclaimable)
            if info is not None:
                available = min(available, info.available)
            if cg.psi is not None:
                some = cg.psi.some.avg10
                full = cg.psi.full.avg10 if cg.psi.full else None
            return Reading(time=now, total=limit, available=available, psi_some_avg10=some,
                           psi_full_avg10=full, high_order_free_percent=buddy, procs=procs,
                           self_pid=self_pid, oom_kills=cg.oom_kill)
        if info is None:
            return None
        zram = self.zram(info)
        return Reading(time=now, total=info.total, available=info.available,
                       swap_total=info.swap_total, swap_free=info.swap_free,
                       zram_swap_total=zram.total if zram else 0, zram_swap_free=zram.free if zram else 0,
                       zram_relief=zram.relief if zram else 0,
                       committed_as=info.committed_as, commit_limit=info.commit_limit,
                       overcommit_mode=self.overcommit_mode, psi_some_avg10=some,
                       psi_full_avg10=full, high_order_free_percent=buddy, procs=procs,
                       self_pid=self_pid, oom_kills=self.oom_kills())

    def close(self) -> None:
        self._meminfo.close()
        self._psi.close()
        self._vmstat.close()
