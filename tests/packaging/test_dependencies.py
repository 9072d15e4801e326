"""What installing the guardian pulls in: pyproject.toml's dependencies and the frozen build's
requirements. (The board packages: test_buildroot.py, test_yocto.py.)

The daemon reads /proc and /sys itself (guardian/kernel): psutil, a C extension (2.1 MiB private
memory once imported and used, measured) and a cross-compiled build on every board, is declared
nowhere it would be installed.
"""
import os
import re

from tests.support import REPO

try:
    import tomllib
except ImportError:  # Python < 3.11: tomli, a dependency there
    import tomli as tomllib


def _pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _name(requirement):
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


def test_runtime_dependencies():
    assert [_name(r) for r in _pyproject()["dependencies"]] == ["tomli"]
    assert _pyproject()["dependencies"][0].endswith("python_version < '3.11'")


def test_no_psutil_nor_unused_test_plugins():
    extras = _pyproject()["optional-dependencies"]
    for extra, requirements in extras.items():
        assert "psutil" not in [_name(r) for r in requirements], extra
        assert "pyudev" not in [_name(r) for r in requirements], extra
    # declared once and never used: a plugin pytest would load into every run
    assert "pytest-benchmark" not in [_name(r) for r in extras["test"]]


def test_frozen_build_requirements():
    with open(os.path.join(REPO, "packaging", "requirements-frozen.txt")) as f:
        names = [_name(line) for line in f if line.strip() and not line.startswith("#")]
    assert "psutil" not in names and "pyudev" not in names  # hotplug: the kernel's uevent socket
    assert "pyinstaller" in names
