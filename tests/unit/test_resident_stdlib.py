"""The running daemon's modules import none of the standard library's costly modules: logging
(~2.1 MiB resident with what it pulls), subprocess (~1.9), socket (~1.0: its enums), json (~1.0
with re), threading (~0.7), selectors, traceback; re (~0.9) only for the kernel OOM report
parser (oomreport, loaded at start by the oomwatch part) and a board's cmdline patterns
(compiled when the config is set). guardian.logger, jsontext, _socket, _thread and
posix_spawn stand in for them."""
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
NEVER = ["logging", "json", "socket", "selectors", "threading", "subprocess", "traceback"]
# Where re may come from: the OOM report parser the oomwatch part loads at start.
RE_ALLOWED = {"guardian.analysis.oomreport"}


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


def test_re_only_for_the_oom_report_parser_and_cmdline_patterns():
    """No resident module imports re at its top but oomreport; and re is not loaded at all
    without the oomwatch part, once nothing else of the standard library pulls it in."""
    importers = []
    for module in RESIDENT:
        path = os.path.join(REPO, *module.split("."))
        path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:  # module level only: a function's import runs when called
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            if any(n == "re" or n.startswith("re.") for n in names):
                importers.append(module)
    assert importers == []
    loaded = _loaded([m for m in RESIDENT if m != "guardian.core.parts.oomwatch"])
    if "dataclasses" in loaded:  # dataclasses imports re itself (being removed from run time)
        return
    assert "re" not in loaded, sorted(loaded - RE_ALLOWED)

