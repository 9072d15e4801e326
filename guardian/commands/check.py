"""`guardian check`: validate a board config and audit the running system against it.

One line per finding, `LEVEL topic: message`, levels ok / info / warn / error.
Exit status: 0 all well, 1 warnings, 2 the config is invalid.

Offline (`--root DIR`, a target rootfs at image build time): the config alone is checked,
plus the programs its commands name (they must exist in DIR). File ownership is not
checked offline (a build tree belongs to the build user; the image's owner is set later),
only that no file is group- or world-writable.
"""
import errno
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, IO, List, Optional, Sequence, Tuple

from guardian.board.boards import LOCAL_BOARDS_DIRS, available_boards
from guardian.board.errors import ConfigError
from guardian.board.load import LoadedConfig, load_config, load_file
from guardian.config import MIB, Config

LEVELS = ("ok", "info", "warn", "error")


@dataclass
class Finding:
    level: str
    topic: str
    message: str
    data: Dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return "%-5s %s: %s" % (self.level, self.topic, self.message)


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError:
        return None


def _meminfo(proc_root: str) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for line in (_read(os.path.join(proc_root, "meminfo")) or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * 1024
    return out


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
    from guardian.core.match import impostors
    fake: List[Finding] = []
    for i in impostors(procs, config, proc_root):
        kind = "critical" if i.kind == "critical" else "low-priority"
        fake.append(Finding("warn", kind, "impostor? pid %d %s (uid %d, exe %s) is named like %s but %s: no role, "
                            "an ordinary candidate" % (i.proc.pid, i.proc.comm, i.proc.uid, printable(i.exe or "?"),
                                                       i.entry.name, i.why),
                            {"name": i.entry.name, "pid": i.proc.pid, "uid": i.proc.uid, "exe": i.exe, "impostor": True}))
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


def audit_capabilities(config: Config, proc_root: str) -> List[Finding]:
    from guardian.core.selfprotect import capabilities

    caps = capabilities(proc_root)
    out: List[Finding] = []
    if not caps.get("CAP_SYS_RESOURCE") and any(c.oom_score_adj < 0 for c in config.critical):
        out.append(Finding("warn", "capabilities", "CAP_SYS_RESOURCE missing (this process: run check the way the "
                           "guardian runs): without it no critical daemon's oom_score_adj can be lowered below 0"))
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
    from guardian.board.sysctl import read_sysctl, report_sysctls

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
    mem = _meminfo(proc_root)
    mode = read_sysctl("vm.overcommit_memory", proc_root)
    if mode is not None and "CommitLimit" in mem and "Committed_AS" in mem:
        share = 100.0 * mem["Committed_AS"] / max(mem["CommitLimit"], 1)
        text = "overcommit_memory %s: Committed_AS %s of CommitLimit %s (%.0f%%)" % (
            mode, _mib(mem["Committed_AS"]), _mib(mem["CommitLimit"]), share)
        if mode == "2":
            text += ": allocations fail once it reaches 100%%; the guardian's commit lines act at %s%% and %s%%" % (
                _num(config.thresholds.commit_terminate_percent), _num(config.thresholds.commit_kill_percent))
        else:
            text += ": CommitLimit is only enforced in mode 2"
        out.append(Finding("info", "overcommit", text))
    panic = read_sysctl("vm.panic_on_oom", proc_root)
    if panic not in (None, "0"):
        reboot = read_sysctl("kernel.panic", proc_root)
        if reboot in (None, "0"):
            out.append(Finding("warn", "panic", "vm.panic_on_oom = %s with kernel.panic = %s: an OOM hangs the board "
                               "until the watchdog resets it" % (panic, reboot)))
        else:
            out.append(Finding("info", "panic", "vm.panic_on_oom = %s: an OOM reboots the board after %s s"
                               % (panic, reboot)))
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def audit_memory(config: Config, proc_root: str, sys_root: str) -> List[Finding]:
    out: List[Finding] = []
    mem = _meminfo(proc_root)
    total = mem.get("MemTotal")
    if total:
        t = config.thresholds
        out.append(Finding("info", "memory", "MemTotal %s, MemAvailable %s; lines: reclaim %s, terminate %s, kill %s"
                           % (_mib(total), _mib(mem.get("MemAvailable", 0)), _mib(t.reclaim.bytes_for(total)),
                              _mib(t.terminate.bytes_for(total)), _mib(t.kill.bytes_for(total)))))
        ram = config.board_info.ram_mib
        if ram and total > ram * MIB * 1.05:
            out.append(Finding("warn", "memory", "MemTotal %s is more than board %r's %d MiB: is this the right board?"
                               % (_mib(total), config.board, ram)))
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
        out.append(Finding("info", "swap", text + ": anonymous memory cannot be reclaimed, only freed"))
    thp = _read(os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"))
    if thp is None:
        out.append(Finding("info", "thp", "transparent huge pages not built in"))
    else:
        mode = thp.split("[", 1)[1].split("]", 1)[0] if "[" in thp else thp.strip()
        if mode == "always" and total and total < 2048 * MIB:
            out.append(Finding("warn", "thp", "transparent huge pages: always; on a small board khugepaged can grow a "
                               "sparse heap by 2 MiB at a time: madvise is the usual choice "
                               "(transparent_hugepage=madvise)"))
        else:
            out.append(Finding("info", "thp", "transparent huge pages: %s" % mode))
    vmstat = _read(os.path.join(proc_root, "vmstat")) or ""
    for line in vmstat.splitlines():
        if line.startswith("oom_kill "):
            n = int(line.split()[1])
            out.append(Finding("info" if n == 0 else "warn", "oom-kills",
                               "the kernel's OOM killer has fired %d times since boot" % n))
    return out


def audit(loaded: LoadedConfig, proc_root: str = "/proc", sys_root: str = "/sys", fs_root: str = "/") -> List[Finding]:
    """Every finding about the running system, for a valid config."""
    config = loaded.config
    out = [Finding("ok", "config", "%s; files: %s" % (loaded.why, ", ".join(loaded.files) or "(none)"),
                   {"board": config.board, "files": list(loaded.files)})]
    out += [Finding("info", "config", note) for note in loaded.notes]
    out += audit_psi(config, proc_root)
    out += audit_capabilities(config, proc_root)
    out += audit_processes(config, proc_root)
    out += audit_commands(config, fs_root)
    out += audit_sysctls(config, proc_root)
    out += audit_memory(config, proc_root, sys_root)
    return out


# ------------------------------------------------------------------------------ offline

def _in_root(root: str, path: str) -> str:
    """An absolute --config path names a file of the target root when it exists there."""
    if os.path.isabs(path):
        inside = os.path.join(root, path.lstrip("/"))
        if os.path.exists(inside):
            return inside
    return path


def audit_offline(config_path: Optional[str], board: Optional[str], root: str) -> Tuple[List[Finding], bool]:
    """(findings, config valid) for a target rootfs."""
    local = [os.path.join(root, d.lstrip("/")) for d in LOCAL_BOARDS_DIRS]
    boards = available_boards(local)
    targets: List[Tuple[str, str]] = []
    if config_path is not None and board is not None:
        return [Finding("error", "config", "give --config PATH or --board NAME, not both")], False
    if config_path is not None:
        targets.append((_in_root(root, config_path), "given by --config"))
    elif board is not None:
        if board not in boards:
            import difflib

            close = difflib.get_close_matches(board, list(boards), n=1)
            hint = "did you mean '%s'?" % close[0] if close else "known boards: " + ", ".join(sorted(boards))
            return [Finding("error", "config", "--board %s: no such board; %s" % (board, hint))], False
        targets.append((boards[board], "given by --board"))
    else:
        targets += [(p, "board file") for _, p in sorted(boards.items())]
    findings: List[Finding] = []
    valid = True
    for path, how in targets:
        try:
            config, files, notes = load_file(path, boards, check_owner=False)
        except ConfigError as e:
            findings.append(Finding("error", "config", str(e), {"file": e.file, "key": e.key, "line": e.line}))
            valid = False
            continue
        findings.append(Finding("ok", "config", "%s (%s): board %r, %d critical, %d low-priority, %d sysctl; files: %s"
                                % (path, how, config.board, len(config.critical), len(config.low_priority),
                                   len(config.sysctl), ", ".join(files)), {"board": config.board}))
        findings += [Finding("info", "config", n) for n in notes]
        findings += audit_commands(config, root)
    findings.append(Finding("info", "offline", "checked against %s: file ownership, processes and kernel settings "
                            "are checked on the running board" % root))
    return findings, valid


# ------------------------------------------------------------------------------ entry point

def run(config_path: Optional[str], board: Optional[str], root: Optional[str], as_json: bool,
        proc_root: str = "/proc", sys_root: str = "/sys", out: Optional[IO[str]] = None,
        boards_dirs: Optional[Sequence[str]] = None, fs_root: str = "/") -> int:
    out = out or sys.stdout
    loaded: Optional[LoadedConfig] = None
    if root is not None:
        findings, valid = audit_offline(config_path, board, root)
    else:
        try:
            loaded = load_config(config_path, board, proc_root, sys_root, boards_dirs=boards_dirs)
        except ConfigError as e:
            findings = [Finding("error", "config", str(e), {"file": e.file, "key": e.key, "line": e.line})]
            valid = False
        else:
            findings = audit(loaded, proc_root, sys_root, fs_root)
            valid = True
    code = 2 if not valid else 1 if any(f.level == "warn" for f in findings) else 0
    if as_json:
        doc = {
            "exit": code,
            "board": loaded.config.board if loaded else None,
            "why": loaded.why if loaded else None,
            "files": list(loaded.files) if loaded else [],
            "findings": [dict(level=f.level, topic=f.topic, message=f.message, **f.data) for f in findings],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        for f in findings:
            out.write(f.line() + "\n")
        summary = {0: "all well", 1: "warnings", 2: "invalid config"}[code]
        out.write("%d findings: %s\n" % (len(findings), summary))
    return code
