"""/dev/kmsg, the kernel log: one record per read(), read from where we left off.

`parse_record` turns one record's bytes into a KmsgRecord (pure); `KmsgReader` keeps the
descriptor open across ticks and yields the records logged since its last call, joining the
pieces of continued lines; `read_kmsg_lines` reads all the log still holds, for
`guardian diagnose`. Unlike the other readers it keeps a descriptor and logs when a read fails
midway: the daemon's watcher stops explaining kernel OOM kills from then on, and says so once.
"""
from __future__ import annotations

import errno
import os

from guardian.kernel import close_quietly
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, List, Optional, Tuple


KMSG_PATH = "/dev/kmsg"
_HEX = b"0123456789abcdefABCDEF"


def _unescape(message: bytes) -> bytes:
    """The kernel's \\xNN escapes back to bytes (without re: it costs ~0.9 MiB resident)."""
    parts = message.split(b"\\x")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
            out.append(bytes((int(part[:2], 16),)) + part[2:])
        else:
            out.append(b"\\x" + part)
    return b"".join(out)


class KmsgRecord:
    __slots__ = ("level", "seq", "ts", "flags", "message")

    def __init__(self, level: int, seq: int, ts: float, flags: str, message: str):
        self.level = level  # 0 (emerg) .. 7 (debug)
        self.seq = seq
        self.ts = ts  # seconds since boot
        self.flags = flags  # "-" whole line, "c" starts a continued line, "+" continues one (old kernels)
        self.message = message


def parse_record(data: bytes) -> Optional[KmsgRecord]:
    """One read() of /dev/kmsg: "prio,seq,usec,flags[,..];message\\n[ KEY=value\\n...]".
    None for a record of another shape."""
    head, sep, rest = data.partition(b";")
    if not sep:
        return None
    parts = head.split(b",")
    if len(parts) < 3:
        return None
    try:
        prio, seq, usec = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    flags = parts[3].decode("ascii", "replace") if len(parts) > 3 else "-"
    message = rest.split(b"\n", 1)[0]  # continuation lines " KEY=value" are device metadata
    if b"\\x" in message:
        message = _unescape(message)
    return KmsgRecord(prio & 7, seq, usec / 1e6, flags, message.decode("utf-8", "replace"))


class KmsgReader:
    """/dev/kmsg opened O_RDONLY|O_NONBLOCK; each read() returns one record. `from_end`
    starts after the records already there (SEEK_END), else at the oldest still held."""

    _read = staticmethod(os.read)  # tests put a fake ring buffer here

    def __init__(self, path: str = KMSG_PATH, from_end: bool = True):
        self.path = path
        self.fd: Optional[int] = None
        self.error: Optional[str] = None
        self.lost = 0  # times records were overwritten before we read them (EPIPE)
        self._partial: Optional[KmsgRecord] = None  # a "c" record awaiting its "+" pieces
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            self.error = "%s: %s" % (path, exc.strerror or exc)
            if exc.errno in (errno.EPERM, errno.EACCES):
                self.error += " (kernel.dmesg_restrict=1 needs CAP_SYSLOG)"
            return
        if from_end:
            try:
                os.lseek(self.fd, 0, os.SEEK_END)
            except OSError as exc:  # a plain file (tests) or an odd kernel: read it all
                log.debug("cannot seek %s to its end: %s", path, exc)

    def fileno(self) -> Optional[int]:
        return self.fd

    def records(self, limit: int = 20000) -> Iterator[KmsgRecord]:
        """The records logged since the last call (at most `limit`; the rest next time)."""
        if self.fd is None:
            return
        bufsize = 8192
        n = 0
        while n < limit:
            try:
                data = self._read(self.fd, bufsize)
            except BlockingIOError:
                break
            except BrokenPipeError:  # EPIPE: the ring buffer overwrote records we had not read
                self.lost += 1
                continue
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINVAL and bufsize < 65536:
                    bufsize = 65536  # a record larger than the buffer
                    continue
                self.error = "%s: %s" % (self.path, exc.strerror or exc)
                log.warning("reading %s failed: %s; kernel OOM reports without details from now on",
                            self.path, exc.strerror or exc)
                self.close()
                break
            if not data:
                break  # a plain file at its end
            n += 1
            record = parse_record(data)
            if record is None:
                continue
            # Kernels before 4.9 wrote pr_cont pieces as records of their own.
            if "+" in record.flags and self._partial is not None:
                p = self._partial
                self._partial = KmsgRecord(p.level, p.seq, p.ts, p.flags, p.message + record.message)
                continue
            if self._partial is not None:
                yield self._partial
                self._partial = None
            if "c" in record.flags:
                self._partial = record
                continue
            yield record
        if self._partial is not None and n < limit:
            yield self._partial
            self._partial = None

    def close(self) -> None:
        self.fd = close_quietly(self.fd)


def read_kmsg_lines(path: str = KMSG_PATH) -> Tuple[List[Tuple[str, float]], Optional[str], int]:
    """Everything the kernel log still holds, for `guardian diagnose` without --log:
    ([(message, seconds since boot)], error, records lost)."""
    reader = KmsgReader(path, from_end=False)
    if reader.fd is None:
        return [], reader.error, 0
    try:
        lines = [(line, r.ts) for r in reader.records(limit=1 << 22) for line in r.message.split("\n")]
    finally:
        reader.close()
    return lines, None, reader.lost
