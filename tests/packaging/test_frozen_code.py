"""packaging/frozen_code.py: the bytecode of the frozen build, without column ranges; the
guardian's without its functions' annotations and qualified names, and with its line tables in a
file that guardian/lines.py reads for a traceback."""
import importlib.util
import marshal
import os
import struct
import subprocess
import sys
import types
import zlib

import pytest

from guardian import lines as lines_mod
from tests.support import REPO

sys.path.insert(0, os.path.join(REPO, "packaging"))
from frozen_code import _child, code_cache, file_name, no_lines, pycs_without_columns, stripped_code, walk  # noqa: E402

MODULE = '''from __future__ import annotations


class Point:
    x: int
    y: Optional[int] = None

    def norm(self, scale: float = 1.0) -> float:
        return abs(self.x) * scale


def near(a: Point, b: Point, *rest: Point, within: float = 1.0, **kw: object) -> bool:
    def inner(q: int) -> int:
        return q
    return abs(a.x - b.x) <= within


async def later(p: Point, /) -> None:
    return None


lam = lambda z: z
'''


def _run(code):
    namespace = {"__name__": "m"}
    exec(code, namespace)
    return namespace


def _lines(code):
    """The source lines a code object's instructions come from, in order, each run once."""
    out = []
    for _start, _end, line in code.co_lines():
        if not out or out[-1] != line:
            out.append(line)
    return out


def test_functions_lose_their_annotations_and_classes_keep_theirs(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(MODULE)
    plain = _run(compile(MODULE, str(path), "exec"))
    assert plain["near"].__annotations__ and plain["later"].__annotations__
    ns = _run(stripped_code(str(path), 2))
    assert ns["near"].__annotations__ == {} and ns["later"].__annotations__ == {}
    assert ns["Point"].__annotations__ == {"x": "int", "y": "Optional[int]"}
    # qualified names: a function's is its name; a class's stays (its body sets it)
    assert plain["Point"].norm.__qualname__ == "Point.norm"
    assert ns["Point"].norm.__qualname__ == "norm" and ns["Point"].__qualname__ == "Point"
    inner = [c for c in ns["near"].__code__.co_consts if isinstance(c, types.CodeType)][0]
    assert inner.co_qualname == "inner" and inner.co_qualname is inner.co_name
    # the functions run as before
    a, b = ns["Point"](), ns["Point"]()
    a.x, b.x = 1, 2
    assert ns["near"](a, b) is True and ns["near"](a, b, within=0.5) is False


def _guardian_pure():
    pure = []
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, "guardian")):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, REPO)[:-3].split(os.sep)
                module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
                pure.append((module, path, "PYMODULE-2"))
    return pure


@pytest.fixture(scope="module")
def guardian_cache():
    lines = {}
    pure = _guardian_pure()
    return pure, code_cache(pure, 2, lines=lines), lines


def _has_columns(code):
    return any(position[2] is not None for c in walk(code) for position in c.co_positions())


def test_every_guardian_function_keeps_its_line_numbers_in_the_file(guardian_cache):
    """The code objects carry one table per module saying "no line"; the tables put aside give
    each function the lines of a plain compile, in the same order (a function that defines an
    annotated one has fewer instructions, at other offsets; any other is the same bytecode)."""
    pure, cache, lines = guardian_cache
    # compiled as the build compiles them (-X no_debug_ranges), where two equal functions of one
    # scope are one constant
    plains = _child([(module, path, False, 2) for module, path, _typecode in pure])["code"]
    checked = 0
    for module, path, _typecode in pure:
        plain = plains[module]
        stripped = cache[module]
        assert len({id(c.co_linetable) for c in walk(stripped)}) == 1, path  # one table, shared
        pairs = list(zip(walk(plain), walk(stripped)))
        assert len(pairs) == len(list(walk(plain))) == len(list(walk(stripped))), path
        tables = lines[file_name(module, path)]
        for p, s in pairs:
            assert set(line for _start, _end, line in s.co_lines()) == {None}, path
            assert p.co_name == s.co_name and p.co_firstlineno == s.co_firstlineno, path
            found = [t for n, t in tables[(s.co_firstlineno, s.co_name)] if n == len(s.co_code) // 2]
            restored = s.replace(co_linetable=found[0])
            assert not _has_columns(restored), path
            if p.co_flags & 0x2:  # CO_NEWLOCALS: a function, not a class body
                assert s.co_qualname == s.co_name, path
                assert _lines(p) == _lines(restored), (path, p.co_qualname)
                nested = any(isinstance(c, types.CodeType) for c in p.co_consts)
                assert nested or p.co_code == s.co_code, (path, p.co_qualname)
                checked += 1
    assert checked > 400


def test_the_cache_takes_every_module_with_a_source_and_strips_the_guardians(tmp_path):
    mine, other = tmp_path / "mine.py", tmp_path / "other.py"
    mine.write_text(MODULE)
    other.write_text(MODULE)
    pure = [("guardian", str(mine), "PYMODULE-2"), ("guardian.core.x", str(mine), "PYMODULE-2"),
            ("guardianx", str(other), "PYMODULE-2"), ("json", str(other), "PYMODULE"),
            ("guardian.ns", "-", "PYMODULE-2"), ("compiled", str(tmp_path / "c.pyc"), "PYMODULE-2")]
    lines = {}
    cache = code_cache(pure, 2, lines=lines)
    assert sorted(cache) == ["guardian", "guardian.core.x", "guardianx", "json"]
    assert sorted(lines) == ["guardian.py", "guardian/core/x.py"]  # as PyInstaller names their files
    assert _run(cache["guardian"])["near"].__annotations__ == {}
    assert _run(cache["guardianx"])["near"].__annotations__ != {}  # another package: as compiled
    assert not any(_has_columns(code) for code in cache.values())


def test_no_lines_covers_every_code_unit():
    for count in (1, 7, 8, 9, 16, 17, 300):
        code = compile("\n".join("x%d = %d" % (i, i) for i in range(count)), "t", "exec")
        table = no_lines(len(code.co_code) // 2)
        spans = list(code.replace(co_linetable=table).co_lines())
        assert spans[0][0] == 0 and spans[-1][1] == len(code.co_code) and {s[2] for s in spans} == {None}


def test_pycs_are_made_again_without_columns():
    code = compile("def f(a):\n    return a.b + a.c\n", "m.py", "exec")
    assert _has_columns(code)  # this interpreter writes them (else this test could not fail)
    pyc = importlib.util.MAGIC_NUMBER + struct.pack("<I", 1) + b"\0" * 8 + marshal.dumps(code)
    out = pycs_without_columns({"m.pyc": pyc})
    assert out["m.pyc"][:16] == pyc[:16]
    again = marshal.loads(out["m.pyc"][16:])
    assert not _has_columns(again) and _lines(again) == _lines(code)
    assert pycs_without_columns({}) == {}


def test_refused_where_the_interpreter_would_copy_the_tables(tmp_path):
    """Under -X no_debug_ranges every code object made gets a copy of its line table, and the
    shared "no line" tables would be one per code object again."""
    script = "import sys; sys.path.insert(0, %r); import frozen_code; frozen_code.code_cache([], 2)" % (
        os.path.join(REPO, "packaging"))
    proc = subprocess.run([sys.executable, "-X", "no_debug_ranges", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1 and "without debug ranges" in proc.stderr


# guardian/lines.py, on the tables the build puts aside

# Two functions named <lambda> on one line: the tables tell them apart by their lengths.
TRACED = '''def outer(x):
    y = [0, 1]
    pick = (lambda v: v), (lambda v: 1 / v)
    return [pick[1](q) for q in y if q >= x]
'''


def _traceback_lines(exc, path):
    frames = []
    tb = exc.__traceback__.tb_next
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    return [(code.co_name, line) for code, _lasti, line in lines_mod.lines_of(frames, path)]


def _as_bundled(code, filename):
    """code with the file name PyInstaller gives it (replace_filename_in_code_object)."""
    consts = tuple(_as_bundled(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_consts=consts, co_filename=filename)


def _raised(code):
    namespace = {"__name__": "guardian.traced"}
    exec(code, namespace)
    with pytest.raises(ZeroDivisionError) as info:
        namespace["outer"](0)
    return info.value


def test_a_traceback_of_stripped_code_has_the_source_lines(tmp_path):
    source = tmp_path / "traced.py"
    source.write_text(TRACED)
    lines = {}
    cache = code_cache([("guardian.traced", str(source), "PYMODULE-2")], 2, lines=lines)
    tables = tmp_path / "linetables.marshal"
    tables.write_bytes(zlib.compress(marshal.dumps(lines)))
    expected = _traceback_lines(_raised(compile(TRACED, "guardian/traced.py", "exec")), str(tables))
    assert expected == [("outer", 4), ("<listcomp>", 4), ("<lambda>", 3)]
    stripped = _as_bundled(cache["guardian.traced"], "guardian/traced.py")
    assert {line for c in walk(stripped) for _s, _e, line in c.co_lines()} == {None}
    assert _traceback_lines(_raised(stripped), str(tables)) == expected
    # no file, a garbled one, another file's code: no line, and no exception
    nothing = [("outer", None), ("<listcomp>", None), ("<lambda>", None)]
    assert _traceback_lines(_raised(stripped), str(tmp_path / "none")) == nothing
    assert _traceback_lines(_raised(_as_bundled(stripped, "guardian/other.py")), str(tables)) == nothing
    tables.write_bytes(b"garbled")
    assert _traceback_lines(_raised(stripped), str(tables)) == nothing


def test_the_guardians_traceback_printer_reads_the_lines(tmp_path, monkeypatch):
    """guardian.logger.format_exception (the daemon's log.exception, the frozen build's
    excepthook) asks guardian.lines for a frame without a line."""
    from guardian.logger import format_exception

    source = tmp_path / "traced.py"
    source.write_text(TRACED)
    lines = {}
    stripped = _as_bundled(code_cache([("guardian.traced", str(source), "PYMODULE-2")], 2, lines=lines)
                           ["guardian.traced"], "guardian/traced.py")
    exc = _raised(stripped)
    monkeypatch.setattr(lines_mod, "TABLES", str(tmp_path / "linetables.marshal"))
    assert 'File "guardian/traced.py", line ?, in outer' in format_exception((type(exc), exc, exc.__traceback__))
    (tmp_path / "linetables.marshal").write_bytes(zlib.compress(marshal.dumps(lines)))
    text = format_exception((type(exc), exc, exc.__traceback__))
    assert 'File "guardian/traced.py", line 4, in outer' in text and 'line 3, in <lambda>' in text, text
