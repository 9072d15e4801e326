"""What the running daemon must never import: modules that cost megabytes of resident memory
for nothing it does (typing ~1.6 MiB, dataclasses with inspect, ast, dis, tokenize... ~2.6 MiB).

A fresh interpreter imports the modules the resident daemon loads and reports sys.modules.
Extend NEVER_RESIDENT as more leave the resident path.
"""
import ast
import os
import subprocess
import sys

from tests.support import REPO

NEVER_RESIDENT = ["typing", "dataclasses", "inspect", "ast", "dis", "tokenize"]

# Still resident while their own work is pending (each is being taken off the resident path):
# what one of these pulls in by itself is excused while it is loaded, and only then.
PENDING = ["logging", "json", "socket", "threading", "subprocess", "argparse"]

# The daemon's run time: its loop, its parts, the kernel readers, the actions and the config.
RESIDENT_PACKAGES = ["guardian.core", "guardian.core.parts", "guardian.kernel", "guardian.actions"]
RESIDENT_MODULES = ["guardian.core.daemon", "guardian.config", "guardian.safefile"]

_LOAD = """
import importlib, os, sys
names = %r
for pkg in %r:
    names.append(pkg)
    mod = importlib.import_module(pkg)
    names += sorted(pkg + "." + f[:-3] for f in os.listdir(os.path.dirname(mod.__file__))
                    if f.endswith(".py") and f != "__init__.py")
for name in names:
    importlib.import_module(name)
print(repr([names, sorted(sys.modules)]))
"""

_PLAIN = "import sys\nfor m in %r: __import__(m)\nprint(repr(sorted(sys.modules)))"


def _run(code):
    # -S: no site, as the daemon is measured; the checkout first on the path
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=REPO, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return ast.literal_eval(out)


def test_the_resident_daemon_never_imports_typing_dataclasses_nor_their_kin():
    names, loaded = _run(_LOAD % (list(RESIDENT_MODULES), RESIDENT_PACKAGES))
    assert "guardian.core.parts.leakwatch" in names and "guardian.kernel.procs" in names
    loaded = set(loaded)
    pending = [m for m in PENDING if m in loaded]
    excused = set()
    if pending:
        excused = set(_run(_PLAIN % (pending,)))
    found = sorted(m for m in NEVER_RESIDENT if m in loaded and m not in excused)
    assert not found, "imported on the daemon's resident path: %s" % found
