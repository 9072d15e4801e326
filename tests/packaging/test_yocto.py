"""yocto/meta-guardian: the layer and its recipe, linted with oelint-adv."""
import ast
import os
import re
import subprocess

from tests.support import REPO
from tests.support.tools import need

LAYER = os.path.join(REPO, "yocto", "meta-guardian")
RECIPE = os.path.join(LAYER, "recipes-support", "guardian", "guardian_git.bb")
# HOMEPAGE: the project has no public home yet (set it with the first release).
OELINT = ["--quiet", "--hide", "info", "--suppress", "oelint.var.mandatoryvar.HOMEPAGE"]

# Where OE-Core's python3 manifest (python3-manifest.json) puts each module the guardian
# imports. A module missing here fails the test below: look it up and add it.
PYTHON3_PACKAGE = {
    "argparse": "core", "array": "core", "bisect": "core", "collections": "core",
    "dataclasses": "core", "errno": "core", "math": "core", "os": "core", "pwd": "core",
    "re": "core", "select": "core", "signal": "core", "stat": "core", "struct": "core",
    "subprocess": "core", "sys": "core", "threading": "core", "time": "core", "typing": "core",
    "importlib": "core", "functools": "core", "itertools": "core", "contextlib": "core",
    "enum": "core", "pathlib": "core", "shlex": "core", "fnmatch": "core", "copy": "core",
    "string": "core", "textwrap": "core", "weakref": "core", "heapq": "core", "operator": "core",
    "platform": "core", "glob": "core", "shutil": "core", "warnings": "core", "abc": "core",
    "ctypes": "ctypes", "difflib": "difflib", "json": "json", "logging": "logging",
    "socket": "io", "io": "core", "tempfile": "io", "tomllib": "tomllib", "datetime": "datetime",
    "random": "math", "statistics": "statistics", "resource": "resource", "fcntl": "fcntl",
    # optional: tomli only before Python 3.11; pyudev through PACKAGECONFIG[udev]
    "tomli": None, "pyudev": None,
}


def _guardian_imports():
    found = set()
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, "guardian")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(dirpath, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m != "guardian"}


def _rdepends():
    with open(RECIPE) as f:
        text = f.read()
    block = re.search(r'^RDEPENDS:\$\{PN\} = "(.*?)"$', text, re.M | re.S).group(1)
    return set(re.findall(r"\bpython3-[a-z0-9-]+", block))


def test_rdepends_cover_what_the_guardian_imports():
    imports = _guardian_imports()
    unknown = sorted(imports - set(PYTHON3_PACKAGE))
    assert not unknown, "look these up in OE-Core's python3-manifest.json: %s" % unknown
    needed = {"python3-" + PYTHON3_PACKAGE[m] for m in imports if PYTHON3_PACKAGE[m]}
    rdepends = _rdepends()
    assert needed <= rdepends, "missing from RDEPENDS: %s" % sorted(needed - rdepends)
    # only what it uses: not the whole of python3
    assert "python3" not in rdepends and "python3-modules" not in rdepends
    # and nothing it does not import, but the interpreter
    assert rdepends - needed <= {"python3-core"}, sorted(rdepends - needed)


def test_no_psutil():
    """The guardian reads /proc itself: psutil (a C extension, MiBs at rest) is neither imported
    nor pulled onto the board."""
    assert "psutil" not in _guardian_imports()
    assert not any("psutil" in r for r in _rdepends())


def test_recipe_installs_init_by_distro_features():
    with open(RECIPE) as f:
        text = f.read()
    assert "inherit python_setuptools_build_meta systemd update-rc.d" in text
    assert 'SYSTEMD_SERVICE:${PN} = "guardian.service"' in text
    assert "bb.utils.contains('DISTRO_FEATURES', 'systemd'" in text
    assert "bb.utils.contains('DISTRO_FEATURES', 'sysvinit'" in text
    assert re.search(r'^PV = "%s\+git"$' % re.escape(_pyproject_version()), text, re.M)


def _pyproject_version():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def test_layer_conf():
    with open(os.path.join(LAYER, "conf", "layer.conf")) as f:
        text = f.read()
    assert 'BBFILE_COLLECTIONS += "guardian"' in text
    assert "LAYERSERIES_COMPAT_guardian" in text


def test_oelint_adv_is_clean():
    oelint = need("oelint-adv")
    proc = subprocess.run([oelint] + OELINT + [RECIPE], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout
