"""The running daemon's modules import none of the standard library's costly modules: logging
(~2.1 MiB resident with what it pulls), subprocess (~1.9), socket (~1.0: its enums), json (~1.0
with re), threading (~0.7), selectors, traceback, re (~0.9: only for a board's cmdline
patterns, compiled when the config is set, and for the kernel OOM report parser, made at the
first report). guardian.logger, jsontext, _socket, _thread and posix_spawn stand in for them."""
import ast
import os
import subprocess
import sys

from tests.support import REPO

RESIDENT = [
    "guardian.core.daemon", "guardian.core.eventlog", "guardian.core.telemetry", "guardian.core.match",
    "guardian.core.sense", "guardian.core.policy", "guardian.core.waiter", "guardian.core.selfprotect",
    "guardian.core.history", "guardian.core.reading", "guardian.config", "guardian.safefile", "guardian.logger",
    "guardian.jsontext",
]
for _package in ("guardian/core/parts", "guardian/kernel", "guardian/actions"):
    RESIDENT += sorted("%s.%s" % (_package.replace("/", "."), name[:-3]) if name != "__init__.py"
                       else _package.replace("/", ".")
                       for name in os.listdir(os.path.join(REPO, _package)) if name.endswith(".py"))
NEVER = ["logging", "json", "socket", "selectors", "threading", "subprocess", "traceback", "re"]


def _loaded(modules):
    """sys.modules of a fresh interpreter (-S: no site) once it has imported `modules`."""
    code = "import importlib, sys\nfor m in %r: importlib.import_module(m)\nprint(' '.join(sorted(sys.modules)))" % (
        modules,)
    out = subprocess.run([sys.executable, "-S", "-c", code], env=dict(os.environ, PYTHONPATH=REPO), check=True,
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=60).stdout
    return set(out.split())


def test_the_resident_modules_import_none_of_the_costly_ones():
    loaded = _loaded(RESIDENT)
    assert not [m for m in NEVER if m in loaded]


def test_no_resident_module_imports_re_at_its_top():
    """A function's import runs when called: match.py's for a board with cmdline patterns (at
    start), oomwatch's parser at the first kernel OOM report."""
    importers = []
    for module in RESIDENT:
        path = os.path.join(REPO, *module.split("."))
        path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:  # module level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == "re" or n.startswith("re.") or n.endswith("oomreport") for n in names):
                importers.append(module)
    assert importers == []
