"""packaging/frozen_aliases.py: the codec alias table of the frozen build, trimmed to its codecs."""
import codecs
import encodings.aliases
import importlib.util
import marshal
import os
import struct
import sys
import zipfile

import pytest

from tests.support import REPO

sys.path.insert(0, os.path.join(REPO, "packaging"))
from frozen_aliases import (ALIASES_PYC, aliases_source, bundled_codecs, kept_aliases,  # noqa: E402
                            table_of, trim_base_library)


def _pyc_of(source, name):
    code = compile(source, name, "exec")
    return importlib.util.MAGIC_NUMBER + struct.pack("<I", 1) + b"\0" * 8 + marshal.dumps(code)


def test_bundled_codecs_are_the_encodings_modules_but_the_package_and_the_table():
    names = ["encodings/__init__.pyc", "encodings/aliases.pyc", "encodings/utf_8.pyc",
             "encodings/latin_1.pyc", "encodings/sub/x.pyc", "codecs.pyc", "encodings/readme.txt"]
    assert bundled_codecs(names) == {"utf_8", "latin_1"}


def test_kept_aliases_are_those_of_bundled_codecs_in_order():
    table = {"utf8": "utf_8", "sjis": "shift_jis", "latin1": "latin_1", "u8": "utf_8"}
    kept = kept_aliases(table, {"utf_8", "latin_1"})
    assert list(kept.items()) == [("utf8", "utf_8"), ("latin1", "latin_1"), ("u8", "utf_8")]


def test_the_source_defines_exactly_the_kept_table():
    kept = kept_aliases(encodings.aliases.aliases, {"utf_8", "latin_1", "iso8859_15", "cp1252"})
    namespace = {}
    exec(compile(aliases_source(kept), "aliases.py", "exec"), namespace)
    assert namespace["aliases"] == kept and "iso_8859_15" in kept and "windows_1252" in kept
    assert [k for k in namespace if not k.startswith("__")] == ["aliases"]


def test_trim_rewrites_the_table_and_nothing_else(tmp_path):
    src, dst = str(tmp_path / "base_library.zip"), str(tmp_path / "trimmed.zip")
    with open(encodings.aliases.__file__) as f:
        stdlib_source = f.read()
    members = {"encodings/__init__.pyc": _pyc_of("x = 1\n", "encodings/__init__.py"),
               ALIASES_PYC: _pyc_of(stdlib_source, "encodings/aliases.py"),
               "encodings/utf_8.pyc": b"utf-8 codec bytes", "encodings/cp1252.pyc": b"cp1252 codec bytes",
               "os.pyc": b"os bytes"}
    with zipfile.ZipFile(src, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6)), data)
    kept, dropped = trim_base_library(src, dst)
    expected = {a: c for a, c in encodings.aliases.aliases.items() if c in ("utf_8", "cp1252")}
    assert (kept, dropped) == (len(expected), len(encodings.aliases.aliases) - len(expected))
    with zipfile.ZipFile(dst) as z:
        assert [i.filename for i in z.infolist()] == list(members)
        assert all(i.date_time == (2020, 1, 2, 3, 4, 6) for i in z.infolist())
        for name, data in members.items():
            if name != ALIASES_PYC:
                assert z.read(name) == data, name
        pyc = z.read(ALIASES_PYC)
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[4:8] == struct.pack("<I", 1)
    table = table_of(pyc)
    assert table == expected and "utf8" in table and "windows_1252" in table and "sjis" not in table
    # every kept alias leads where the standard library's does
    for alias, codec in table.items():
        assert codecs.lookup(alias).name == codecs.lookup(codec).name, alias


def test_a_zip_without_the_table_is_refused(tmp_path):
    src = str(tmp_path / "base_library.zip")
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("encodings/utf_8.pyc", b"")
    with pytest.raises(SystemExit, match="has no encodings/aliases.pyc"):
        trim_base_library(src, str(tmp_path / "out.zip"))
