"""The command line as a user runs it: a real process, real /proc."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration


def guardian(*args, user=None):
    argv = [sys.executable, "-m", "guardian"] + list(args)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)


def test_version():
    out = guardian("--version")
    assert out.returncode == 0 and out.stdout.startswith("guardian ")


def test_status_json_has_the_promised_keys():
    out = guardian("status", "--json", "--state-file", "")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("mem_total_bytes", "mem_available_bytes", "psi", "wait_mode", "candidates", "thresholds"):
        assert key in data
    assert data["mem_total_bytes"] > data["mem_available_bytes"] > 0
    assert data["wait_mode"] in ("psi-trigger", "psi-trigger-2s", "poll")
    assert data["candidates"] and {"pid", "name", "score"} <= set(data["candidates"][0])
    assert all(c["pid"] != 1 for c in data["candidates"])


def test_status_text_names_the_wait_mode():
    out = guardian("status", "--state-file", "")
    assert out.returncode == 0, out.stderr
    assert "wait mode" in out.stdout and "candidates" in out.stdout


def test_without_root_the_user_is_told_what_is_missing_and_what_works():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the CLI as an unprivileged user")
    path = REPO
    while path != os.path.dirname(path):
        if os.stat(path).st_mode & 0o001 == 0:
            pytest.skip("%s is not searchable by other users, so they cannot run this checkout" % path)
        path = os.path.dirname(path)
    if os.stat(REPO).st_mode & 0o004 == 0:
        pytest.skip("the checkout at %s is not readable by other users" % REPO)
    out = guardian("status", "--json", "--state-file", "", user=65534)
    assert out.returncode == 0, out.stderr
    missing = json.loads(out.stdout)["missing_capabilities"]
    assert any("CAP_KILL" in line for line in missing)
    assert any(line.startswith("still works") for line in missing)


def test_bad_scope_is_a_clear_error():
    out = guardian("run", "--scope", "cgroup:no-such-cgroup-here", "--state-file", "")
    assert out.returncode != 0
    assert "no-such-cgroup-here" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_check_names_what_a_missing_capability_disables():
    # What a systemd unit without these capabilities does to the guardian (issue 16): the same
    # command in a process whose bounding set lacks them.
    argv = ["setpriv", "--bounding-set", "-net_admin,-syslog", "--inh-caps", "-all", "--",
            sys.executable, "-m", "guardian", "check", "--board", "generic", "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO,
                         timeout=60)
    texts = [f["message"] for f in json.loads(out.stdout)["findings"] if f["topic"] in ("capabilities", "kernel-oom")]
    assert any(t.startswith("CAP_NET_ADMIN missing: no netlink proc connector") for t in texts), texts
    assert any(t.startswith("CAP_SYSLOG missing: /dev/kmsg unreadable") for t in texts), texts
    with open("/proc/sys/kernel/dmesg_restrict") as f:
        restricted = f.read().strip() == "1"
    if restricted:  # the kernel refuses the read itself: check says so by the feature
        assert any(t.startswith("/dev/kmsg cannot be read") and "report (cause, cgroup, victim) is lost" in t
                   for t in texts), texts
