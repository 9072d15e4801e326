"""The netlink proc connector: the kernel's stream of process events, heard on a socket.

NETLINK_CONNECTOR, CN_IDX_PROC, PROC_CN_MCAST_LISTEN: once subscribed, the kernel sends an
event for every fork, exec, exit, id change and comm change on the machine. A classic BPF
filter on the socket drops in the kernel all but the exec and comm events of thread-group
leaders, so a listener wakes only when a program starts or renames itself: nothing at idle. Subscribing needs
CAP_NET_ADMIN and the initial PID namespace; elsewhere the kernel ignores the subscription
silently, so open_proc_connector() checks that an event really arrives.

parse_events() is the pure part: the (what, pid, tgid) of each event in a datagram.
"""
from __future__ import annotations

import errno
import os
import struct
import time

from guardian.kernel.libc import POLLIN, libc, poll
from guardian.kernel.sockets import AF_NETLINK, SOCK_CLOEXEC, SOCK_DGRAM, Socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_COMM = 0x00000200
NLMSG_DONE = 3
NLMSG_ERROR = 2
NLMSG_OVERRUN = 4

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid: 16 bytes
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags: 20 bytes
_EVENT_HDR = struct.Struct("=IIQ")  # what, cpu, timestamp_ns: 16 bytes
_PIDS = struct.Struct("=ii")  # process_pid, process_tgid (exec and comm events)
_WHAT_OFF = _NLMSGHDR.size + _CN_MSG.size  # 36
_DATA_OFF = _WHAT_OFF + _EVENT_HDR.size  # 52


def _be(value: int) -> int:
    """A host-order u32 as a BPF absolute load (which reads big-endian) sees it."""
    return struct.unpack(">I", struct.pack("=I", value))[0]


def _bpf_program() -> bytes:
    """Accept exec and comm events of thread-group leaders; drop everything else."""
    ld_w_abs, st, ldx_mem = 0x20, 0x02, 0x61
    jeq_k, jeq_x, ret_k = 0x15, 0x1d, 0x06
    ins = [
        (ld_w_abs, 0, 0, _WHAT_OFF),  # 0: A = what
        (jeq_k, 2, 0, _be(PROC_EVENT_EXEC)),  # 1: exec -> 4
        (jeq_k, 1, 0, _be(PROC_EVENT_COMM)),  # 2: comm -> 4
        (ret_k, 0, 0, 0),  # 3: drop
        (ld_w_abs, 0, 0, _DATA_OFF),  # 4: A = pid
        (st, 0, 0, 0),  # 5: M[0] = A
        (ld_w_abs, 0, 0, _DATA_OFF + 4),  # 6: A = tgid
        (ldx_mem, 0, 0, 0),  # 7: X = M[0]
        (jeq_x, 0, 1, 0),  # 8: pid == tgid ? 9 : 10
        (ret_k, 0, 0, 0xFFFFFFFF),  # 9: accept
        (ret_k, 0, 0, 0),  # 10: drop
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


_DROP_ALL = struct.pack("=HBBI", 0x06, 0, 0, 0)  # ret #0


def attach_filter(sock: Socket, drop_all: bool = False) -> bool:
    """Attach (or replace) the socket's classic BPF filter: the exec/comm one, or with drop_all
    one that drops every event in the kernel (the subscription stays). False if it failed."""
    try:
        libc().attach_filter(sock.fileno(), _DROP_ALL if drop_all else _bpf_program())
        return True
    except OSError:
        return False


def _listen_msg(op: int) -> bytes:
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, 0) + cn


def parse_events(data: bytes) -> List[Tuple[int, int, int]]:
    """(what, pid, tgid) of each proc event in one datagram."""
    out = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _, _, _ = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size:
            break
        if mtype == NLMSG_DONE and off + _DATA_OFF + _PIDS.size <= len(data):
            idx, val = struct.unpack_from("=II", data, off + _NLMSGHDR.size)
            if idx == CN_IDX_PROC and val == CN_VAL_PROC:
                what = _EVENT_HDR.unpack_from(data, off + _WHAT_OFF)[0]
                pid, tgid = _PIDS.unpack_from(data, off + _DATA_OFF)
                out.append((what, pid, tgid))
        off += (length + 3) & ~3
    return out


def open_proc_connector(self_test_timeout_s: float = 0.5) -> Tuple[Optional[Socket], str]:
    """A non-blocking socket hearing exec/comm events, and how it went; (None, why) when the
    proc connector cannot be used here."""
    try:
        sock = Socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR)
    except OSError as e:
        return None, "netlink proc connector unavailable: %s" % (e.strerror or e)
    try:
        sock.bind((0, CN_IDX_PROC))
        filtered = attach_filter(sock)
        sock.send(_listen_msg(PROC_CN_MCAST_LISTEN))
        # Self-test: renaming ourselves (to the same name) makes the kernel send a comm event.
        # In a container (not the initial PID namespace) the subscription is silently ignored,
        # and event PIDs would not be ours anyway.
        with open("/proc/self/comm", "rb") as f:
            comm = f.read().rstrip(b"\n")
        with open("/proc/self/comm", "wb") as f:
            f.write(comm)
        me = os.getpid()
        deadline = time.monotonic() + self_test_timeout_s
        heard = False
        while not heard:
            left = deadline - time.monotonic()
            if left <= 0 or not poll(((sock.fileno(), POLLIN),), left):
                break
            data = sock.recv(65536)
            heard = any(what == PROC_EVENT_COMM and pid == me for what, pid, _ in parse_events(data))
        if not heard:
            sock.close()
            return None, "netlink proc connector: no events heard (not in the initial PID namespace?)"
        sock.setblocking(False)
        return sock, "netlink proc connector%s" % (" with an exec/comm BPF filter" if filtered else "")
    except OSError as e:
        sock.close()
        hint = " (needs CAP_NET_ADMIN)" if e.errno in (errno.EPERM, errno.EACCES) else ""
        return None, "netlink proc connector refused: %s%s" % (e.strerror or e, hint)


def close_proc_connector(sock: Socket) -> None:
    """Unsubscribe (best effort), then close the socket."""
    try:
        sock.send(_listen_msg(PROC_CN_MCAST_IGNORE))
    except OSError:
        pass
    sock.close()
