"""Helpers shared by the bench phases: /proc accounting of a process tree, memory cgroups (the
tests' MemCgroup, tests/support/cgroups.py), machine and version facts, and small statistics.

Nothing here writes outside the bench's own temporary directory and the cgroups it creates.
"""
import os
import platform
import shutil
import statistics
import subprocess
import sys
from typing import Dict, Iterable, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Memory cgroups and stopping a process: the tests' own helpers (tests/support), imported from the
# checkout the way guardian_version imports guardian. The phases take them from here.
sys.path.insert(0, REPO)
try:
    from tests.support.cgroups import CGROUP_FS, MemCgroup  # noqa: E402
    from tests.support.processes import stop_process  # noqa: E402,F401
finally:
    sys.path.pop(0)


# ----------------------------------------------------------------------------------------------
# Small statistics


def median(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], pct: float) -> Optional[float]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(pct / 100.0 * (len(values) - 1)))))
    return values[k]


def fmt(value: Optional[float], digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    return ("%." + str(digits) + "f%s") % (value, unit)


def ratio(value: Optional[float], base: Optional[float]) -> str:
    if value is None or base is None:
        return "–"
    if base == 0:
        return "–" if value == 0 else "∞"
    return "%.2f×" % (value / base)


# ----------------------------------------------------------------------------------------------
# /proc accounting


def read_file(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def children_of(pids: Iterable[int]) -> List[int]:
    """pids and every descendant (a PyInstaller onefile binary is a bootloader and its child)."""
    parents: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = read_file("/proc/%s/stat" % name)
        if not stat:
            continue
        try:
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(name))
    out: List[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(parents.get(pid, ()))
    return out


def cpu_snapshot(pids: Iterable[int]) -> Dict[str, float]:
    """For a set of processes: bytes written (/proc/PID/io: wchar through write(2), write_bytes
    sent to storage), CPU ticks (utime+stime of /proc/PID/stat, whole thread group),
    CPU nanoseconds (sum of each thread's /proc/PID/task/TID/schedstat, much finer than a
    tick) and context switches (summed over threads: /proc/PID/status counts one thread)."""
    ticks = cpu_ns = vol = invol = wchar = write_bytes = 0
    for pid in pids:
        stat = read_file("/proc/%d/stat" % pid)
        if not stat:
            continue
        for line in (read_file("/proc/%d/io" % pid) or "").splitlines():
            if line.startswith("wchar:"):
                wchar += int(line.split()[1])
            elif line.startswith("write_bytes:"):
                write_bytes += int(line.split()[1])
        fields = stat[stat.rindex(")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            sched = read_file("/proc/%d/task/%s/schedstat" % (pid, tid))
            if sched:
                cpu_ns += int(sched.split()[0])
            status = read_file("/proc/%d/task/%s/status" % (pid, tid)) or ""
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return {"ticks": ticks, "cpu_ns": cpu_ns, "voluntary": vol, "involuntary": invol, "wchar": wchar,
            "write_bytes": write_bytes}


def memory_snapshot(pids: Iterable[int]) -> Dict[str, float]:
    """RSS, PSS, private (USS) and locked bytes from smaps_rollup, summed over the processes."""
    out = {"rss": 0, "pss": 0, "private": 0, "locked": 0, "threads": 0}
    keys = {"Rss:": "rss", "Pss:": "pss", "Private_Clean:": "private", "Private_Dirty:": "private",
            "Locked:": "locked"}
    for pid in pids:
        text = read_file("/proc/%d/smaps_rollup" % pid) or ""
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0] in keys:
                out[keys[parts[0]]] += int(parts[1]) * 1024
        status = read_file("/proc/%d/status" % pid) or ""
        for line in status.splitlines():
            if line.startswith("Threads:"):
                out["threads"] += int(line.split()[1])
    return out


# ----------------------------------------------------------------------------------------------
# Memory cgroups


def memory_cgroup_available() -> Optional[str]:
    """None when a memory cgroup can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    try:
        MemCgroup("guardian-bench-probe").destroy()
    except (OSError, RuntimeError) as exc:
        return str(exc)
    return None


# ----------------------------------------------------------------------------------------------
# Machine and versions


def _run(argv: List[str]) -> str:
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        return out.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def dpkg_version(package: str) -> Optional[str]:
    out = _run(["dpkg-query", "-W", "-f", "${Version}", package])
    return out or None


def dpkg_files(package: str) -> List[str]:
    return [line for line in _run(["dpkg", "-L", package]).splitlines() if line.startswith("/")]


def machine_facts() -> Dict[str, str]:
    cpu = ""
    for line in (read_file("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_total = ""
    for line in (read_file("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = "%.0f MiB" % (int(line.split()[1]) / 1024.0)
    os_name = ""
    for line in (read_file("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    swap = "none"
    for line in (read_file("/proc/meminfo") or "").splitlines():
        if line.startswith("SwapTotal:") and int(line.split()[1]) > 0:
            swap = "%.0f MiB" % (int(line.split()[1]) / 1024.0)
    cgroup = "v2 with memory" if "memory" in (read_file(os.path.join(CGROUP_FS, "cgroup.controllers")) or "").split() \
        else ("v1 memory controller" if os.path.isdir(os.path.join(CGROUP_FS, "memory")) else "none")
    return {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu": "%s × %d" % (cpu or "?", os.cpu_count() or 0),
        "memory": mem_total,
        "swap": swap,
        "os": os_name,
        "psi": "yes" if os.path.exists("/proc/pressure/memory") else "no",
        "memory cgroup": cgroup,
        "python": platform.python_version(),
        "clock ticks/s": str(CLK_TCK),
    }


def guardian_version() -> str:
    sys.path.insert(0, REPO)
    try:
        from guardian import __version__
    finally:
        sys.path.pop(0)
    commit = _run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", "guardian"])
    return "%s (git %s%s)" % (__version__, commit or "?", ", guardian/ modified" if dirty else "")


def which(name: str) -> Optional[str]:
    return shutil.which(name) or next((p for p in dpkg_files(name) if os.path.basename(p) == name
                                       and os.access(p, os.X_OK)), None)


# ----------------------------------------------------------------------------------------------
# Counting exec events on the whole machine (what wakes a proc-connector listener)


class ExecCounter:
    """Counts PROC_EVENT_EXEC events of the netlink proc connector in a thread. Needs
    CAP_NET_ADMIN and the initial PID namespace; `error` says why not when it cannot."""

    NETLINK_CONNECTOR, CN_IDX_PROC, PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 11, 1, 1, 2
    PROC_EVENT_EXEC = 0x00000002

    def __init__(self):
        import socket
        import struct
        import threading
        self.count = 0
        self.error: Optional[str] = None
        self._struct = struct
        self._stop = False
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self.NETLINK_CONNECTOR)
            self.sock.bind((os.getpid() | (1 << 30), self.CN_IDX_PROC))
            self.sock.settimeout(0.2)
            self._send(self.PROC_CN_MCAST_LISTEN)
        except OSError as exc:
            self.sock = None
            self.error = "proc connector: %s" % (exc.strerror or exc)
            return
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _send(self, op: int) -> None:
        s = self._struct
        payload = s.pack("=I", op)
        cn = s.pack("=IIIIHH", self.CN_IDX_PROC, 1, 0, 0, len(payload), 0) + payload
        self.sock.send(s.pack("=IHHII", 16 + len(cn), 3, 0, 0, os.getpid() | (1 << 30)) + cn)  # NLMSG_DONE

    def _loop(self) -> None:
        import socket
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            offset = 0
            while offset + 52 <= len(data):
                length = self._struct.unpack_from("=I", data, offset)[0]
                what = self._struct.unpack_from("=I", data, offset + 36)[0]
                if what == self.PROC_EVENT_EXEC:
                    self.count += 1
                if length <= 0:
                    break
                offset += (length + 3) & ~3

    def close(self) -> None:
        self._stop = True
        if self.sock is not None:
            try:
                self._send(self.PROC_CN_MCAST_IGNORE)
            except OSError:
                pass
            self.thread.join(1.0)
            self.sock.close()
