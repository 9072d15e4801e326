"""The guardian's bytecode in the frozen build: compiled as PyInstaller would, less the
functions' annotations.

Under `from __future__ import annotations` each annotated function keeps its annotations as a
tuple of strings ("pid", "int", "return", "Optional[ProcInfo]", ...) for as long as the function
lives, and nothing the guardian runs reads a function's annotations: the type checker reads the
source. The resident daemon holds about 500 functions; their annotations cost about 57 KiB of its
memory. Class bodies keep theirs: guardian/record.py makes a record's fields from them, and
guardian/board/schema.py reads them through typing.get_type_hints.

Line numbers stay those of the source (the tree is compiled, not rewritten as text), so a
traceback from the frozen guardian points at the same lines.

    stripped_code(path, optimize)        the module's code object
    code_cache(pure, optimize, prefix)   {module name: code object} for the modules of an
                                         Analysis' pure list whose name starts with prefix
"""
import ast


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


def stripped_code(path, optimize):
    """The code object of the module at path, its functions' annotations left out."""
    with open(path, "rb") as f:
        source = f.read()
    tree = _DropFunctionAnnotations().visit(ast.parse(source, path))
    return compile(tree, path, "exec", optimize=optimize)


def code_cache(pure, optimize, prefix="guardian"):
    """Code objects for the modules of `pure` ((name, path, typecode) entries) named prefix or
    prefix.*, for PyInstaller's PYZ to take instead of compiling them itself."""
    cache = {}
    for name, path, _typecode in pure:
        if (name == prefix or name.startswith(prefix + ".")) and path and path.endswith(".py"):
            cache[name] = stripped_code(path, optimize)
    return cache
