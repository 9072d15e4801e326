"""Fixtures shared by unit tests in more than one directory. Unit tests run against fake trees
and pure code only; what needs this machine's kernel is in tests/integration."""
import errno

import pytest

from guardian.analysis.oomreport import strip_prefix
from guardian.kernel.kmsg import KmsgReader


class FakeRing:
    """Stands in for os.read on /dev/kmsg: one record per read, EAGAIN when empty, EPIPE
    when records were overwritten."""

    def __init__(self):
        self.queue = []
        self.seq = 100

    def add(self, *lines, level=4, flags="-", usec=5_000_000):
        for line in lines:
            self.seq += 1
            escaped = line.replace("\\", "\\x5c").replace("\n", "\\x0a")
            self.queue.append(("%d,%d,%d,%s;%s\n" % (level, self.seq, usec, flags, escaped)).encode())

    def add_text(self, text, usec=5_000_000):
        """A saved log's kernel lines as records (without their dmesg/journal prefixes)."""
        messages = [strip_prefix(line)[0] for line in text.splitlines()]
        self.add(*[m for m in messages if m and m.strip()], usec=usec)

    def overwritten(self):
        self.queue.append(BrokenPipeError(errno.EPIPE, "overwritten"))

    def __call__(self, fd, size):
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "empty")
        item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        if len(item) > size:
            self.queue.insert(0, item)
            raise OSError(errno.EINVAL, "buffer too small")
        return item


@pytest.fixture
def ring(tmp_path, monkeypatch):
    """A FakeRing that KmsgReader reads instead of /dev/kmsg; open ring.path."""
    fake = FakeRing()
    monkeypatch.setattr(KmsgReader, "_read", staticmethod(fake))
    path = tmp_path / "kmsg"
    path.write_bytes(b"")
    fake.path = str(path)
    return fake
