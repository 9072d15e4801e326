"""The programs a test needs from this machine (shellcheck, busybox, ...), or a skip that says how
to install the missing one; root, or a skip; and guardian._rest, the C extension, or a skip.
(This module uses pytest: the bench does not import it.)"""
import os
import shutil
import sys

import pytest

# What installs each tool these tests use (Debian package or pip requirement).
TOOLS = {
    "shellcheck": "apt-get install shellcheck",
    "busybox": "apt-get install busybox-static",
    "systemd-analyze": "apt-get install systemd",
    "unshare": "apt-get install util-linux",
    "oelint-adv": "pip install oelint-adv",
    "localedef": "apt-get install locales",
}


def need(tool):
    """The tool's path, or skip the test saying how to install it."""
    path = shutil.which(tool)
    if path is None and tool == "oelint-adv":
        candidate = os.path.join(os.path.dirname(sys.executable), "oelint-adv")
        path = candidate if os.access(candidate, os.X_OK) else None
    if path is None:
        pytest.skip("%s not found (%s)" % (tool, TOOLS.get(tool, "install it")))
    return path


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mount namespaces)")


# GUARDIAN_PURE_PYTHON=1 runs the suite without guardian._rest (as an install without a compiler).
PURE = os.environ.get("GUARDIAN_PURE_PYTHON") == "1"
NO_EXTENSION = ("GUARDIAN_PURE_PYTHON=1: no guardian._rest" if PURE else
                "guardian._rest is not built (or built before this call): `make deps`")


def fallback_and_extension(fallback, fallback_id, extension):
    """pytest params for a test run through both: the fallback the daemon uses without the C
    extension, and the extension's own (None where it is not built: a skip saying why)."""
    if extension is None:
        ext = pytest.param(None, id="extension", marks=pytest.mark.skip(reason=NO_EXTENSION))
    else:
        ext = pytest.param(extension, id="extension")
    return [pytest.param(fallback, id=fallback_id), ext]
