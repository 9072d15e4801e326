"""The guardian's bytecode in the frozen build: compiled as PyInstaller would, less the
functions' annotations and their qualified names.

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

Line numbers stay those of the source (the tree is compiled, not rewritten as text), so a
traceback from the frozen guardian points at the same lines.

    stripped_code(path, optimize)        the module's code object
    code_cache(pure, optimize, prefix)   {module name: code object} for the modules of an
                                         Analysis' pure list whose name starts with prefix
"""
import ast
from types import CodeType


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


def code_cache(pure, optimize, prefix="guardian"):
    """Code objects for the modules of `pure` ((name, path, typecode) entries) named prefix or
    prefix.*, for PyInstaller's PYZ to take instead of compiling them itself."""
    cache = {}
    for name, path, _typecode in pure:
        if (name == prefix or name.startswith(prefix + ".")) and path and path.endswith(".py"):
            cache[name] = stripped_code(path, optimize)
    return cache
