"""Fixtures for the packaging tests: the repo, tools that may be missing, the frozen binary."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What installs each tool these tests use (Debian package or pip requirement).
TOOLS = {
    "shellcheck": "apt-get install shellcheck",
    "busybox": "apt-get install busybox-static",
    "systemd-analyze": "apt-get install systemd",
    "unshare": "apt-get install util-linux",
    "oelint-adv": "pip install oelint-adv",
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


def _newest_source_mtime():
    newest = 0.0
    for top in ("guardian", "board-configs", "packaging"):
        for dirpath, _dirs, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith((".py", ".toml", ".spec", ".sh", ".txt")):
                    newest = max(newest, os.path.getmtime(os.path.join(dirpath, name)))
    return newest


@pytest.fixture(scope="session")
def frozen_binary():
    """dist/guardian (onefile) for this machine: GUARDIAN_FROZEN_BIN if set, else built by
    packaging/build-frozen.sh when missing or older than its sources (about 30 s, more the
    first time, when it makes its venv)."""
    given = os.environ.get("GUARDIAN_FROZEN_BIN")
    if given:
        return os.path.abspath(given)
    out = os.path.join(REPO, "dist", "guardian")
    if not os.path.isfile(out) or os.path.getmtime(out) < _newest_source_mtime():
        proc = subprocess.run(["sh", os.path.join(REPO, "packaging", "build-frozen.sh")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=1200)
        assert proc.returncode == 0, "make frozen failed:\n" + proc.stdout[-4000:]
    return out
