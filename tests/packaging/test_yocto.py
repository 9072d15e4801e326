"""yocto/meta-guardian: the layer and its recipe, linted with oelint-adv.

A real bitbake and OE-Core are not fetched by CI: set BITBAKE_DIR and OECORE_DIR to checkouts
of one series the layer claims (kept outside this repo; yocto/meta-guardian/README has the
commands) and test_bitbake_parses_the_layer parses the layer with them.
"""
import ast
import hashlib
import os
import re
import subprocess

import pytest

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
    "marshal": "core", "gc": "core",  # built into the interpreter
    "zlib": "core",  # lib-dynload/zlib.*.so is python3-core's (zipimport needs it)
    "random": "math", "statistics": "statistics", "resource": "resource", "fcntl": "fcntl",
    "__future__": "core",
    # optional: tomli only before Python 3.11
    "_json": "json", "_socket": "io", "_thread": "core",  # the C modules behind json, socket, threading
    # built into the interpreter: the C modules behind signal, re, collections, operator
    "_signal": "core", "_struct": "core", "_sre": "core", "_collections": "core", "_operator": "core",
    "tomli": None,
    # imported for the type checker only, never at run time
    "typing_extensions": None,
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
    # nor pyudev: hotplug reads the kernel's uevent socket
    assert "pyudev" not in _guardian_imports()
    with open(RECIPE) as f:
        assert "pyudev" not in f.read()


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


def _layer_series():
    with open(os.path.join(LAYER, "conf", "layer.conf")) as f:
        return re.search(r'^LAYERSERIES_COMPAT_guardian = "([^"]*)"', f.read(), re.M).group(1).split()


@pytest.mark.parametrize("series", _layer_series())
def test_oelint_adv_is_clean_for_each_claimed_series(series):
    oelint = need("oelint-adv")
    proc = subprocess.run([oelint, "--release", series] + OELINT + [RECIPE], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout


def test_lic_files_chksum_is_the_license_file():
    with open(RECIPE) as f:
        chksum = re.search(r'^LIC_FILES_CHKSUM = "file://LICENSE;md5=([0-9a-f]{32})"$', f.read(), re.M)
    assert chksum, "LIC_FILES_CHKSUM: the repository's LICENSE, not a common license text"
    with open(os.path.join(REPO, "LICENSE"), "rb") as f:
        assert chksum.group(1) == hashlib.md5(f.read()).hexdigest(), "LICENSE changed: update its md5"


def _bitbake(build, env, *args):
    proc = subprocess.run(["bitbake"] + list(args), cwd=build, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=3600)
    assert proc.returncode == 0, "bitbake %s:\n%s" % (" ".join(args), proc.stdout[-6000:])
    return proc.stdout


def _about_guardian(out):
    """bitbake's warnings and errors that name the recipe or the layer (the host's own, such as
    an unvalidated distribution, are not this layer's)."""
    return [line for line in out.splitlines() if line.startswith(("WARNING", "ERROR")) and "guardian" in line]


def test_bitbake_parses_the_layer(tmp_path):
    """bitbake -p with OE-Core and this layer; S is where the git source unpacks, and is there
    after do_unpack (the recipe fetches this checkout's HEAD for that, set in local.conf)."""
    bitbake_dir, oecore_dir = os.environ.get("BITBAKE_DIR"), os.environ.get("OECORE_DIR")
    if not (bitbake_dir and oecore_dir):
        pytest.skip("BITBAKE_DIR and OECORE_DIR not set (bitbake and OE-Core checkouts of one "
                    "series, kept outside this repo: yocto/meta-guardian/README)")
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()
    build = tmp_path / "build"
    (build / "conf").mkdir(parents=True)
    (build / "conf" / "bblayers.conf").write_text(
        'LCONF_VERSION = "7"\nBBPATH = "${TOPDIR}"\nBBFILES ?= ""\n'
        'BBLAYERS = "%s %s"\n' % (os.path.join(oecore_dir, "meta"), LAYER))
    local = ['CONF_VERSION = "2"', 'MACHINE = "qemux86-64"',
             # the committed HEAD of this checkout, whichever branch holds it
             'GUARDIAN_GIT_URI = "git://%s;protocol=file;nobranch=1"' % REPO,
             'SRCREV:pn-guardian = "%s"' % head,
             # no network: the one fetch is the local git above (protocol=file is not network);
             # nodistro's uninative would fetch a loader before any task, sanity checks a URL
             'BB_NO_NETWORK = "1"', 'INHERIT:remove = "uninative"']
    if os.geteuid() == 0:
        # OE-Core's sanity class refuses root ("Do not use Bitbake as root"); nothing else does
        local.append('INHERIT:remove = "sanity"')
    (build / "conf" / "local.conf").write_text("\n".join(local) + "\n")
    env = dict(os.environ, LC_ALL="en_US.UTF-8", LANG="en_US.UTF-8",  # bitbake wants this locale
               PATH=os.path.join(bitbake_dir, "bin") + os.pathsep + os.environ["PATH"])

    assert not _about_guardian(_bitbake(build, env, "-p"))

    values = dict(re.findall(r'^([A-Za-z0-9_:-]+)="(.*)"$', _bitbake(build, env, "-e", "guardian"), re.M))
    compat = values["LAYERSERIES_COMPAT_guardian"].split()
    assert set(values["LAYERSERIES_CORENAMES"].split()) & set(compat), (values["LAYERSERIES_CORENAMES"], compat)
    git = [u for u in values["SRC_URI"].split() if u.startswith("git://")]
    assert len(git) == 1, values["SRC_URI"]
    params = dict(p.split("=", 1) for p in git[0].split(";")[1:])
    # bitbake's git fetcher: destsuffix, else BB_GIT_DEFAULT_DESTSUFFIX (whinlatter on), else git
    suffix = params.get("destsuffix") or values.get("BB_GIT_DEFAULT_DESTSUFFIX") or "git"
    assert values["S"] == os.path.join(values["UNPACKDIR"], suffix.rstrip("/")), values["S"]
    assert os.path.basename(values["S"]) == values["BP"]

    # whinlatter on, do_qa_unpack: fatal on S = ${WORKDIR}/..., a warning when S is not there
    assert not _about_guardian(_bitbake(build, env, "-c", "unpack", "guardian"))
    for name in ("pyproject.toml", "LICENSE", os.path.join("init", "guardian.service")):
        assert os.path.isfile(os.path.join(values["S"], name)), "%s not in S=%s" % (name, values["S"])
