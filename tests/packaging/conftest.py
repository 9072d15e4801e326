"""Fixtures for the packaging tests: the frozen builds, made when missing or stale. (The tools a
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
                if name.endswith((".py", ".toml", ".spec", ".sh", ".txt", ".c")):
                    newest = max(newest, os.path.getmtime(os.path.join(dirpath, name)))
    return max(newest, os.path.getmtime(os.path.join(REPO, "setup.py")))


def _built(name):
    """dist/<name>, after packaging/build-frozen.sh when any build product is missing or older
    than its sources (about 15 s, more the first time, when it makes its venv)."""
    outs = [os.path.join(REPO, "dist", n) for n in ("guardian", "guardian-onefile", "guardian-floor",
                                                     "guardian-floor-onefile")]
    newest = _newest_source_mtime()
    if not all(os.path.exists(o) and os.path.getmtime(o) >= newest for o in outs):
        proc = subprocess.run(["sh", os.path.join(REPO, "packaging", "build-frozen.sh")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=1200)
        assert proc.returncode == 0, "make frozen failed:\n" + proc.stdout[-4000:]
    return os.path.join(REPO, "dist", name)


@pytest.fixture(scope="session")
def frozen_binary():
    """The default frozen guardian for this machine: GUARDIAN_FROZEN_BIN if set, else dist/guardian
    (a symlink into dist/guardian-onedir/, or to dist/guardian-onefile with
    GUARDIAN_FROZEN_MODE=onefile), built when missing or stale."""
    given = os.environ.get("GUARDIAN_FROZEN_BIN")
    if given:
        return os.path.abspath(given)
    return _built("guardian")


@pytest.fixture(scope="session")
def onefile_binary():
    """dist/guardian-onefile: the single-file layout, built beside the default one."""
    return _built("guardian-onefile")


@pytest.fixture(scope="session")
def floor_binaries():
    """The floor (packaging/floor.py) in both layouts: {"onedir": ..., "onefile": ...}."""
    return {"onedir": os.path.join(os.path.dirname(_built("guardian-floor")), "guardian-floor-onedir",
                                   "guardian-floor"),
            "onefile": _built("guardian-floor-onefile")}


def onedir_of(binary):
    """The directory of the onedir layout an executable (or a symlink to one) belongs to, else None."""
    top = os.path.dirname(os.path.realpath(binary))
    return top if os.path.isdir(os.path.join(top, "_internal")) else None
