"""packaging/: the frozen binary (onefile) for this machine, and what it leaves out."""
import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from tests.support import REPO

sys.path.insert(0, os.path.join(REPO, "packaging"))
from frozen_excludes import EXCLUDES, PROBED  # noqa: E402


def _excluded(module):
    return any(module == e or module.startswith(e + ".") for e in EXCLUDES)


def test_smoke(frozen_binary):
    """--version, status on a fake tree, check on every board config (packaging/smoke-test.sh)."""
    proc = subprocess.run(["sh", os.path.join(REPO, "packaging", "smoke-test.sh"), frozen_binary],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout


def test_is_one_stripped_file_with_the_board_configs(frozen_binary):
    with open(frozen_binary, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    if shutil.which("file"):
        out = subprocess.run(["file", frozen_binary], stdout=subprocess.PIPE, universal_newlines=True).stdout
        assert "not stripped" not in out, out
    with open(frozen_binary, "rb") as f:
        data = f.read()
    for name in os.listdir(os.path.join(REPO, "board-configs")):
        if name.endswith(".toml"):
            assert ("guardian/board_configs/" + name).encode() in data, name
    # nothing of what frozen_excludes.py leaves out, by its shared libraries
    for lib in (b"libcrypto.so", b"liblzma.so", b"libbz2.so", b"unicodedata.", b"_codecs_jp."):
        assert lib not in data, lib


def _imports(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def test_no_guardian_module_imports_an_excluded_module():
    """frozen_excludes.py must list only what the guardian never imports."""
    bad = []
    for dirpath, _dirs, files in os.walk(os.path.join(REPO, "guardian")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                for line, module in _imports(path):
                    if _excluded(module):
                        bad.append("%s:%d imports %s" % (os.path.relpath(path, REPO), line, module))
    assert not bad, "left out of the frozen build (packaging/frozen_excludes.py): " + "; ".join(bad)


TRACE = r"""
import atexit, json, os, runpy, sys
out = sys.argv[1]
atexit.register(lambda: json.dump(sorted(sys.modules), open(out, "w")))
# `run` parses and loads its config in short-lived children that leave by os._exit: theirs count.
real_exit = os._exit
def child_exit(code):
    json.dump(sorted(sys.modules), open("%s.%d" % (out, os.getpid()), "w"))
    real_exit(code)
os._exit = child_exit
sys.argv = ["guardian"] + sys.argv[2:]
runpy.run_module("guardian", run_name="__main__")
"""


def test_no_command_imports_an_excluded_module(tmp_path):
    """Run every subcommand from the sources (the run command through a reload and a stop)
    and look at what was imported, stdlib modules included."""
    env = dict(os.environ, PYTHONPATH=REPO)
    trace = tmp_path / "trace.py"
    trace.write_text(TRACE)
    seen = set()
    commands = [["--version"], ["status", "--json"], ["check", "--board", "generic"],
                ["check", "--config", os.path.join(REPO, "board-configs", "generic.toml")]]
    for n, args in enumerate(commands):
        out = tmp_path / ("m%d.json" % n)
        subprocess.run([sys.executable, "-S", str(trace), str(out)] + args, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        seen |= set(json.loads(out.read_text()))
    out = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-S", str(trace), str(out), "run", "--dry-run",
                             "--board", "generic", "--state-file", str(tmp_path / "state.json")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    seen |= set(json.loads(out.read_text()))
    children = list(tmp_path.glob("run.json.*"))
    assert len(children) >= 2, children  # the start's child and the reload's
    for child in children:
        seen |= set(json.loads(child.read_text()))
    assert "guardian.core.daemon" in seen and "guardian.board.load" in seen
    assert not sorted(m for m in seen if _excluded(m) and m not in PROBED)


def test_notifies_systemd_from_the_guardian_process(tmp_path, frozen_binary):
    """onefile under systemd: the main PID is the unpacker, the guardian its child. The
    unit has NotifyAccess=all; the runtime hook hands the watchdog (WATCHDOG_PID) to the
    child, so WATCHDOG=1 pings come. READY=1 too, and STOPPING=1 on SIGTERM."""
    sock_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(1.0)
    (tmp_path / "unpack").mkdir()
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000",
               TMPDIR=str(tmp_path / "unpack"), GUARDIAN_TMPDIR="")
    # exec keeps the shell's PID: WATCHDOG_PID names the unpacker, as systemd would.
    script = 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" run --dry-run --board generic --state-file ""'
    proc = subprocess.Popen(["sh", "-c", script, frozen_binary], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    messages = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 2:
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    text = "\n".join(messages)
    assert "READY=1" in text, text
    assert text.count("WATCHDOG=1") >= 2, text
    assert "STOPPING=1" in text, text
    assert proc.returncode == 0
    assert not os.listdir(str(tmp_path / "unpack"))


def test_runtime_hook_restores_the_environment(tmp_path):
    """Commands the guardian runs get the caller's LD_LIBRARY_PATH and TMPDIR back."""
    hook = os.path.join(REPO, "packaging", "pyi_rth_guardian.py")
    code = ("import os, runpy; runpy.run_path(%r); print(repr(os.environ.get('LD_LIBRARY_PATH')),"
            " repr(os.environ.get('TMPDIR')), 'GUARDIAN_TMPDIR' in os.environ)" % hook)
    base = {"PATH": os.environ["PATH"]}
    cases = [
        (dict(LD_LIBRARY_PATH="/bundle", TMPDIR="/var/lib/guardian", GUARDIAN_TMPDIR=""), "None None False"),
        (dict(LD_LIBRARY_PATH="/bundle:/opt/lib", LD_LIBRARY_PATH_ORIG="/opt/lib",
              TMPDIR="/var/lib/guardian", GUARDIAN_TMPDIR="/srv/scratch"), "'/opt/lib' '/srv/scratch' False"),
        (dict(TMPDIR="/elsewhere"), "None '/elsewhere' False"),
    ]
    for env, expected in cases:
        out = subprocess.run([sys.executable, "-c", code], env=dict(base, **env),
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        assert out.strip() == expected, (env, out)


def test_the_worker_does_not_outlive_a_killed_unpacker(frozen_binary):
    """An init script SIGKILLs the PID in its pidfile: the onefile unpacker. Its worker (the
    guardian proper) must go too, or a restart would run two guardians."""
    parent = subprocess.Popen([frozen_binary, "run", "--dry-run", "--state-file", "", "--events-file", ""],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = None
        deadline = time.monotonic() + 20
        while worker is None and time.monotonic() < deadline:
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open("/proc/%s/stat" % entry) as f:
                            if int(f.read().rsplit(")", 1)[1].split()[1]) == parent.pid:
                                worker = int(entry)
                    except (OSError, ValueError, IndexError):
                        pass
            time.sleep(0.1)
        assert worker is not None, "no worker process under the onefile unpacker"
        time.sleep(1.0)  # past its start-up, where it asks to die with its parent
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while os.path.exists("/proc/%d" % worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists("/proc/%d" % worker), "the worker outlived its unpacker"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
