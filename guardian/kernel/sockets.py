"""The daemon's sockets without _socket, Python's socket module in C (~0.1-0.2 MiB resident:
the library, locked by mlockall, and its objects; socket.py, over it, builds enums: ~1 MiB).

Socket is guardian._rest.socket where the C extension is built: the part of _socket.socket the
daemon uses (AF_UNIX and AF_NETLINK; guardian/_rest.c). Else _socket.socket, imported only then.
The constants are Linux's on the boards the guardian runs on (x86_64, arm64, armhf: not MIPS,
where SOCK_STREAM and SOCK_DGRAM are swapped), as plain ints."""
try:
    from guardian._rest import socket as Socket
except ImportError:  # not built (no compiler at install), or built before it had sockets
    from _socket import socket as Socket  # type: ignore[assignment]  # noqa: F401

AF_UNIX = 1
AF_NETLINK = 16
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000
