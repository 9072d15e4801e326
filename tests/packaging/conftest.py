"""Fixtures for the packaging tests: the frozen binary, built when missing or stale. (The tools a
test needs, or a skip: tests/support/tools.py.)"""
import os
import subprocess

import pytest

from tests.support import REPO


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
