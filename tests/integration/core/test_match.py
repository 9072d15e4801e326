"""Issue 12: a name is not an identity. Each attack runs for real: the hostile processes run as
`nobody` (uid 65534) inside a real memory cgroup, rename themselves with prctl(PR_SET_NAME), and
the guardian (root) must see through them: the identity checks of guardian.core.match, wherever
the guardian names processes (`guardian run`, `check`, `status`)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import REPO
from tests.support.processes import read_adj

pytestmark = pytest.mark.integration

NOBODY = 65534
LIMIT = 256 * 1024 * 1024

# A hog that renames itself, then grows RATE MiB/s up to MAX MiB, keeping every page.
HOG = r"""
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
rate, limit = float(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
chunks, start = [], time.monotonic()
while len(chunks) < limit:
    chunks.append(b"\x01" * (1 << 20))
    delay = start + len(chunks) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
while True:
    time.sleep(1)
"""


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the attacks run as another user (nobody) against a root guardian")


def hog_python(uid):
    """An interpreter the hog's user may run: this one for root, the system's for nobody (a
    version manager's under /root is not readable by others)."""
    if uid is None:
        return sys.executable
    for candidate in ("/usr/bin/python3", sys.executable):
        probe = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                                candidate, "-c", ""],
                               capture_output=True)
        if probe.returncode == 0:
            return candidate
    pytest.skip("no Python interpreter that uid %d may run" % uid)


def spawn(cg, name, rate, limit, uid=None):
    """A hog in the cgroup named `name`, as `uid` (None: root)."""
    procs_file = os.path.join(cg.path, "cgroup.procs")

    def setup():
        with open(procs_file, "w") as f:
            f.write(str(os.getpid()))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    child = subprocess.Popen([hog_python(uid), "-c", HOG, name, str(rate), str(limit)], preexec_fn=setup,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    cg.children.append(child)
    assert child.stdout.readline().strip() == b"ready", child.stderr.read()
    return child


def board(tmp_path, text):
    path = tmp_path / "board.toml"
    path.write_text(text)
    os.chmod(str(path), 0o644)
    return str(path)


def test_a_name_buys_no_immunity(memcg, guardian_factory, tmp_path):
    """A `nobody` hog renamed `watchdog` was never chosen (a 60 MiB bystander was stopped
    instead) and the adj keeper tried to give it -1000."""
    need_root()
    cfg = board(tmp_path, '[board]\nname = "t"\n\n[[critical]]\nname = "watchdog"\n'
                          'match = { comm = "watchdog" }\noom_score_adj = -1000\n')
    memcg.set_limit(LIMIT)
    bystander = spawn(memcg, "bystander", 1000, 60)  # root, idle at 60 MiB
    time.sleep(0.5)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", cfg)
    hog = spawn(memcg, "watchdog", 40, 1024, uid=NOBODY)
    time.sleep(1.0)
    assert read_adj(hog.pid) != -1000, "the keeper gave the impostor the critical daemon's adj"
    code = hog.wait(60)
    assert code in (-signal.SIGTERM, -signal.SIGKILL), code
    assert bystander.poll() is None, "the bystander was ended instead of the impostor:\n" + g.log()
    acted = [e for e in g.events() if e["event"] in ("terminate", "kill")]
    assert acted and all(e["pid"] == hog.pid for e in acted), acted


def test_a_name_does_not_make_root_run_a_stop_command(memcg, guardian_factory, tmp_path):
    """A `nobody` hog named like a [[low_priority]] service made root run the service's stop
    argv; now it is ended like any other process, and the command never runs."""
    need_root()
    marker = tmp_path / "stop-ran"
    cfg = board(tmp_path, '[board]\nname = "t"\n\n[[low_priority]]\nname = "webui"\nmatch = { comm = "webui" }\n'
                          'stop = ["/bin/sh", "-c", "echo ran > %s"]\n' % marker)
    memcg.set_limit(LIMIT)
    g = guardian_factory("--scope", "cgroup:" + memcg.path, "--config", cfg)
    hog = spawn(memcg, "webui", 40, 1024, uid=NOBODY)
    code = hog.wait(60)
    assert code in (-signal.SIGTERM, -signal.SIGKILL), code
    time.sleep(0.5)
    assert not marker.exists(), "root ran the stop command for an impostor"
    term = next(e for e in g.events() if e["event"] in ("terminate", "kill"))
    assert term["pid"] == hog.pid and "stop command" not in term["message"], term


def test_a_stop_command_runs_with_a_clean_environment_in_root(memcg, tmp_path):
    """The real service (root) is stopped with its stop argv: the command gets a fixed PATH and
    nothing of the daemon's environment (loader variables, NOTIFY_SOCKET, secrets), cwd /."""
    need_root()
    out = tmp_path / "stop-env"
    cfg = board(tmp_path, '[board]\nname = "t"\n\n[[low_priority]]\nname = "webui"\nmatch = { comm = "webui" }\n'
                          'stop = ["/bin/sh", "-c", "env > %s; pwd >> %s; kill $(pidof webui)"]\n' % (out, out))
    memcg.set_limit(LIMIT)
    env = dict(os.environ, PYTHONPATH=REPO, LD_PRELOAD="", LD_LIBRARY_PATH="/nonexistent", NOTIFY_SOCKET="@x",
               WATCHDOG_USEC="30000000", WATCHDOG_PID=str(os.getpid()), GUARDIAN_SECRET="hunter2")
    events = tmp_path / "events.jsonl"
    daemon = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--scope", "cgroup:" + memcg.path,
                               "--config", cfg, "--events-file", str(events), "--state-file", str(tmp_path / "s.json"),
                               "--state-dir", ""], env=env, cwd=str(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hog = spawn(memcg, "webui", 40, 1024)  # root: the real service
        hog.wait(60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (out.exists() and out.read_text().strip().endswith("/")):
            time.sleep(0.1)
        lines = out.read_text().splitlines()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
    names = {line.split("=", 1)[0] for line in lines if "=" in line}
    assert lines[-1] == "/", lines
    # NOTIFY_SOCKET and WATCHDOG_*: with NotifyAccess=all a command could speak for guardian.service
    for leaked in ("LD_LIBRARY_PATH", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "GUARDIAN_SECRET", "PYTHONPATH",
                   "HOME"):
        assert leaked not in names, "%s reached the stop command: %s" % (leaked, sorted(names))
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in lines


def test_check_and_status_name_the_impostor(memcg, tmp_path):
    need_root()
    cfg = board(tmp_path, '[board]\nname = "t"\n\n[[critical]]\nname = "watchdog"\nmatch = { comm = "watchdog" }\n')
    hog = spawn(memcg, "watchdog", 1000, 2, uid=NOBODY)
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run([sys.executable, "-m", "guardian", "check", "--config", cfg, "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    findings = json.loads(res.stdout)["findings"]
    fake = [f for f in findings if f.get("impostor")]
    assert fake and fake[0]["pid"] == hog.pid and fake[0]["uid"] == NOBODY, findings
    assert "impostor?" in fake[0]["message"] and "uid 65534" in fake[0]["message"]
    res = subprocess.run([sys.executable, "-m", "guardian", "status", "--config", cfg, "--json",
                          "--state-file", str(tmp_path / "none.json")], env=env, capture_output=True, text=True,
                         timeout=60)
    status = json.loads(res.stdout)
    assert any(i["pid"] == hog.pid and i["uid"] == NOBODY for i in status["impostors"]), status.get("impostors")


def test_a_forged_log_line_and_terminal_escapes_are_escaped(memcg, tmp_path):
    """A comm with a newline forged a log line; ANSI escapes reached the terminal raw."""
    need_root()
    hog = spawn(memcg, "x\nERROR: f\x1b[2J", 1000, 2, uid=NOBODY)
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run([sys.executable, "-m", "guardian", "status", "--state-file", str(tmp_path / "none.json")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert "\x1b" not in res.stdout and "\nERROR: f" not in res.stdout
    from guardian.kernel.procs import read_proc
    assert read_proc(hog.pid).comm == "x\\x0aERROR: f\\x1b[2J"
