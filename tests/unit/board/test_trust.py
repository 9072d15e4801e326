"""Reading a board file only if no one but root could have changed it (trust.py), through
loading: the modes of the file and of its directories, another owner, a symlink or a FIFO in
its place, judged on the file that was opened; and text that is not UTF-8. Run as root where a
test needs another owner, skipped with the reason otherwise."""
import os
import threading

import pytest

from guardian.board import trust
from guardian.board.errors import ConfigError
from guardian.board.load import load_file
from tests.support.boardfiles import LOW_PRIORITY_BOARD, error_of, load, write

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
EVIL = LOW_PRIORITY_BOARD.replace('/bin/true', '/bin/sh", "-c", "touch /tmp/pwned')


def test_not_utf8(tmp_path):
    path = os.path.join(str(tmp_path), "b.toml")
    with open(path, "wb") as f:
        f.write(b'[board]\nname = "\xff"\n')
    os.chmod(path, 0o644)
    e = error_of(path)
    assert "not UTF-8" in str(e) and e.line == 2


def test_missing_config_file(tmp_path):
    e = error_of(os.path.join(str(tmp_path), "none.toml"))
    assert "cannot read" in str(e)


@pytest.mark.parametrize("mode, who", [(0o666, "group and others"), (0o646, "others"), (0o664, "group")])
def test_group_or_world_writable_file_is_refused(tmp_path, mode, who):
    path = write(tmp_path, "b.toml", "[wait]\nuse_psi = true\n", mode=mode)
    e = error_of(path)
    assert "refused: writable by %s (mode %04o)" % (who, mode) in str(e)
    assert "run commands as root" in str(e) and "chmod go-w" in str(e)


def test_writable_included_file_is_refused(tmp_path):
    inc = write(tmp_path, "inc.toml", "[wait]\nuse_psi = true\n", mode=0o666)
    top = write(tmp_path, "top.toml", '[board]\ninclude = "inc.toml"\n')
    e = error_of(top)
    assert e.file == inc and "writable by group and others" in str(e)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_file_owned_by_another_user_is_refused(tmp_path):
    path = write(tmp_path, "b.toml", "[wait]\nuse_psi = true\n")
    os.chown(path, 4321, 4321)
    e = error_of(path)
    assert "refused: owned by uid 4321" in str(e) and "chown root" in str(e)
    # offline (image build trees belong to the build user), only the mode counts
    config, _, _ = load_file(path, {}, check_owner=False)
    assert config.board == "b"


def test_world_writable_directory_is_refused(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(str(d), 0o777)
    path = write(d, "b.toml", "[wait]\nuse_psi = true\n")
    e = error_of(path)
    assert "directory %s is writable by others" % d in str(e)


def test_sticky_world_writable_directory_is_accepted(tmp_path):
    d = tmp_path / "sticky"
    d.mkdir()
    os.chmod(str(d), 0o1777)
    path = write(d, "b.toml", "[wait]\nuse_psi = true\n")
    assert load(path).config.wait.use_psi


@root_only
def test_a_symlink_owned_by_another_user_is_refused(confdir):
    target = write(confdir, "real.toml", LOW_PRIORITY_BOARD)
    link = confdir / "board.toml"
    os.symlink(target, link)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(ConfigError) as err:
        load_file(str(link), boards={})
    assert "symlink owned by uid 65534" in str(err.value)


def test_a_fifo_is_refused_without_blocking(confdir):
    fifo = confdir / "board.toml"
    os.mkfifo(fifo, 0o644)
    done = []

    def load():
        try:
            load_file(str(fifo), boards={})
        except ConfigError as e:
            done.append(str(e))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(5.0)
    assert done and "not a regular file" in done[0], "loading a FIFO blocked or was accepted"


def test_trust_is_judged_on_the_file_that_was_read(confdir, monkeypatch):
    """The race of the report: the path is checked, then swapped for another file before the
    parser opens it. Now the file is opened once: swapping the path after the open changes
    nothing that is read."""
    good = write(confdir, "board.toml", LOW_PRIORITY_BOARD)
    write(confdir, "evil.toml", EVIL)
    real_fstat = os.fstat

    def swap_after_open(fd):
        st = real_fstat(fd)
        if (confdir / "evil.toml").exists():
            os.replace(confdir / "evil.toml", good)  # the path now names the evil file
        return st

    monkeypatch.setattr(trust.os, "fstat", swap_after_open)
    config, _, _ = load_file(good, boards={})
    assert config.low_priority[0].stop == ("/bin/true",)


@root_only
def test_a_file_owned_by_another_user_is_refused_by_what_was_opened(confdir):
    path = write(confdir, "board.toml", EVIL)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(ConfigError) as err:
        load_file(path, boards={})
    assert "owned by uid 65534" in str(err.value)
