"""buildroot/: the BR2_EXTERNAL tree.

Buildroot's own utils/check-package needs a Buildroot checkout, which CI does not fetch:
set BUILDROOT_DIR to one to run it here (buildroot/README.md has the command). The other
tests check what can be checked without it.
"""
import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO

BR = os.path.join(REPO, "buildroot")
PKG = os.path.join(BR, "package", "guardian")


def _read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def _pyproject_version():
    return re.search(r'^version = "([^"]+)"', _read(REPO, "pyproject.toml"), re.M).group(1)


def test_external_tree_layout():
    assert re.search(r"^name: GUARDIAN$", _read(BR, "external.desc"), re.M)
    assert "$(BR2_EXTERNAL_GUARDIAN_PATH)/package/*/*.mk" in _read(BR, "external.mk")
    assert '"$BR2_EXTERNAL_GUARDIAN_PATH/package/guardian/Config.in"' in _read(BR, "Config.in")


def test_package_matches_pyproject():
    mk = _read(PKG, "guardian.mk")
    assert re.search(r"^GUARDIAN_VERSION = %s$" % re.escape(_pyproject_version()), mk, re.M)
    backend = re.search(r'^build-backend = "([^"]+)"', _read(REPO, "pyproject.toml"), re.M).group(1)
    # Buildroot: setuptools (a pep517 build through setuptools.build_meta), flit, hatch, ...
    setup_type = {"setuptools.build_meta": "setuptools", "flit_core.buildapi": "flit",
                  "hatchling.build": "hatch", "poetry.core.masonry.api": "poetry"}[backend]
    assert re.search(r"^GUARDIAN_SETUP_TYPE = %s$" % setup_type, mk, re.M)
    assert "$(eval $(python-package))" in mk
    assert re.search(r"^GUARDIAN_DEPENDENCIES = python-psutil$", mk, re.M)
    for hook in ("GUARDIAN_INSTALL_INIT_SYSV", "GUARDIAN_INSTALL_INIT_SYSTEMD"):
        assert "define %s" % hook in mk
    assert "init/S03guardian" in mk and "init/guardian.service" in mk and "init/guardian.default" in mk


def test_kconfig_offers_every_board_config():
    config = _read(PKG, "Config.in")
    assert "select BR2_PACKAGE_PYTHON_PSUTIL" in config
    assert "select BR2_PACKAGE_PYTHON_PYUDEV if BR2_PACKAGE_HAS_LIBUDEV" in config
    for name in sorted(os.listdir(os.path.join(REPO, "board-configs"))):
        if not name.endswith(".toml"):
            continue
        board = name[:-5]
        symbol = "BR2_PACKAGE_GUARDIAN_BOARD_" + re.sub(r"[^A-Z0-9]", "_", board.upper())
        assert "config %s\n" % symbol in config, "%s: no Kconfig choice %s" % (name, symbol)
        assert 'default "%s" if %s\n' % (board, symbol) in config, name


def test_check_package():
    top = os.environ.get("BUILDROOT_DIR")
    if not top:
        pytest.skip("BUILDROOT_DIR not set (a Buildroot checkout, kept outside this repo)")
    files = []
    for dirpath, _dirs, names in os.walk(BR):
        files += [os.path.relpath(os.path.join(dirpath, n), BR) for n in names if n != "README.md"]
    # check-package imports python-magic and flake8: BUILDROOT_PYTHON may name a venv's python
    python = os.environ.get("BUILDROOT_PYTHON", sys.executable)
    proc = subprocess.run([python, os.path.join(top, "utils", "check-package"), "-b"] + sorted(files),
                          cwd=BR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0 and "0 warnings generated" in proc.stdout, proc.stdout
