"""guardian.safefile as any user (the directories here are the test user's own). The attacks by
another user, as root, are in tests/integration/test_safefile.py."""
import os
import stat
import time

import pytest

from guardian import safefile
from guardian.core.parts.leakstate import STATE_NAME


def test_write_atomic_uses_a_fresh_random_temp_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "d" / "state.json")
    names = set()
    real_replace = os.replace

    def spy(src, dst, **kw):
        names.add(src)
        return real_replace(src, dst, **kw)

    os.replace = spy
    try:
        for i in range(5):
            safefile.write_atomic(path, b"%d" % i)
    finally:
        os.replace = real_replace
    assert len(names) == 5 and all(n.startswith(".state.json.") and n.endswith(".tmp") for n in names)
    assert os.listdir(str(tmp_path / "d")) == ["state.json"]
    assert open(path, "rb").read() == b"4"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(tmp_path / "d")).st_mode) == 0o755


def test_stale_temp_files_of_a_killed_writer_are_swept_once(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / ".m.prom.0123456789ab.tmp").write_bytes(b"half")
    (d / ".m.prom.notours.tmp").write_bytes(b"keep")
    safefile.write_atomic(str(d / "m.prom"), b"x")
    assert sorted(os.listdir(str(d))) == [".m.prom.notours.tmp", "m.prom"]


def test_a_link_is_refused_for_appends_and_replaced_not_followed_by_atomic_writes(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(str(target), str(d / "events.jsonl"))
    with pytest.raises(safefile.UnsafePath, match="events.jsonl is a symbolic link"):
        safefile.open_append(str(d / "events.jsonl"))
    os.symlink(str(target), str(d / "state.json"))
    safefile.write_atomic(str(d / "state.json"), b"new")
    assert target.read_bytes() == b"keep"
    assert not os.path.islink(str(d / "state.json")) and (d / "state.json").read_bytes() == b"new"


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = str(tmp_path / STATE_NAME)
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(safefile.UnsafePath, match="is a FIFO, not a regular file"):
        safefile.read_regular(fifo, 100)
    with pytest.raises(OSError, match="FIFO"):
        safefile.open_append(fifo)
    assert time.monotonic() - started < 1.0


def test_read_regular_reads_at_most_one_byte_past_the_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 100000)
    assert len(safefile.read_regular(str(tmp_path / "big"), 10)) == 11
    with pytest.raises(FileNotFoundError):
        safefile.read_regular(str(tmp_path / "none"), 10)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o707])
def test_a_directory_others_can_write_is_refused_sticky_or_not(tmp_path, mode):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(str(d), mode)
    with pytest.raises(safefile.UnsafePath, match="directory %s is writable by others" % d):
        safefile.write_atomic(str(d / "x"), b"")
    assert os.listdir(str(d)) == []


def test_a_sticky_directory_above_is_fine_one_without_the_bit_is_not(tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    os.chmod(str(up), 0o1777)
    safefile.write_atomic(str(up / "mine" / "x"), b"1")  # like /tmp/guardian/x
    os.chmod(str(up), 0o777)
    with pytest.raises(safefile.UnsafePath,
                       match="directory %s is writable by others .mode 0777. without the sticky bit" % up):
        safefile.write_atomic(str(up / "mine" / "x"), b"2")


def test_remove_removes_a_link_not_its_target(tmp_path):
    (tmp_path / "t").write_bytes(b"keep")
    os.symlink(str(tmp_path / "t"), str(tmp_path / "guardian.prom"))
    assert safefile.remove(str(tmp_path / "guardian.prom"))
    assert (tmp_path / "t").read_bytes() == b"keep" and not os.path.lexists(str(tmp_path / "guardian.prom"))


def test_a_file_where_a_directory_should_be_is_named(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(safefile.UnsafePath, match="refused: %s is a regular file, not a directory" % (tmp_path / "f")):
        safefile.write_atomic(str(tmp_path / "f" / "x"), b"")
