"""Which capabilities the guardian lacks, and what stops working without each: `run` says so
at start (in its start child) and `status` and `audit` report it. Not the daemon's: a module
once imported stays for the process's life.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List

__all__ = ["capabilities", "missing_capability_report", "CAPABILITIES", "STILL_WORKS"]

# The capabilities the guardian cares about, by number (include/uapi/linux/capability.h).
CAPABILITIES = {
    "CAP_DAC_OVERRIDE": 1,
    "CAP_KILL": 5,
    "CAP_NET_ADMIN": 12,
    "CAP_IPC_LOCK": 14,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYSLOG": 34,
}

# What does not work without each (checked against the kernel sources, see the notes).
_CONSEQUENCES = {
    "CAP_KILL": "cannot signal other users' processes (kill/pidfd_send_signal fail with EPERM "
                "unless the guardian's real or effective UID is the victim's real or saved UID)",
    "CAP_IPC_LOCK": "memory not locked: mlockall() is limited by RLIMIT_MEMLOCK, so the guardian may be "
                    "paged out or have its code evicted under the very pressure it must react to",
    "CAP_SYS_RESOURCE": "PSI triggers only with windows that are multiples of 2 s (Linux >= 6.5; "
                        "on 5.13-6.4 the pressure files cannot be opened for writing at all), and the "
                        "guardian cannot lower any oom_score_adj (its own included) below its "
                        "oom_score_adj_min",
    "CAP_SYS_PTRACE": "cannot read other users' (or more privileged) /proc/PID/smaps_rollup, io, environ: "
                      "PSS/swap per process unknown for them",
    "CAP_DAC_OVERRIDE": "cannot write other users' /proc/PID/oom_score_adj, nor root-owned files "
                        "(cgroup memory.reclaim, ...) unless running as UID 0",
    "CAP_NET_ADMIN": "no netlink proc connector (subscribing needs it): a restarted critical daemon is "
                     "found by listing /proc every second, so its oom_score_adj is set up to 1 s late "
                     "instead of within milliseconds",
    "CAP_SYSLOG": "/dev/kmsg unreadable where kernel.dmesg_restrict = 1 (Debian's default): a kernel OOM "
                  "kill is still counted, but its report (cause, cgroup, victim) cannot be read",
    "CAP_SYS_ADMIN": "usually a sign of a confined container: /proc/sys is then often read-only, so "
                     "/proc/sys/vm/drop_caches and compact_memory cannot be written (the kernel itself "
                     "only checks for effective UID 0 on those files, not this capability)",
}


def capabilities(proc_root: str = "/proc") -> Dict[str, bool]:
    """Which of CAPABILITIES this process has in its effective set (CapEff of
    <proc>/self/status). All False if that cannot be read."""
    eff = 0
    try:
        with open(os.path.join(proc_root, "self", "status"), "r", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split(":", 1)[1].strip(), 16)
                    break
    except (OSError, ValueError):
        eff = 0
    return {name: bool(eff >> bit & 1) for name, bit in CAPABILITIES.items()}


# What a guardian without root still does (run and status say so).
STILL_WORKS = ("still works: watching memory and PSI, status, dry-run decisions, and ending "
               "processes of the guardian's own user")


def missing_capability_report(caps: Dict[str, bool]) -> List[str]:
    """One line per missing capability (in CAPABILITIES order): what does not work without it."""
    return ["%s missing: %s" % (name, _CONSEQUENCES[name]) for name in CAPABILITIES if not caps.get(name)]
