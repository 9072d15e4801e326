"""packaging/frozen_code.py: the guardian's bytecode in the frozen build, its functions'
annotations and qualified names left out, its line numbers kept."""
import os
import sys
import types

from tests.support import REPO

sys.path.insert(0, os.path.join(REPO, "packaging"))
from frozen_code import code_cache, stripped_code  # noqa: E402

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


def _walk(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _walk(const)


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


def test_every_guardian_function_keeps_its_line_numbers():
    """A traceback of the frozen guardian points at the lines of the source: each function runs
    through the lines of a plain compile, in the same order (a function that defines an
    annotated one has fewer instructions, at other offsets; any other is the same bytecode)."""
    checked = 0
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, "guardian")):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            with open(path) as f:
                plain = compile(f.read(), path, "exec", optimize=2)
            stripped = stripped_code(path, 2)
            pairs = list(zip(_walk(plain), _walk(stripped)))
            assert len(pairs) == len(list(_walk(plain))) == len(list(_walk(stripped))), path
            for p, s in pairs[1:]:
                assert p.co_name == s.co_name and s.co_qualname == s.co_name, path
                if p.co_flags & 0x2:  # CO_NEWLOCALS: a function, not a class body
                    assert _lines(p) == _lines(s), (path, p.co_qualname)
                    nested = any(isinstance(c, types.CodeType) for c in p.co_consts)
                    assert nested or p.co_code == s.co_code, (path, p.co_qualname)
                    checked += 1
    assert checked > 400


def test_the_cache_takes_the_guardian_modules_only(tmp_path):
    mine, other = tmp_path / "mine.py", tmp_path / "other.py"
    mine.write_text(MODULE)
    other.write_text(MODULE)
    pure = [("guardian", str(mine), "PYMODULE-2"), ("guardian.core.x", str(mine), "PYMODULE-2"),
            ("guardianx", str(other), "PYMODULE-2"), ("json", str(other), "PYMODULE-2"),
            ("guardian.ns", "-", "PYMODULE-2")]
    cache = code_cache(pure, 2)
    assert sorted(cache) == ["guardian", "guardian.core.x"]
    assert _run(cache["guardian"])["near"].__annotations__ == {}
