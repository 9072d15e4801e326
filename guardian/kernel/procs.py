"""The process table: /proc/<pid>/{stat,status,cmdline,oom_score,oom_score_adj,cgroup}."""
from __future__ import annotations

import os

from guardian.kernel import read_bytes
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple


@record
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    comm: str
    cmdline: Tuple[str, ...]  # empty for kernel threads and zombies
    uid: int  # real uid
    rss: int  # bytes (VmRSS)
    rss_anon: int  # bytes (RssAnon; falls back to rss - RssFile - RssShmem or rss)
    oom_score: int
    oom_score_adj: int
    kthread: bool  # PF_KTHREAD (0x00200000) in stat flags
    cgroup: str  # the v1 memory controller path if mounted, else the v2 path; "" if unknown
    starttime: int  # clock ticks after boot (field 22 of stat): identity together with pid
    swap: int = 0  # bytes swapped out (VmSwap): on zram, RAM too; a runaway's pages live there

    @property
    def held(self) -> int:
        """What ending it gives back: resident and swapped-out memory (as the kernel's OOM
        badness counts it)."""
        return self.rss + self.swap


PF_KTHREAD = 0x00200000

_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_O_DIR = _O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_open = os.open
_read = os.read
_close = os.close

# Errors that mean "this process is gone (or hidden from us)": skip it.
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError)


def _status_kb(status: bytes, key: bytes) -> Optional[int]:
    """The value of a "\nKey:\t   123 kB" line of /proc/PID/status in bytes, None when absent."""
    i = status.find(key)
    if i < 0:
        return None
    i += len(key)
    end = status.find(b"\n", i)
    return int((status[i:end] if end >= 0 else status[i:]).split()[0]) * 1024


def printable(text: str) -> str:
    """Control characters escaped (\\n as \\x0a, ESC as \\x1b): a name any user chooses reaches
    logs, events and terminals, where a newline forges a line and an escape drives the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c)
                   for c in text)


def parse_stat(data: bytes) -> Tuple[str, int, int, int, int]:
    """(comm, ppid, pgrp, flags, starttime) from the text of /proc/PID/stat. comm may hold
    spaces and parentheses: it ends at the LAST ')'. Control characters in it come escaped
    (printable()). Raises ValueError/IndexError when garbled."""
    close = data.rindex(b")")
    comm = printable(data[data.index(b"(") + 1:close].decode("utf-8", "replace"))
    rest = data[close + 2:].split(None, 20)  # rest[0] is field 3 (state), rest[19] field 22
    return comm, int(rest[1]), int(rest[2]), int(rest[6]), int(rest[19])


def _cgroup_line_path(data: bytes, start: int) -> str:
    end = data.find(b"\n", start)
    return (data[start:end] if end >= 0 else data[start:]).decode("utf-8", "replace")


def parse_cgroup(data: bytes) -> str:
    """The memory cgroup path from the text of /proc/PID/cgroup: the path of the v1
    hierarchy whose controllers include "memory" when there is one (a memory controller
    bound to v1 is absent from the v2 tree, so on hybrid systems the "0::" path says nothing
    about memory), else the path of the v2 line "0::/path"; "" when neither is there."""
    # Fast path for the usual shapes "N:memory:/path" and "0::/path".
    i = data.find(b":memory:")
    if i >= 0:
        line_start = data.rfind(b"\n", 0, i) + 1
        if data[line_start:i].isdigit():
            return _cgroup_line_path(data, i + 8)
    elif b"memory" not in data:
        if data.startswith(b"0::"):
            return _cgroup_line_path(data, 3)
        i = data.find(b"\n0::")
        return _cgroup_line_path(data, i + 4) if i >= 0 else ""
    # General case: "memory" shares a hierarchy ("5:cpu,memory:/x") or appears in a path.
    v2 = ""
    for line in data.split(b"\n"):
        parts = line.split(b":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == b"0" and parts[1] == b"":
            v2 = parts[2].decode("utf-8", "replace")
        elif b"memory" in parts[1].split(b","):
            return parts[2].decode("utf-8", "replace")
    return v2


def _read_proc(pid: int, proc_root: str) -> Optional[ProcInfo]:
    # Every file is opened relative to one descriptor of /proc/PID: if the pid dies and is
    # reused mid-read, the reads fail (ENOENT/ESRCH) instead of mixing two processes.
    # The reads are inlined (one open, one read, one close each): this runs for every
    # process on every tick. procfs returns a short read only at end of file; a read that
    # fills the buffer goes through read_bytes to get the rest.
    dfd = _open("%s/%d" % (proc_root, pid), _O_DIR)
    try:
        fd = _open("stat", _O_RDONLY, dir_fd=dfd)
        try:
            stat = _read(fd, 1024)
        finally:
            _close(fd)
        if len(stat) == 1024:
            stat = read_bytes("stat", dfd, 4096)
        if not stat:
            return None  # reaped between open and read
        comm, ppid, pgid, flags, starttime = parse_stat(stat)
        kthread = bool(flags & PF_KTHREAD)

        rss: Optional[int]  # None while read from status, where VmRSS and RssAnon may be absent
        rss_anon: Optional[int]
        args: Tuple[str, ...]
        if kthread:
            # A kernel thread has no mm: no VmRSS, no cmdline, oom_score 0, and it runs
            # with the initial credentials; it never matches an entry nor is ended, so its
            # cgroup says nothing either. Skip five reads: kernel threads are often half of a
            # small board's process table, read when memory is short, where every open waits.
            return ProcInfo(pid, ppid, pgid, comm, (), 0, 0, 0, 0, 0, True, "", starttime, 0)
        fd = _open("status", _O_RDONLY, dir_fd=dfd)
        try:
            status = _read(fd, 4096)
        finally:
            _close(fd)
        if len(status) == 4096:
            status = read_bytes("status", dfd, 16384)
        i = status.find(b"\nUid:")
        if i < 0:
            return None  # empty (reaped) or garbled
        uid = int(status[i + 5:status.find(b"\n", i + 5)].split()[0])
        rss = _status_kb(status, b"\nVmRSS:")  # absent for zombies
        swap = _status_kb(status, b"\nVmSwap:") or 0
        if rss is None:
            rss = rss_anon = 0
        else:
            rss_anon = _status_kb(status, b"\nRssAnon:")  # kernel >= 4.5
            if rss_anon is None:
                rss_file = _status_kb(status, b"\nRssFile:")
                rss_shmem = _status_kb(status, b"\nRssShmem:")
                if rss_file is None and rss_shmem is None:
                    rss_anon = rss
                else:
                    rss_anon = max(rss - (rss_file or 0) - (rss_shmem or 0), 0)

        fd = _open("cmdline", _O_RDONLY, dir_fd=dfd)
        try:
            cmdline = _read(fd, 4096)
        finally:
            _close(fd)
        if len(cmdline) == 4096:
            cmdline = read_bytes("cmdline", dfd, 65536)
        if cmdline:
            argv = cmdline.decode("utf-8", "replace").split("\0")
            if argv[-1] == "":
                while argv and argv[-1] == "":
                    argv.pop()
            args = tuple(argv)
        else:
            args = ()

        fd = _open("oom_score", _O_RDONLY, dir_fd=dfd)
        try:
            oom_score = int(_read(fd, 64))
        finally:
            _close(fd)
        try:
            fd = _open("oom_score_adj", _O_RDONLY, dir_fd=dfd)
        except FileNotFoundError:
            oom_score_adj = 0  # kernel < 2.6.36
        else:
            try:
                oom_score_adj = int(_read(fd, 64))
            finally:
                _close(fd)

        try:
            fd = _open("cgroup", _O_RDONLY, dir_fd=dfd)
        except FileNotFoundError:
            cgroup = ""  # kernel without CONFIG_CGROUPS
        else:
            try:
                data = _read(fd, 4096)
            finally:
                _close(fd)
            if len(data) == 4096:
                data = read_bytes("cgroup", dfd, 65536)
            cgroup = parse_cgroup(data) if data else ""
    finally:
        _close(dfd)

    return ProcInfo(pid, ppid, pgid, comm, args, uid, rss, rss_anon, oom_score, oom_score_adj, kthread, cgroup,
                    starttime, swap)


def read_proc(pid: int, proc_root: str = "/proc") -> Optional[ProcInfo]:
    """One process, or None if it vanished (or turned out garbled) while being read.
    Zombies that can still be read come back with rss 0 and an empty cmdline. Errors that
    are not about this process (EMFILE, ENOMEM, ...) propagate."""
    try:
        return _read_proc(pid, proc_root)
    except _GONE:
        return None
    except (ValueError, IndexError):
        return None  # garbled: one odd process must not break the table


def list_pids(proc_root: str = "/proc") -> Tuple[int, ...]:
    """Numeric directory names of <proc>, i.e. thread-group leaders (sorted)."""
    try:
        names = os.listdir(proc_root)
    except FileNotFoundError:
        return ()
    return tuple(sorted(int(n) for n in names if n.isdigit()))


def read_procs(proc_root: str = "/proc", pids: Optional[Iterable[int]] = None) -> Tuple[ProcInfo, ...]:
    """Every readable process (or those in pids). Vanished processes are skipped silently."""
    if pids is None:
        pids = list_pids(proc_root)
    out: List[ProcInfo] = []
    append = out.append
    for pid in pids:
        info = read_proc(pid, proc_root)
        if info is not None:
            append(info)
    return tuple(out)


def read_comm(pid: int, proc_root: str = "/proc") -> Optional[str]:
    """/proc/PID/comm (one small read), or the comm field of stat where there is no comm
    file (kernels before 2.6.33, fake trees). None when the process is gone."""
    for name in ("comm", "stat"):
        try:
            fd = os.open("%s/%d/%s" % (proc_root, pid, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        try:
            data = os.read(fd, 512)
        except OSError:
            return None
        finally:
            os.close(fd)
        if name == "comm":
            return data.decode("utf-8", "replace").rstrip("\n")
        try:
            return data[data.index(b"(") + 1:data.rindex(b")")].decode("utf-8", "replace")
        except ValueError:
            return None
    return None


def read_cmdline_text(pid: int, proc_root: str = "/proc", max_chars: int = 512) -> Optional[str]:
    """The command line joined by spaces (as cmdline matching sees it), its first max_chars
    characters only: whoever starts a process chooses it, up to megabytes. None when gone."""
    try:
        fd = os.open("%s/%d/cmdline" % (proc_root, pid), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        left = 4 * max_chars  # UTF-8: at most 4 bytes a character
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    args = b"".join(chunks).decode("utf-8", "replace").split("\0")
    while args and args[-1] == "":
        args.pop()
    return " ".join(args)[:max_chars]
