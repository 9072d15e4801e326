"""packaging/guardian-launcher, /usr/bin/guardian of the Buildroot and Yocto packages: runs the
guardian from the interpreter's site-packages with -S (no site), and through site where the
guardian is installed elsewhere."""
import os
import subprocess
import sys
import sysconfig

import guardian
from tests.support import REPO

LAUNCHER = os.path.join(REPO, "packaging", "guardian-launcher")
VERSION = "guardian %s" % guardian.__version__


def _run(argv, env=None, cwd=None):
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    return subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


def test_the_shebang_leaves_out_site():
    with open(LAUNCHER) as f:
        assert f.readline().split() == ["#!/usr/bin/python3", "-S"]


def _imported(stderr):
    """The modules -X importtime saw imported."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_an_installed_guardian_runs_without_site(tmp_path):
    """A prefix laid out as a board's (lib/pythonX.Y with site-packages/guardian): the launcher
    finds the guardian on the path it adds itself, and site is never imported."""
    stdlib = sysconfig.get_path("stdlib")
    lib = tmp_path / sys.platlibdir / ("python%d.%d" % sys.version_info[:2])
    lib.mkdir(parents=True)
    for name in os.listdir(stdlib):
        if name not in ("site-packages", "dist-packages", "__pycache__"):
            os.symlink(os.path.join(stdlib, name), str(lib / name))
    (lib / "site-packages").mkdir()
    os.symlink(os.path.join(REPO, "guardian"), str(lib / "site-packages" / "guardian"))
    env = dict(os.environ, PYTHONHOME=str(tmp_path))
    argv = [sys.executable, "-S", "-X", "importtime", LAUNCHER, "--version"]
    out = _run(argv, env=env, cwd=str(tmp_path))
    assert (out.returncode, out.stdout.strip()) == (0, VERSION), out.stderr
    imported = _imported(out.stderr)
    assert "guardian.cli" in imported and "site" not in imported
    # the same prefix without the guardian: the launcher asks site
    os.unlink(str(lib / "site-packages" / "guardian"))
    out = _run(argv, env=env, cwd=str(tmp_path))
    assert "site" in _imported(out.stderr)


def test_a_guardian_installed_through_site_runs(tmp_path):
    """This test run's own interpreter finds the guardian through site (an editable install's
    .pth hook, or PYTHONPATH's absence): the launcher falls back to site.main()."""
    out = _run([sys.executable, "-S", LAUNCHER, "--version"], cwd=str(tmp_path))
    assert (out.returncode, out.stdout.strip()) == (0, VERSION), out.stderr
