"""/proc/pressure files against fake trees: some and full, the cpu file of old kernels,
PSI absent or disabled, and files empty, truncated or garbled."""
import errno
import os

import pytest

from guardian.kernel import ParseError, psi
from tests.support.fakeproc import write_at


PSI_MEMORY = """\
some avg10=1.53 avg60=0.87 avg300=0.21 total=12345678
full avg10=0.50 avg60=0.25 avg300=0.05 total=2345678
"""


def test_psi_some_and_full(tmp_path):
    write_at(tmp_path, "pressure/memory", PSI_MEMORY)
    p = psi.read_psi(str(tmp_path))
    assert p.some == psi.PsiLine(1.53, 0.87, 0.21, 12345678)
    assert p.full == psi.PsiLine(0.50, 0.25, 0.05, 2345678)


def test_psi_cpu_on_old_kernel_has_no_full_line(tmp_path):
    write_at(tmp_path, "pressure/cpu", "some avg10=12.00 avg60=3.10 avg300=0.99 total=987\n")
    p = psi.read_psi(str(tmp_path), "cpu")
    assert p.some.avg10 == 12.0 and p.some.total == 987
    assert p.full is None


def test_psi_absent_is_none(tmp_path):
    assert psi.read_psi(str(tmp_path)) is None


@pytest.mark.parametrize("code", sorted({errno.EOPNOTSUPP, errno.ENOTSUP}))
def test_psi_disabled_is_none(tmp_path, monkeypatch, code):
    # With psi=0 on the command line the file may exist but reading it fails.
    write_at(tmp_path, "pressure/memory", PSI_MEMORY)

    def refuse(path, bufsize=8192):
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr(psi, "read_text", refuse)
    assert psi.read_psi(str(tmp_path)) is None


def test_psi_other_read_errors_propagate(tmp_path, monkeypatch):
    write_at(tmp_path, "pressure/memory", PSI_MEMORY)

    def broken(path, bufsize=8192):
        raise OSError(errno.EIO, "I/O error", path)

    monkeypatch.setattr(psi, "read_text", broken)
    with pytest.raises(OSError) as e:
        psi.read_psi(str(tmp_path))
    assert e.value.errno == errno.EIO


def test_psi_empty_file(tmp_path):
    path = write_at(tmp_path, "pressure/memory", "")
    with pytest.raises(ParseError) as e:
        psi.read_psi(str(tmp_path))
    assert e.value.path == path and e.value.field == "some"


def test_psi_truncated_line_names_missing_key(tmp_path):
    write_at(tmp_path, "pressure/memory", "some avg10=1.53 avg60=0.87")
    with pytest.raises(ParseError, match="avg300"):
        psi.read_psi(str(tmp_path))


def test_psi_garbled_values():
    with pytest.raises(ParseError, match="some"):
        psi.parse_psi("some avg10=abc avg60=0.87 avg300=0.21 total=1\n")
    with pytest.raises(ParseError, match="full.*key=value"):
        psi.parse_psi("some avg10=0 avg60=0 avg300=0 total=1\nfull avg10 0\n")


def test_psi_unknown_line_kinds_are_ignored():
    p = psi.parse_psi("some avg10=0.10 avg60=0 avg300=0 total=5\nfuture x=y\n")
    assert p.some.avg10 == 0.10 and p.full is None
