"""buildroot/: the BR2_EXTERNAL tree.

Buildroot's own utils/check-package needs a Buildroot checkout, which CI does not fetch:
set BUILDROOT_DIR to one to run it here (buildroot/README.md has the command). The other
tests check what can be checked without it.
"""
import hashlib
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
    # Runtime dependencies: python3 (Kconfig) only; no psutil, no pyudev.
    assert re.findall(r"^GUARDIAN_DEPENDENCIES\b.*$", mk, re.M) == []
    assert "python-psutil" not in mk and "python-pyudev" not in mk
    for hook in ("GUARDIAN_INSTALL_INIT_SYSV", "GUARDIAN_INSTALL_INIT_SYSTEMD"):
        assert "define %s" % hook in mk
    assert "init/S03guardian" in mk and "init/guardian.service" in mk and "init/guardian.default" in mk


def test_kconfig_offers_every_board_config():
    config = _read(PKG, "Config.in")
    assert "PSUTIL" not in config
    assert "PYUDEV" not in config
    for name in sorted(os.listdir(os.path.join(REPO, "board-configs"))):
        if not name.endswith(".toml"):
            continue
        board = name[:-5]
        symbol = "BR2_PACKAGE_GUARDIAN_BOARD_" + re.sub(r"[^A-Z0-9]", "_", board.upper())
        assert "config %s\n" % symbol in config, "%s: no Kconfig choice %s" % (name, symbol)
        assert 'default "%s" if %s\n' % (board, symbol) in config, name


def test_license_files_and_hash():
    """LICENSE and LICENSE_FILES for legal-info, and guardian.hash in Buildroot's format: one
    "type  hash  file" line per file, two spaces apart. The sources are this checkout (local
    site method, never hashed), so the hash file holds the license files' hashes only."""
    mk = _read(PKG, "guardian.mk")
    assert re.search(r"^GUARDIAN_LICENSE = MIT$", mk, re.M)
    assert re.search(r'^license = \{text = "MIT"\}$', _read(REPO, "pyproject.toml"), re.M)
    assert _read(REPO, "LICENSE").startswith("MIT License\n")
    license_files = re.search(r"^GUARDIAN_LICENSE_FILES = (.+)$", mk, re.M).group(1).split()
    assert license_files == ["LICENSE"]
    sizes = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
    hashed = {}
    for line in _read(PKG, "guardian.hash").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, digest, name = line.split()
        assert line == "%s  %s  %s" % (kind, digest, name), line
        assert kind in sizes and re.match(r"^[0-9a-f]{%d}$" % sizes[kind], digest), line
        hashed.setdefault(name, {})[kind] = digest
    assert sorted(hashed) == sorted(license_files), "hash the license files, nothing else"
    for name in license_files:
        with open(os.path.join(REPO, name), "rb") as f:
            data = f.read()
        assert "sha256" in hashed[name], name
        for kind, digest in hashed[name].items():
            assert hashlib.new(kind, data).hexdigest() == digest, "%s changed: update guardian.hash" % name


def test_linux_config_fixups():
    """The kernel options the guardian uses, set when Buildroot builds the kernel."""
    mk = _read(PKG, "guardian.mk")
    block = re.search(r"^define GUARDIAN_LINUX_CONFIG_FIXUPS\n(.*?)^endef$", mk, re.M | re.S).group(1)
    calls = re.findall(r"^\t\$\(call (KCONFIG_\w+),(\w+)\)$", block, re.M)
    assert len(calls) == len(block.strip().splitlines()), block
    assert set(calls) == {
        ("KCONFIG_ENABLE_OPT", "CONFIG_PSI"), ("KCONFIG_DISABLE_OPT", "CONFIG_PSI_DEFAULT_DISABLED"),
        ("KCONFIG_ENABLE_OPT", "CONFIG_CONNECTOR"), ("KCONFIG_ENABLE_OPT", "CONFIG_PROC_EVENTS"),
        ("KCONFIG_ENABLE_OPT", "CONFIG_CGROUPS"), ("KCONFIG_ENABLE_OPT", "CONFIG_MEMCG"),
    }
    opts = [opt for _macro, opt in calls]
    # a dependency before what depends on it, as olddefconfig reads them
    assert opts.index("CONFIG_CONNECTOR") < opts.index("CONFIG_PROC_EVENTS")
    assert opts.index("CONFIG_CGROUPS") < opts.index("CONFIG_MEMCG")


def test_help_text_ends_with_the_upstream_url():
    """Buildroot's convention: the package's help text ends with a blank line and the upstream URL."""
    config = _read(PKG, "Config.in")
    help_text = re.search(r"^config BR2_PACKAGE_GUARDIAN\n.*?^\thelp\n(.*?)\n(?=\S)", config, re.M | re.S).group(1)
    lines = help_text.rstrip("\n").split("\n")
    assert lines[-2] == "" and re.match(r"^\t  https?://\S+$", lines[-1]), lines[-2:]
    urls = re.search(r"^\[project\.urls\]\n(.*?)(?:\n\[|\Z)", _read(REPO, "pyproject.toml"), re.M | re.S)
    if urls:
        assert lines[-1].strip() in urls.group(1), "the help text's URL is not one of pyproject's"
    else:
        # no public home yet: a placeholder nobody can mistake for one (Config.in says so above it)
        assert ".invalid/" in lines[-1]


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
