"""The audit of a board: what `guardian check` reports, and the red flags `guardian diagnose`
lists beside the kernel's OOM reports.

One list of findings, `LEVEL topic: message` (levels ok / info / warn / error):
- against a valid board config (audit): PSI and its triggers, the processes the config names and
  their oom_score_adj, the capabilities the guardian needs, the programs its commands run, the
  kernel settings it wants, memory against its lines;
- of the system itself, which needs no config (audit_system): overcommit, panic_on_oom,
  oom_kill_allocating_task, swap, transparent huge pages, the kernel's unreclaimable slab,
  PID 1's memory, the kernel OOM killer's count.
Some findings of the system are red flags: a state that makes OOM kills likely or hard to
explain. `guardian check` shows every finding as its line; `guardian diagnose` lists the red
flags with their advice (Finding.red_flag, worded apart from the line for swap, THP and
panic_on_oom, whose lines say what check has always said).

The config itself is loaded (and an invalid one reported) by guardian.commands.check.
"""
from __future__ import annotations

import errno
import os

from guardian.analysis.forensics import kib
from guardian.config import MIB, Config
from guardian.kernel import ParseError
from guardian.kernel.meminfo import read_meminfo_kib_or_empty
from guardian.kernel.sysctl import read_sysctl
from guardian.kernel.vmstat import read_vmstat
from guardian.record import field, mutable_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

LEVELS = ("ok", "info", "warn", "error")
KIB = 1024


@mutable_record
class RedFlag:
    """A finding as `guardian diagnose` lists it among the system's red flags."""

    flag: str  # its name, for scripts: thp_always, no_swap, ...
    detail: str  # what is wrong, with the numbers
    advice: str
    numbers: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return {"flag": self.flag, "detail": self.detail, "advice": self.advice, "numbers": self.numbers}


@mutable_record
class Finding:
    """One thing the audit found: `guardian check` prints it as `LEVEL topic: message`; `data`
    goes into check's JSON; `red_flag` is set when `guardian diagnose` lists it too."""

    level: str
    topic: str
    message: str
    data: Dict[str, Any] = field(default_factory=dict)
    red_flag: Optional[RedFlag] = None

    def line(self) -> str:
        return "%-5s %s: %s" % (self.level, self.topic, self.message)


def _red_flag(topic: str, flag: str, detail: str, advice: str, **numbers: Any) -> Finding:
    """A red flag `guardian check` shows as a warning: what is wrong -- what to do."""
    return Finding("warn", topic, "%s -- %s" % (detail, advice), dict(numbers), RedFlag(flag, detail, advice, numbers))


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


def _mib(n: float) -> str:
    return "%.0f MiB" % (n / MIB)


# ------------------------------------------------------------------------------ PSI

def try_trigger(path: str, text: bytes) -> Optional[int]:
    """Write a PSI trigger and close it at once: None if accepted, else the errno."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, text)
        return None
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def _read_psi_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def _is_procfs(path: str) -> bool:
    """procfs files report size 0; a fake tree's files do not."""
    return os.stat(path).st_size == 0


def audit_psi(config: Config, proc_root: str) -> List[Finding]:
    path = os.path.join(proc_root, "pressure", "memory")
    if not os.path.exists(path):
        return [Finding("warn", "psi", "%s absent: the kernel lacks CONFIG_PSI (Linux >= 4.20): the guardian "
                        "polls memory instead of being woken by the kernel" % path)]
    try:
        text = _read_psi_text(path)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            cmdline = _read(os.path.join(proc_root, "cmdline")) or ""
            why = "psi=0 is on the kernel command line" if "psi=0" in cmdline.split() else \
                "the kernel is built with CONFIG_PSI_DEFAULT_DISABLED"
            return [Finding("warn", "psi", "present but disabled (%s): add psi=1 to the kernel command line; "
                            "until then the guardian polls" % why)]
        return [Finding("warn", "psi", "%s: %s" % (path, e.strerror))]
    first = text.splitlines()[0] if text else ""
    out = [Finding("ok", "psi", "present and enabled (%s)" % first.strip())]
    if not _is_procfs(path):
        out.append(Finding("info", "psi-trigger", "%s is not procfs: trigger test skipped" % path))
        return out
    window = config.wait.psi_window_us
    err = try_trigger(path, b"some 150000 1000000\0")
    if err is None:
        out.append(Finding("ok", "psi-trigger", "privileged triggers allowed (sub-second windows: the configured "
                           "%d ms window is used as is)" % (window // 1000)))
        return out
    if err == errno.EINVAL:
        err2 = try_trigger(path, b"some 500000 2000000\0")
        if err2 is None:
            level = "info" if window % 2000000 == 0 else "warn"
            out.append(Finding(level, "psi-trigger", "unprivileged triggers only: windows must be multiples of 2 s, "
                               "so the configured %d ms window is widened to %d ms (the kernel wakes the guardian "
                               "later); running with CAP_SYS_RESOURCE allows sub-second windows"
                               % (window // 1000, max(2000, (window + 1999999) // 2000000 * 2000))))
            return out
        err = err2
    if err in (errno.EPERM, errno.EACCES):
        out.append(Finding("warn", "psi-trigger", "triggers refused (%s): Linux 5.2-6.4 allow them only with "
                           "CAP_SYS_RESOURCE; the guardian polls instead" % os.strerror(err)))
    else:
        out.append(Finding("warn", "psi-trigger", "trigger refused: %s" % os.strerror(err)))
    return out


# ------------------------------------------------------------------------------ processes

def audit_processes(config: Config, proc_root: str) -> List[Finding]:
    from guardian.kernel.procs import read_procs
    from guardian.core.match import classify

    procs = read_procs(proc_root)
    roles = classify(procs, config, proc_root)
    from guardian.kernel.procs import printable
    from guardian.core.impostors import impostors
    fake: List[Finding] = []
    for i in impostors(procs, config, proc_root):
        kind = "critical" if i.kind == "critical" else "low-priority"
        fake.append(Finding("warn", kind, "impostor? pid %d %s (uid %d, exe %s) is named like %s but %s: no role, "
                            "an ordinary candidate" % (i.proc.pid, i.proc.comm, i.proc.uid, printable(i.exe or "?"),
                                                       i.entry.name, i.why),
                            {"name": i.entry.name, "pid": i.proc.pid, "uid": i.proc.uid, "exe": i.exe,
                             "impostor": True}))
    by_entry: Dict[Tuple[str, str], List[Any]] = {}
    by_pid = {p.pid: p for p in procs}
    for pid, role in sorted(roles.items()):
        by_entry.setdefault((role.kind, role.entry.name), []).append(by_pid[pid])
    out: List[Finding] = []
    for kind, entries in (("critical", config.critical), ("low-priority", config.low_priority)):
        key_kind = "critical" if kind == "critical" else "low_priority"
        for entry in entries:
            found = by_entry.get((key_kind, entry.name), [])
            wanted = entry.oom_score_adj
            if not found:
                if kind == "critical" and not entry.optional:
                    out.append(Finding("warn", kind, "%s: not running (reported, not an error: it is protected "
                                       "as soon as it starts)" % entry.name, {"name": entry.name}))
                else:
                    out.append(Finding("info", kind, "%s: not running%s" % (
                        entry.name, " (optional)" if entry.optional else ""), {"name": entry.name}))
                continue
            shown = found[:4]
            more = " and %d more" % (len(found) - 4) if len(found) > 4 else ""
            pids = ", ".join("%d" % p.pid for p in shown) + more
            adjs = sorted({p.oom_score_adj for p in found})
            now = "/".join(str(a) for a in adjs)
            data = {"name": entry.name, "pids": [p.pid for p in found], "oom_score_adj": adjs, "wanted": wanted}
            if wanted is None:
                out.append(Finding("ok", kind, "%s: pid %s, oom_score_adj %s (left alone)" % (entry.name, pids, now),
                                   data))
            elif kind == "critical" and max(adjs) <= wanted:
                extra = "" if adjs == [wanted] else " (lower already: set by the daemon or its service manager)"
                out.append(Finding("ok", kind, "%s: pid %s, oom_score_adj %s, wanted %d%s"
                                   % (entry.name, pids, now, wanted, extra), data))
            elif kind != "critical" and min(adjs) >= wanted:
                out.append(Finding("ok", kind, "%s: pid %s, oom_score_adj %s, wanted %d" % (entry.name, pids, now,
                                                                                             wanted), data))
            else:
                out.append(Finding("warn", kind, "%s: pid %s, oom_score_adj %s, wanted %d (guardian run sets it "
                                   "at start and on every restart)" % (entry.name, pids, now, wanted), data))
    return out + fake


def audit_capabilities(config: Config, proc_root: str, kmsg: str = "/dev/kmsg") -> List[Finding]:
    """Each capability the guardian lacks, named by the feature it disables; whether restarts
    are heard at once (proc connector) and kernel OOM reports can be read (/dev/kmsg). Run as
    the guardian runs (under systemd: `systemd-run -p CapabilityBoundingSet=... guardian check`,
    or see the start lines in the journal) to judge the unit's sandbox."""
    from guardian.core.capabilities import capabilities, missing_capability_report

    caps = capabilities(proc_root)
    out: List[Finding] = []
    if not caps.get("CAP_SYS_RESOURCE") and any(c.oom_score_adj < 0 for c in config.critical):
        out.append(Finding("warn", "capabilities", "CAP_SYS_RESOURCE missing (this process: run check the way the "
                           "guardian runs): without it no critical daemon's oom_score_adj can be lowered below 0"))
    for line in missing_capability_report(caps):
        if line.split()[0] not in ("CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"):  # the first above; the second unneeded
            out.append(Finding("warn", "capabilities", line))
    if os.path.realpath(proc_root) == "/proc":
        try:
            os.close(os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            out.append(Finding("ok", "kernel-oom", "kernel OOM reports read from %s" % kmsg))
        except OSError as e:
            out.append(Finding("warn", "kernel-oom", "%s cannot be read (%s): a kernel OOM kill is counted but its "
                               "report (cause, cgroup, victim) is lost; it needs CAP_SYSLOG where "
                               "kernel.dmesg_restrict = 1 and, under systemd, the device (no PrivateDevices=, "
                               "DeviceAllow=/dev/kmsg r)" % (kmsg, e.strerror or e)))
    if os.path.realpath(proc_root) == "/proc" and (config.critical or config.low_priority):
        from guardian.kernel.connector import open_proc_connector

        sock, detail = open_proc_connector(0.3)
        if sock is not None:
            sock.close()
            out.append(Finding("ok", "restarts", "noticed at once through the %s" % detail))
        else:
            out.append(Finding("info", "restarts", "%s: noticed by listing /proc every second instead" % detail))
    return out


def _argv0_exists(argv0: str, root: str) -> bool:
    if argv0.startswith("/"):
        return os.path.exists(os.path.join(root, argv0.lstrip("/")))
    for d in ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"):
        if os.path.exists(os.path.join(root, d, argv0)):
            return True
    return False


def audit_commands(config: Config, root: str) -> List[Finding]:
    """The programs the config would run must exist (in the target root, offline)."""
    out: List[Finding] = []
    commands: List[Tuple[str, str, Sequence[str]]] = []
    for c in config.critical:
        if c.leak.enabled and c.leak.on_leak in ("restart", "command") and c.leak.command:
            commands.append(("critical", c.name + " leak.command", c.leak.command))
        if c.match.exe and not _argv0_exists(c.match.exe, root):
            out.append(Finding("warn", "critical", "%s: match.exe %s is not in %s" % (c.name, c.match.exe, root)))
    for lp in config.low_priority:
        if lp.stop:
            commands.append(("low-priority", lp.name + " stop", lp.stop))
    for kind, what, argv in commands:
        if not _argv0_exists(argv[0], root):
            level = "warn"
            out.append(Finding(level, kind, "%s: %s not found in %s" % (what, argv[0], root)))
    return out


# ------------------------------------------------------------------------------ kernel settings

def audit_sysctls(config: Config, proc_root: str) -> List[Finding]:
    """The board's [sysctl] table now vs wanted, how much of the commit limit is in use, then the
    kernel settings that matter whatever the board wants."""
    from guardian.board.sysctl import report_sysctls

    out: List[Finding] = []
    for r in report_sysctls(config.sysctl, proc_root):
        data = {"key": r.key, "now": r.before, "wanted": r.wanted}
        if r.status == "ok":
            out.append(Finding("ok", "sysctl", "%s = %s as wanted -- %s" % (r.key, r.before, r.explanation), data))
        elif r.status == "unset":
            out.append(Finding("info", "sysctl", "%s = %s (the board leaves it) -- %s" % (r.key, r.before,
                                                                                         r.explanation), data))
        elif r.status == "missing":
            out.append(Finding("warn", "sysctl", "%s: not in this kernel (wanted %s)" % (r.key, r.wanted), data))
        else:
            tail = ("; and it would be refused: %s" % r.error) if r.error else " (guardian run sets it at start)"
            out.append(Finding("warn", "sysctl", "%s = %s, wanted %s%s -- %s" % (r.key, r.before, r.wanted, tail,
                                                                               r.explanation), data))
    mem = read_meminfo_kib_or_empty(proc_root)
    mode = read_sysctl("vm.overcommit_memory", proc_root)
    if mode is not None and "CommitLimit" in mem and "Committed_AS" in mem:
        committed, limit = mem["Committed_AS"] * KIB, mem["CommitLimit"] * KIB
        share = 100.0 * committed / max(limit, 1)
        text = "overcommit_memory %s: Committed_AS %s of CommitLimit %s (%.0f%%)" % (
            mode, _mib(committed), _mib(limit), share)
        if mode == "2":
            text += ": allocations fail once it reaches 100%%; the guardian's commit lines act at %s%% and %s%%" % (
                _num(config.thresholds.commit_terminate_percent), _num(config.thresholds.commit_kill_percent))
        else:
            text += ": CommitLimit is only enforced in mode 2"
        out.append(Finding("info", "overcommit", text))
    return out + audit_kernel_settings(proc_root, mem)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def audit_kernel_settings(proc_root: str, mem: Dict[str, int]) -> List[Finding]:
    """Kernel settings that make OOM kills likely or hard to explain (red flags), whatever the
    board wants. `mem`: /proc/meminfo in KiB."""
    out: List[Finding] = []
    total = mem.get("MemTotal")
    swap_total = mem.get("SwapTotal")
    over = read_sysctl("vm.overcommit_memory", proc_root)
    if over == "1":
        out.append(_red_flag(
            "overcommit", "overcommit_always", "vm.overcommit_memory is 1: every allocation succeeds, however large",
            "nothing refuses memory up front, so running out ends in the OOM killer; 0 (heuristic) is safer, "
            "2 (strict) makes allocations fail instead of processes dying", overcommit_memory=1))
    elif over == "2" and total:
        ratio = read_sysctl("vm.overcommit_ratio", proc_root)
        limit = mem.get("CommitLimit")
        if ratio is not None and limit is not None and limit > total + (swap_total or 0):
            out.append(_red_flag(
                "overcommit", "overcommit_ratio_high", "vm.overcommit_memory is 2 but CommitLimit %s exceeds "
                "RAM+swap %s (overcommit_ratio %s)" % (kib(limit), kib(total + (swap_total or 0)), ratio),
                "strict accounting that promises more than exists: lower vm.overcommit_ratio so CommitLimit "
                "fits RAM+swap", commit_limit_kb=limit, overcommit_ratio=ratio))
    if read_sysctl("vm.oom_kill_allocating_task", proc_root) not in (None, "0"):
        out.append(_red_flag(
            "oom-killer", "oom_kill_allocating_task",
            "vm.oom_kill_allocating_task is set: the kernel kills whoever asked last",
            "that is rarely the process that holds the memory; set it to 0", oom_kill_allocating_task=1))
    panic = read_sysctl("vm.panic_on_oom", proc_root)
    if panic not in (None, "0"):
        flag = RedFlag("panic_on_oom", "vm.panic_on_oom is %s: an OOM reboots the board instead of killing a process"
                       % panic, "fine for a watchdog design; otherwise set it to 0 and let the guardian act first",
                       {"panic_on_oom": panic})
        reboot = read_sysctl("kernel.panic", proc_root)
        if reboot in (None, "0"):
            out.append(Finding("warn", "panic", "vm.panic_on_oom = %s with kernel.panic = %s: an OOM hangs the board "
                               "until the watchdog resets it" % (panic, reboot), red_flag=flag))
        else:
            out.append(Finding("info", "panic", "vm.panic_on_oom = %s: an OOM reboots the board after %s s"
                               % (panic, reboot), red_flag=flag))
    return out


# ------------------------------------------------------------------------------ memory

def audit_memory(config: Config, proc_root: str, sys_root: str) -> List[Finding]:
    """Memory against the board's lines and RAM, then the state of memory itself."""
    out: List[Finding] = []
    mem = read_meminfo_kib_or_empty(proc_root)
    total = mem.get("MemTotal", 0) * KIB
    if total:
        t = config.thresholds
        out.append(Finding("info", "memory", "MemTotal %s, MemAvailable %s; lines: reclaim %s, terminate %s, kill %s"
                           % (_mib(total), _mib(mem.get("MemAvailable", 0) * KIB), _mib(t.reclaim.bytes_for(total)),
                              _mib(t.terminate.bytes_for(total)), _mib(t.kill.bytes_for(total)))))
        ram = config.board_info.ram_mib
        if ram and total > ram * MIB * 1.05:
            out.append(Finding("warn", "memory", "MemTotal %s is more than board %r's %d MiB: is this the right board?"
                               % (_mib(total), config.board, ram)))
    return out + audit_memory_state(proc_root, sys_root, mem)


# THP "always" is a warning, and a red flag, under 2 GiB of RAM only: there khugepaged's 2 MiB
# pages inflate sparse heaps by a share of RAM that brings the kill line closer, and use up the
# scarce order-9 blocks; on larger machines "always" is a common distribution default that an
# operator would read as noise. (A report whose failed allocation was an order-9 compound page
# still gets THP advice from the OOM classification, at any size.)
THP_WARN_BELOW = 2048 * MIB


def audit_memory_state(proc_root: str, sys_root: str, mem: Dict[str, int]) -> List[Finding]:
    """Swap, transparent huge pages, the kernel's unreclaimable slab, PID 1's memory and the OOM
    killer's count. `mem`: /proc/meminfo in KiB."""
    out: List[Finding] = []
    total = mem.get("MemTotal")
    swaps = (_read(os.path.join(proc_root, "swaps")) or "").splitlines()[1:]
    devices = [line.split() for line in swaps if line.strip()]
    zram_sizes = []
    try:
        for name in sorted(os.listdir(os.path.join(sys_root, "block"))):
            if name.startswith("zram"):
                size = (_read(os.path.join(sys_root, "block", name, "disksize")) or "0").strip()
                zram_sizes.append((name, int(size) if size.isdigit() else 0))
    except OSError:
        pass
    if devices:
        parts = []
        for d in devices:
            kind = "zram" if "zram" in d[0] else d[1] if len(d) > 1 else "?"
            size = int(d[2]) * 1024 if len(d) > 2 and d[2].isdigit() else 0
            used = int(d[3]) * 1024 if len(d) > 3 and d[3].isdigit() else 0
            parts.append("%s (%s, %s, %s used)" % (d[0], kind, _mib(size), _mib(used)))
        flash = [d[0] for d in devices if "zram" not in d[0]]
        out.append(Finding("info", "swap", "swap on " + ", ".join(parts) + (
            "; swap on flash wears it out" if flash else "") + "; the guardian's swap lines are active"))
    else:
        unused = [n for n, s in zram_sizes if s == 0]
        text = "no swap"
        if zram_sizes:
            text += "; zram devices %s exist but are not used as swap" % ", ".join(n for n, _ in zram_sizes) \
                if len(unused) == len(zram_sizes) else "; zram configured: %s" % ", ".join(
                    "%s %s" % (n, _mib(s)) for n, s in zram_sizes)
        else:
            text += ", no zram"
        no_swap = None
        if mem.get("SwapTotal") == 0:  # meminfo says so too
            no_swap = RedFlag(
                "no_swap", "no swap or zram",
                "anonymous memory cannot be reclaimed at all, so the only way out of a shortage is a kill; "
                "a small zram device (compressed swap in RAM) gives room at a little CPU cost", {"swap_total_kb": 0})
        out.append(Finding("info", "swap", text + ": anonymous memory cannot be reclaimed, only freed",
                           red_flag=no_swap))
    thp = _read(os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"))
    if thp is None:
        out.append(Finding("info", "thp", "transparent huge pages not built in"))
    else:
        mode = thp.split("[", 1)[1].split("]", 1)[0] if "[" in thp else thp.strip()
        if mode == "always" and total and total * KIB < THP_WARN_BELOW:
            out.append(Finding(
                "warn", "thp", "transparent huge pages: always; on a small board khugepaged can grow a sparse heap "
                "by 2 MiB at a time: madvise is the usual choice (transparent_hugepage=madvise)",
                red_flag=RedFlag(
                    "thp_always", "transparent hugepages are 'always'",
                    "every large anonymous mapping is backed by 2 MiB pages: processes hold more than they touch, and "
                    "the allocator needs order-9 blocks; 'madvise' is the safer setting on small boards "
                    "(echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)", {"setting": thp.strip()})))
        else:
            out.append(Finding("info", "thp", "transparent huge pages: %s" % mode))
    sunreclaim = mem.get("SUnreclaim")
    if total and sunreclaim is not None and sunreclaim > total // 10:
        out.append(_red_flag(
            "slab", "slab_unreclaimable", "SUnreclaim is %s, %.1f %% of MemTotal %s" % (
                kib(sunreclaim), 100.0 * sunreclaim / total, kib(total)),
            "kernel memory that cannot be reclaimed: a driver or kernel leak if it keeps growing; "
            "see /proc/slabinfo (slabtop) for the cache that grows", sunreclaim_kb=sunreclaim, mem_total_kb=total))
    out += _audit_pid1(proc_root, total)
    try:
        vmstat = read_vmstat(proc_root) or {}
    except ParseError:
        vmstat = {}
    n = vmstat.get("oom_kill")
    if n is not None:
        out.append(Finding("info" if n == 0 else "warn", "oom-kills",
                           "the kernel's OOM killer has fired %d times since boot" % n))
    return out


def _audit_pid1(proc_root: str, total: Optional[int]) -> List[Finding]:
    """PID 1 is never killed, so the anonymous memory it holds is gone for everyone."""
    status = _read(os.path.join(proc_root, "1", "status")) or ""
    rss_anon = None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            try:
                rss_anon = int(line.split()[1])
            except (IndexError, ValueError):
                pass
    if rss_anon is None or not total:
        return []
    limit = min(32 * 1024, max(8 * 1024, total // 20))
    if rss_anon <= limit:
        return []
    comm = (_read(os.path.join(proc_root, "1", "comm")) or "init").strip()
    return [_red_flag(
        "init", "pid1_rss_anon", "PID 1 (%s) holds %s of anonymous memory (more than %s)" % (
            comm, kib(rss_anon), kib(limit)),
        "init never gets killed, so what it holds is gone for everyone: a leak in PID 1 (too many "
        "units, a journal kept in memory, a leaking init script interpreter) should be fixed or it "
        "restarted by a re-exec (systemctl daemon-reexec)", rss_anon_kb=rss_anon, threshold_kb=limit)]


# ------------------------------------------------------------------------------ the whole audit

def audit_events(config: Config, proc_root: str) -> List[Finding]:
    """Where `guardian run` will keep its events (without --events-file): not in RAM if a
    persistent place exists (eventfiles.choose_place)."""
    from guardian.core.eventfiles import events_place

    try:
        place = events_place(None, config.leaks.state_dir, proc_root)
    except ParseError as exc:
        return [Finding("warn", "events", "%s: cannot tell whether the event log would be in RAM" % exc)]
    data = {"path": place.path, "in_ram": place.in_ram, "ram_bytes": place.ram_bytes if place.in_ram else 0}
    if place.in_ram:
        return [Finding("warn", "events", place.note or "", data)]
    return [Finding("info" if place.note else "ok", "events", place.note or "%s (not in RAM)" % place.path, data)]


def audit(config: Config, proc_root: str = "/proc", sys_root: str = "/sys", fs_root: str = "/") -> List[Finding]:
    """Every finding about the running system against a valid config (`guardian check`)."""
    out = audit_psi(config, proc_root)
    out += audit_capabilities(config, proc_root)
    out += audit_processes(config, proc_root)
    out += audit_commands(config, fs_root)
    out += audit_sysctls(config, proc_root)
    out += audit_memory(config, proc_root, sys_root)
    out += audit_events(config, proc_root)
    return out


def audit_system(proc_root: str = "/proc", sys_root: str = "/sys") -> List[Finding]:
    """The findings about the system itself, the ones that need no board config."""
    mem = read_meminfo_kib_or_empty(proc_root)
    return audit_kernel_settings(proc_root, mem) + audit_memory_state(proc_root, sys_root, mem)


def red_flags(proc_root: str = "/proc", sys_root: str = "/sys") -> List[Dict[str, Any]]:
    """What about this system makes OOM kills likely or hard to explain, as `guardian diagnose`
    lists it: each flag's name, detail (with the numbers), advice and numbers."""
    return [f.red_flag.as_dict() for f in audit_system(proc_root, sys_root) if f.red_flag is not None]
