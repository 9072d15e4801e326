"""The bytecode of the frozen build: compiled as PyInstaller would, without column ranges; the
guardian's own without its functions' annotations, qualified names and line tables.

Column ranges (a traceback's ^^^ marks) made up a quarter of each code object's size. Every
module the build takes from source is compiled here in a child interpreter run with
-X no_debug_ranges, which writes line numbers only; the .pyc files of base_library.zip go
through it too (pycs_without_columns). Not in this process: an interpreter without debug ranges
makes a fresh copy of each code object's line table whenever it makes a code object, which
would undo the sharing below (PyInstaller makes them again to set their file names).

Under `from __future__ import annotations` each annotated function keeps its annotations as a
tuple of strings ("pid", "int", "return", "Optional[ProcInfo]", ...) for as long as the function
lives, and nothing the guardian runs reads a function's annotations: the type checker reads the
source. The resident daemon holds about 500 functions; their annotations cost about 57 KiB of its
memory. Class bodies keep theirs: guardian/record.py makes a record's fields from them, and
guardian/board/schema.py reads them through typing.get_type_hints.

Each code object also carries its qualified name ("LeakWatcher._sample.<locals>.<listcomp>"),
a string of its own, which a function takes as its __qualname__: 412 of them in the resident
daemon, 29 KiB. The frozen build gives each code object its plain name there instead (an
interned string the code object holds anyway). A traceback names a function by its plain name
(co_name) either way, and nothing the guardian runs reads a function's __qualname__ (a class's
is made by its class body, and stays).

And each carries its table of line numbers, read only to print a traceback: about 95 KiB of the
resident daemon. The guardian's code objects of one module share one table that says "no line"
for as many instructions as its longest function has (the interpreter and the standard
library's traceback then say "line None"), and the real tables go into a file of the bundle,
guardian/linetables.marshal, from which guardian/lines.py gives the guardian's own traceback
printer (guardian/logger.py) the source line of each frame.

    code_cache(pure, optimize, prefix, lines)   {module name: code object} for the modules
                                         of an Analysis' pure list that have a source (at the
                                         level PyInstaller marked, else optimize); those
                                         named prefix or prefix.* stripped, their line tables
                                         put into `lines` ({file: {(first line, name): [(code
                                         units, table)]}})
    stripped_code(path, optimize)        one of the guardian's modules, annotations and
                                         qualified names left out (its line table kept)
    pycs_without_columns({name: pyc})    the same .pyc files, their code made again without
                                         column ranges
"""
import ast
import marshal
import os
import subprocess
import sys
from types import CodeType

# The location table's entry for up to 8 code units without a location (Python 3.11+,
# Objects/locations.md): 1, code 15 in the next four bits, the length less one in the last three.
_NO_LOCATION = 0x80 | (15 << 3)
# An Analysis' optimization level of each module, as PyInstaller marks it.
_LEVELS = {"PYMODULE": 0, "PYMODULE-1": 1, "PYMODULE-2": 2}


class _DropFunctionAnnotations(ast.NodeTransformer):
    def _function(self, node):
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs:
            arg.annotation = None
        for arg in (args.vararg, args.kwarg):
            if arg is not None:
                arg.annotation = None
        node.returns = None
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function


def _plain_names(code):
    """code and the code objects in it, each with its name as its qualified name."""
    consts = tuple(_plain_names(c) if isinstance(c, CodeType) else c for c in code.co_consts)
    if not hasattr(code, "co_qualname"):  # before 3.11 the qualified name is a constant of the maker's
        return code.replace(co_consts=consts)
    return code.replace(co_consts=consts, co_qualname=code.co_name)


def stripped_code(path, optimize):
    """The code object of the module at path, its functions' annotations and qualified names
    left out."""
    with open(path, "rb") as f:
        source = f.read()
    tree = _DropFunctionAnnotations().visit(ast.parse(source, path))
    return _plain_names(compile(tree, path, "exec", optimize=optimize))


def walk(code):
    """code and every code object in it, depth first."""
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from walk(const)


def units(code):
    """How many code units (instruction words) code has."""
    return len(code.co_code) // 2


def no_lines(count):
    """A location table saying "no line" for `count` code units."""
    full, rest = divmod(count, 8)
    return bytes([_NO_LOCATION | 7]) * full + (bytes([_NO_LOCATION | (rest - 1)]) if rest else b"")


def without_lines(code, filename, lines):
    """code with every code object in it taking one table that says "no line"; their real
    tables go into lines[filename][(first line, name)] with their lengths in code units."""
    mine = lines.setdefault(filename, {})
    for c in walk(code):
        mine.setdefault((c.co_firstlineno, c.co_name), []).append((units(c), c.co_linetable))
    table = no_lines(max(units(c) for c in walk(code)))

    def swap(c):
        consts = tuple(swap(k) if isinstance(k, CodeType) else k for k in c.co_consts)
        return c.replace(co_consts=consts, co_linetable=table)
    return swap(code)


def file_name(name, path):
    """The co_filename PyInstaller gives a module's code: its path below the top package."""
    parts = name.split(".")
    if os.path.basename(path) == "__init__.py":
        parts.append("__init__")
    return "/".join(parts) + ".py"


def _shares_tables():
    """Whether this interpreter keeps the line table it is given when it makes a code object
    (not under -X no_debug_ranges or PYTHONNODEBUGRANGES)."""
    code = compile("x", "<check>", "eval")
    return code.replace(co_name="y").co_linetable is code.co_linetable


def _in_child(request):
    """The child's part (-X no_debug_ranges): compile, or load and dump again."""
    code = {}
    for name, path, strip, optimize in request["sources"]:
        if strip:
            code[name] = stripped_code(path, optimize)
        else:
            with open(path, "rb") as f:
                code[name] = compile(f.read(), path, "exec", optimize=optimize)
    pycs = {name: pyc[:16] + marshal.dumps(marshal.loads(pyc[16:])) for name, pyc in request["pycs"].items()}
    return {"code": code, "pycs": pycs}


def _child(sources=(), pycs=None):
    out = subprocess.run([sys.executable, "-X", "no_debug_ranges", os.path.abspath(__file__)],
                         input=marshal.dumps({"sources": list(sources), "pycs": pycs or {}}),
                         stdout=subprocess.PIPE, check=True)
    return marshal.loads(out.stdout)


def pycs_without_columns(pycs):
    """{name: .pyc bytes} with each one's code made again without column ranges (the 16-byte
    header kept). The bytes are handed back as the child wrote them: not loaded here."""
    return _child(pycs=pycs)["pycs"] if pycs else {}


def code_cache(pure, optimize, prefix="guardian", lines=None):
    """Code objects without column ranges for the modules of `pure` ((name, path, typecode)
    entries) compiled from a .py source, for PyInstaller's PYZ to take instead of compiling them
    itself; those named prefix or prefix.* stripped (stripped_code) and their line tables, when
    `lines` is a dict, put there (without_lines)."""
    if not _shares_tables():
        raise SystemExit("frozen_code: this interpreter runs without debug ranges (-X no_debug_ranges, "
                         "PYTHONNODEBUGRANGES): it would copy every line table it is given")
    sources = [(name, path, name == prefix or name.startswith(prefix + "."), _LEVELS.get(typecode, optimize))
               for name, path, typecode in pure if path and path.endswith(".py")]
    cache = _child(sources)["code"]
    if lines is not None:
        for name, path, mine, _level in sources:
            if mine:
                cache[name] = without_lines(cache[name], file_name(name, path), lines)
    return cache


if __name__ == "__main__":
    marshal.dump(_in_child(marshal.load(sys.stdin.buffer)), sys.stdout.buffer)
