"""guardian._rest.socket (guardian/_rest.c), which the daemon uses in place of _socket.socket where
the extension is built: each method, on real AF_UNIX and netlink sockets, through both, with the
same results, the same addresses and the same exceptions."""
import _socket
import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import warnings

import pytest

from guardian.kernel import sockets, uevent
from tests.support import REPO
from tests.support.tools import NO_EXTENSION, fallback_and_extension

try:
    from guardian._rest import socket as rest_socket
except ImportError:  # not built, or built before it had sockets
    rest_socket = None

pytestmark = pytest.mark.integration

NETLINK_ROUTE = 0
NETLINK_KOBJECT_UEVENT = 15


@pytest.fixture(params=fallback_and_extension(_socket.socket, "_socket", rest_socket))
def Socket(request):
    return request.param


def _unique(tag):
    return "guardian-test-%d-%s" % (os.getpid(), tag)


def test_the_daemon_uses_the_extension_where_it_is_built():
    if rest_socket is None:
        pytest.skip(NO_EXTENSION)
    assert sockets.Socket is rest_socket


def test_the_constants_are_the_kernels():
    for name in ("AF_UNIX", "AF_NETLINK", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_NONBLOCK", "SOCK_CLOEXEC"):
        assert getattr(sockets, name) == getattr(_socket, name), name


def test_a_datagram_pair_by_path(Socket, tmp_path):
    server_path, client_path = str(tmp_path / "server"), str(tmp_path / "client")
    server = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        server.bind(server_path)
        assert (server.family, server.type, server.proto) == (_socket.AF_UNIX, _socket.SOCK_DGRAM, 0)
        client.connect(server_path.encode())
        assert client.send(b"one") == 3
        assert server.recvfrom(100) == (b"one", None)  # an unbound sender has no address
        assert client.send(b"two", _socket.MSG_DONTWAIT) == 3
        assert server.recv(100, _socket.MSG_PEEK) == b"two"
        assert server.recv(2) == b"tw"  # the rest of the datagram is dropped
        client.bind(client_path.encode())
        assert client.sendto(b"three", server_path) == 5
        assert server.recvfrom(100) == (b"three", client_path)
        assert client.sendto(bytearray(b"four"), server_path.encode()) == 4
        assert server.recvfrom(100, _socket.MSG_DONTWAIT) == (b"four", client_path)
        client.send(b"")
        assert server.recvfrom(0) == (b"", client_path)  # recvfrom reads the empty datagram
        client.send(b"five")
        server.setblocking(False)  # were "five" read below, the last recv fails rather than hangs
        assert server.recv(0) == b""  # recv(0) reads nothing, even the next datagram
        assert server.recv(100) == b"five"
    finally:
        server.close()
        client.close()


def test_a_datagram_pair_by_abstract_name(Socket):
    """sd_notify's '@name' is "\\0name": no file, and the name is all its bytes."""
    server_name, client_name = "\0" + _unique("server"), b"\0" + _unique("client").encode()
    server = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    autobound = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        server.bind(server_name)
        client.bind(client_name)
        assert client.sendto(b"READY=1", server_name) == 7
        assert server.recvfrom(100) == (b"READY=1", client_name)
        autobound.bind("")  # the kernel picks a name: NUL and five hex digits
        autobound.sendto(b"x", server_name.encode())
        data, address = server.recvfrom(100)
        assert data == b"x" and isinstance(address, bytes) and address[:1] == b"\0" and len(address) == 6
        client.connect(address)
        client.send(b"back")
        assert autobound.recvfrom(100) == (b"back", client_name)
    finally:
        server.close()
        client.close()
        autobound.close()


def test_a_stream_connection(Socket, tmp_path):
    path = str(tmp_path / "stream")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        assert client.type == _socket.SOCK_STREAM
        client.connect(path)
        conn, _ = listener.accept()
        with conn:
            assert client.send(b"<30>guardian[1]: hello\0") == 23
            assert conn.recv(100) == b"<30>guardian[1]: hello\0"
            conn.sendall(b"xyz")
            assert client.recv(2) == b"xy"
            assert client.recvfrom(10) == (b"z", path)  # the listener's name
        assert client.recv(10) == b""  # the peer closed
    finally:
        client.close()
        listener.close()


def test_syslog_needs_a_datagram_or_a_stream_socket_and_the_kernel_says_which(Socket, tmp_path):
    """eventlog._Syslog tries a datagram socket, then a stream one on EPROTOTYPE."""
    path = str(tmp_path / "devlog")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError) as raised:
            client.connect(path)
        assert raised.value.errno == errno.EPROTOTYPE
    finally:
        client.close()
        server.close()


def test_non_blocking(Socket):
    s = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC)
    try:
        assert s.type == _socket.SOCK_DGRAM  # without the flags
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        with pytest.raises(BlockingIOError):
            s.recv(100)
        with pytest.raises(BlockingIOError):
            s.recvfrom(100)
        s.setblocking(True)
        assert not fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        s.setblocking(False)
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        with pytest.raises(BlockingIOError):
            s.recv(100)
    finally:
        s.close()


def test_a_full_queue_refuses_a_non_blocking_send(Socket):
    name = "\0" + _unique("full")
    server = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        server.bind(name)
        client.connect(name)
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            for _ in range(100000):  # the receiver's queue holds a few hundred at most
                client.send(b"x" * 1000)
    finally:
        client.close()
        server.close()


def test_always_close_on_exec(Socket):
    s = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        assert not os.get_inheritable(s.fileno())
    finally:
        s.close()


def test_close_is_idempotent_and_then_every_call_is_ebadf(Socket):
    s = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    fd = s.fileno()
    assert fd >= 0
    s.close()
    assert s.fileno() == -1
    s.close()
    with pytest.raises(OSError) as raised:
        os.fstat(fd)
    assert raised.value.errno == errno.EBADF
    for call in (lambda: s.recv(1), lambda: s.recvfrom(1), lambda: s.send(b"x"), lambda: s.sendto(b"x", "\0x"),
                 lambda: s.bind("\0" + _unique("closed")), lambda: s.connect("\0x"), lambda: s.setblocking(False)):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == errno.EBADF
    assert s.recv(0) == b""  # nothing asked, no call made


def test_detach_leaves_the_descriptor_open(Socket):
    s = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    fd = s.fileno()
    assert s.detach() == fd
    assert s.fileno() == -1
    s.close()
    try:
        os.fstat(fd)
    finally:
        os.close(fd)


def test_the_descriptor_is_closed_with_the_object(Socket):
    s = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    fd = s.fileno()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del s
    with pytest.raises(OSError):
        os.fstat(fd)
    if Socket is not _socket.socket:
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []  # unlike _socket's


def test_the_kernels_uevents_come_from_port_0(Socket):
    s = Socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC,
               NETLINK_KOBJECT_UEVENT)
    try:
        assert (s.family, s.type, s.proto) == (_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
        s.bind((0, uevent.KERNEL_GROUP))
        try:
            with open("/sys/devices/virtual/mem/null/uevent", "w") as f:
                f.write("change")
        except OSError as exc:
            pytest.skip("cannot trigger a uevent: %s" % exc)
        s.setblocking(True)
        while True:
            data, address = s.recvfrom(16384)
            if data.startswith(b"change@/devices/virtual/mem/null\0"):
                break
        assert address == (0, 1)  # the kernel's port, and the group's bit
        assert uevent.parse_uevent(data).name == "null"
    finally:
        s.close()


def test_a_uevent_from_a_process_is_not_the_kernels(Socket):
    """Any process may send to a uevent socket's port: its port, not 0, says it is not the kernel,
    and uevent.receive() drops what it sent."""
    base = 0x7F000000 + (os.getpid() & 0xFFFF) * 16
    receiver = Socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM | _socket.SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT)
    sender = Socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    try:
        receiver.bind((base + 1, 0))
        sender.bind((base + 2, 0))
        forged = b"add@/devices/system/memory/memory9\0ACTION=add\0SUBSYSTEM=memory\0"
        assert sender.sendto(forged, (base + 1, 0)) == len(forged)
        assert receiver.recvfrom(16384) == (forged, (base + 2, 0))
        sender.connect((base + 1, 0))
        sender.send(forged)
        assert uevent.receive(receiver) == b""
        assert uevent.receive(receiver) is None  # none left
    finally:
        receiver.close()
        sender.close()


def test_a_route_dump_comes_from_the_kernel(Socket):
    """A NETLINK_ROUTE request (RTM_GETLINK, dump) and the kernel's reply, from (0, 0)."""
    s = Socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_ROUTE)
    try:
        s.bind((0, 0))  # the kernel picks the port
        request = struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + struct.pack("=BxHiII", 0, 0, 0, 0, 0)
        assert s.sendto(request, (0, 0)) == 32
        data, address = s.recvfrom(65536)
        assert address == (0, 0)
        length, kind, _flags, seq, port = struct.unpack_from("=IHHII", data)
        assert kind in (16, 3) and seq == 1 and port != 0 and 16 <= length <= len(data)  # RTM_NEWLINK or DONE
    finally:
        s.close()


def _outcome(call, arg):
    try:
        return "returned", call(arg)
    except Exception as exc:  # the exception's type and errno (a few messages differ in their words)
        return type(exc), getattr(exc, "errno", None)


def _calls(directory):
    """(what, the socket's arguments or None for the constructor's, the call)"""
    unix = (_socket.AF_UNIX, _socket.SOCK_DGRAM)
    netlink = (_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    taken = os.path.join(directory, "taken")
    open(taken, "w").close()
    return [
        ("family not an int", None, lambda S: S("x", _socket.SOCK_DGRAM)),
        ("bad type", None, lambda S: S(_socket.AF_UNIX, 12345)),
        ("bad protocol", None, lambda S: S(_socket.AF_NETLINK, _socket.SOCK_DGRAM, 12345)),
        ("unknown keyword", None, lambda S: S(_socket.AF_UNIX, _socket.SOCK_DGRAM, flavour=1)),
        ("keywords", None, lambda S: S(family=_socket.AF_UNIX, type=_socket.SOCK_DGRAM, proto=0).close()),
        ("path an int", unix, lambda s: s.bind(5)),
        ("path None", unix, lambda s: s.bind(None)),
        ("path a tuple", unix, lambda s: s.bind((1, 2))),
        ("path too long", unix, lambda s: s.bind("x" * 108)),
        ("abstract too long", unix, lambda s: s.bind(b"\0" + b"x" * 108)),
        ("abstract at the longest", unix, lambda s: s.bind(b"\0" + _unique("x").encode().ljust(107, b"x"))),
        ("path not UTF-8", unix, lambda s: s.bind(os.path.join(directory, "\udcff"))),
        ("path as a bytearray", unix, lambda s: s.bind(bytearray(os.path.join(directory, "b").encode()))),
        ("path in no directory", unix, lambda s: s.bind(os.path.join(directory, "none", "x"))),
        ("path taken", unix, lambda s: s.bind(taken)),
        ("connect to nothing", unix, lambda s: s.connect(os.path.join(directory, "absent"))),
        ("connect to a file", unix, lambda s: s.connect(taken)),
        ("connect to no name", unix, lambda s: s.connect("\0" + _unique("nobody"))),
        ("sendto nobody", unix, lambda s: s.sendto(b"x", "\0" + _unique("nobody"))),
        ("sendto no address", unix, lambda s: s.sendto(b"x")),
        ("sendto an int", unix, lambda s: s.sendto(b"x", 5)),
        ("send a str", unix, lambda s: s.send("text")),
        ("send unconnected", unix, lambda s: s.send(b"x")),
        ("send flags a str", unix, lambda s: s.send(b"x", "0")),
        ("recv negative", unix, lambda s: s.recv(-1)),
        ("recvfrom negative", unix, lambda s: s.recvfrom(-1)),
        ("recv a str", unix, lambda s: s.recv("1")),
        ("recv no size", unix, lambda s: s.recv()),
        # No setblocking(None), (1.0) or ("yes"): socket refuses them up to Python 3.12 and takes
        # any truth value from 3.13 on; ours takes an int (the daemon passes a bool).
        ("family read-only", unix, lambda s: setattr(s, "family", 2)),
        ("netlink address a str", netlink, lambda s: s.bind("x")),
        ("netlink address of one", netlink, lambda s: s.bind((1,))),
        ("netlink address of three", netlink, lambda s: s.bind((1, 2, 3))),
        ("netlink pid a str", netlink, lambda s: s.bind(("a", 1))),
        ("netlink sendto a path", netlink, lambda s: s.sendto(b"x", "/x")),
        ("netlink sendto a list", netlink, lambda s: s.sendto(b"x", [0, 0])),
    ]


@pytest.mark.skipif(rest_socket is None, reason=NO_EXTENSION)
def test_arguments_are_taken_and_refused_as_by_socket(tmp_path):
    outcomes = {}
    for Socket in (_socket.socket, rest_socket):
        directory = str(tmp_path / Socket.__module__)
        os.mkdir(directory)
        for what, args, call in _calls(directory):
            if args is None:
                outcomes.setdefault(what, []).append(_outcome(call, Socket))
                continue
            s = Socket(*args)
            try:
                outcomes.setdefault(what, []).append(_outcome(call, s))
            finally:
                s.close()
    differ = {what: both for what, both in outcomes.items() if both[0] != both[1]}
    assert differ == {}
    taken = sorted(what for what, both in outcomes.items() if both[0][0] == "returned")
    assert taken == ["abstract at the longest", "keywords", "path as a bytearray", "path not UTF-8"]


def test_a_signal_runs_its_handler_and_the_wait_goes_on(Socket):
    """PEP 475: an interrupted recv runs the signal handlers and waits again; a handler's exception
    ends the wait."""
    name = "\0" + _unique("signal")
    server = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    client = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    handled = []

    class Stop(Exception):
        pass

    def count(signum, frame):
        handled.append(signum)

    def stop(signum, frame):
        raise Stop()

    previous = signal.signal(signal.SIGALRM, count)
    try:
        server.bind(name)
        later = threading.Timer(0.3, client.sendto, (b"late", name))
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        later.start()
        assert server.recv(100) == b"late"
        signal.setitimer(signal.ITIMER_REAL, 0)
        later.join()
        assert handled
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Stop):
            server.recv(100)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        server.close()
        client.close()


# A thread waits in recv while the main thread sends it the datagram: only if recv lets go of the
# GIL. Run in a child, which a held GIL would hang (the timeout ends it).
_GIL = r"""
import _socket, os, sys, threading, time
if sys.argv[1] == "_socket":
    Socket = _socket.socket
else:
    from guardian._rest import socket as Socket
name = "\0guardian-gil-%d" % os.getpid()
server, client = Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM), Socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
server.bind(name)
got, waiting = [], threading.Event()
def wait():
    waiting.set()
    got.append(server.recv(100))
t = threading.Thread(target=wait)
t.start()
waiting.wait()
time.sleep(0.2)  # the thread is in recv by now
client.sendto(b"through", name)
t.join()
print(got[0].decode())
"""


def test_a_blocked_recv_lets_other_threads_run(Socket):
    which = "_socket" if Socket is _socket.socket else "extension"
    out = subprocess.run([sys.executable, "-c", _GIL, which], env=dict(os.environ, PYTHONPATH=REPO),
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=20, check=True).stdout
    assert out == "through\n"
