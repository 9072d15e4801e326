"""Memory cgroups, v1 and v2: the scope the guardian may be confined to."""
from __future__ import annotations

import errno
import os

from guardian.kernel import NOT_SUPPORTED, ParseError, read_text
from guardian.kernel.psi import Psi, read_psi_file
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple


@record
class CgroupMemory:
    version: int  # 1 or 2
    path: str  # the directory read
    usage: int  # bytes: v2 memory.current, v1 memory.usage_in_bytes
    limit: Optional[int]  # bytes: v2 memory.max, v1 memory.limit_in_bytes; None = unlimited
    reclaimable: int  # bytes of page cache the kernel can drop: inactive_file (+ active_file) from memory.stat
    anon: int  # bytes: memory.stat anon (v2) / total_rss or rss (v1)
    oom_kill: int  # v2 memory.events oom_kill, v1 memory.oom_control oom_kill (0 when absent)
    psi: Optional[Psi]  # v2 memory.pressure; None for v1


# v1 reports "no limit" as the page counter maximum times the page size: LONG_MAX rounded
# down to a page on 64-bit kernels (9223372036854771712), ULLONG_MAX or LLONG_MAX on
# kernels before 3.19 (res_counter) -- all >= 2**62 -- and LONG_MAX *pages* on 32-bit
# kernels: 0x7fffffff * PAGE_SIZE, 8 TiB with 4 KiB pages.
_V1_UNLIMITED_FLOOR = 2 ** 62
_V1_UNLIMITED_32BIT = frozenset(0x7FFFFFFF * ps for ps in (4096, 16384, 65536))


def v1_limit(value: int) -> Optional[int]:
    """memory.limit_in_bytes as a limit, None for the kernel's spellings of "unlimited"."""
    if value >= _V1_UNLIMITED_FLOOR or value in _V1_UNLIMITED_32BIT:
        return None
    return value


def resolve_cgroup(spec: str, sys_root: str = "/sys") -> str:
    """Turn the user's PATH of --scope cgroup:PATH into a directory: an absolute directory
    is taken as is; a relative path is looked up under <sys>/fs/cgroup (v2 unified or
    /sys/fs/cgroup/unified) and <sys>/fs/cgroup/memory (v1). Raises FileNotFoundError naming
    every place tried.

    A path like "/system.slice/foo.service" (as /proc/PID/cgroup shows it) that is not an
    existing directory is looked up as a relative one. Among the candidates, the first that
    has memory controller files (memory.current or memory.usage_in_bytes) wins, so on hybrid
    systems a v2 directory without the memory controller does not shadow the v1 one."""
    tried = []
    if os.path.isabs(spec):
        if os.path.isdir(spec):
            return spec
        tried.append(spec)
    rel = spec.strip("/")
    base = os.path.join(sys_root, "fs", "cgroup")
    candidates = []
    for root in (base, os.path.join(base, "unified"), os.path.join(base, "memory")):
        candidate = os.path.normpath(os.path.join(root, rel)) if rel else root
        if candidate not in candidates:
            candidates.append(candidate)
    for candidate in candidates:
        tried.append(candidate)
        if _version(candidate) is not None:
            return candidate
    raise FileNotFoundError(
        errno.ENOENT,
        "no memory cgroup %r; tried: %s" % (spec, ", ".join(tried)),
    )


def _version(path: str) -> Optional[int]:
    if os.path.exists(os.path.join(path, "memory.current")):
        return 2
    if os.path.exists(os.path.join(path, "memory.usage_in_bytes")):
        return 1
    return None


def _read(path: str, name: str) -> str:
    """A file of the cgroup; FileNotFoundError when it (or the cgroup) is gone. A cgroup
    removed while its file is open reads as ENODEV: also "gone"."""
    full = os.path.join(path, name)
    try:
        return read_text(full, bufsize=16384)
    except OSError as e:
        if e.errno == errno.ENODEV:
            raise FileNotFoundError(errno.ENOENT, "cgroup is gone", full) from None
        raise


def _read_optional(path: str, name: str) -> Optional[str]:
    """None when the file is absent (older kernel) but the cgroup is still there."""
    try:
        return _read(path, name)
    except FileNotFoundError:
        if not os.path.isdir(path):
            raise
        return None


def _int(text: str, path: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ParseError(os.path.join(path, name), name, "expected an integer, got %r" % text.strip()[:40]) from None


def _keyed(text: str, path: str, name: str) -> Dict[str, int]:
    """ "key value" lines (memory.stat, memory.events, memory.oom_control)."""
    out = {}
    full = os.path.join(path, name)
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(full, parts[0], "expected 'key value', got %r" % line)
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise ParseError(full, parts[0], "expected an integer, got %r" % parts[1]) from None
    return out


def _need(stat: Dict[str, int], keys, path: str, name: str) -> int:
    for key in keys:
        if key in stat:
            return stat[key]
    raise ParseError(os.path.join(path, name), keys[0], "missing (file truncated?)")


def read_cgroup_memory(path: str) -> CgroupMemory:
    """Raises ParseError for garbled files and FileNotFoundError if the cgroup is gone
    (or is not a memory cgroup: neither memory.current nor memory.usage_in_bytes)."""
    version = _version(path)
    if version is None:
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "cgroup is gone", path)
        raise FileNotFoundError(errno.ENOENT, "not a memory cgroup (no memory.current or memory.usage_in_bytes)", path)

    if version == 2:
        usage = _int(_read(path, "memory.current"), path, "memory.current")
        text = _read(path, "memory.max").strip()
        limit = None if text == "max" else _int(text, path, "memory.max")
        stat = _keyed(_read(path, "memory.stat"), path, "memory.stat")
        reclaimable = _need(stat, ("inactive_file",), path, "memory.stat") + _need(
            stat, ("active_file",), path, "memory.stat")
        anon = _need(stat, ("anon",), path, "memory.stat")
        events = _read_optional(path, "memory.events")
        oom_kill = _keyed(events, path, "memory.events").get("oom_kill", 0) if events is not None else 0  # >= 4.13
        try:
            psi = read_psi_file(os.path.join(path, "memory.pressure"))
        except OSError as e:
            if e.errno == errno.ENODEV:
                raise FileNotFoundError(errno.ENOENT, "cgroup is gone", path) from None
            raise
        if psi is None and not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "cgroup is gone", path)
        return CgroupMemory(2, path, usage, limit, reclaimable, anon, oom_kill, psi)

    usage = _int(_read(path, "memory.usage_in_bytes"), path, "memory.usage_in_bytes")
    limit = v1_limit(_int(_read(path, "memory.limit_in_bytes"), path, "memory.limit_in_bytes"))
    stat = _keyed(_read(path, "memory.stat"), path, "memory.stat")
    # total_* include the descendants (use_hierarchy); plain keys on kernels without them.
    reclaimable = _need(stat, ("total_inactive_file", "inactive_file"), path, "memory.stat") + _need(
        stat, ("total_active_file", "active_file"), path, "memory.stat")
    anon = _need(stat, ("total_rss", "rss"), path, "memory.stat")
    oom_control = _read_optional(path, "memory.oom_control")
    oom_kill = (_keyed(oom_control, path, "memory.oom_control").get("oom_kill", 0)
                if oom_control is not None else 0)  # >= 4.13
    return CgroupMemory(1, path, usage, limit, reclaimable, anon, oom_kill, None)


def _read_procs_file(path: str) -> Tuple[int, ...]:
    text = _read(path, "cgroup.procs")
    try:
        return tuple(int(line) for line in text.split())
    except ValueError:
        raise ParseError(os.path.join(path, "cgroup.procs"), "pid", "expected one pid a line") from None


def cgroup_pids(path: str) -> Tuple[int, ...]:
    """cgroup.procs of the cgroup and all its descendants (sorted, without duplicates).
    FileNotFoundError if the cgroup itself is gone; descendants that vanish during the walk
    (and v2 threaded cgroups, whose cgroup.procs cannot be read) are skipped."""
    pids = set(_read_procs_file(path))
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            try:
                pids.update(_read_procs_file(os.path.join(dirpath, name)))
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno not in NOT_SUPPORTED:
                    raise
    return tuple(sorted(pids))
