"""The running daemon's modules import none of the standard library's costly modules: logging
(~2.1 MiB resident with what it pulls), subprocess (~1.9), socket (~1.0: its enums), json (~1.0
with re), threading (~0.7), selectors, traceback, re (~0.9 with enum and functools: the board's
cmdline patterns come compiled from the loader child, and the kernel OOM report parser is made
at the first report), signal.py (~0.7: its enums), collections (~0.3: keyword, operator,
reprlib; array imports it). guardian.logger, jsontext, _socket, _thread, posix_spawn, _signal,
_collections.deque and leakstate.Column stand in for them. Where the C extension is built,
ctypes is not held either (~0.4 MiB): guardian._rest makes the libc calls; nor _socket (~0.1-0.2
MiB: guardian._rest.socket stands in for it), select, _json and math (30-80 KiB each, mapped and
locked: its poll, epoll, json_quote and erfc stand in)."""
import ast
import os
import signal
import subprocess
import sys
import time

from tests.support import REPO

RESIDENT = [
    "guardian.core.daemon", "guardian.core.eventlog", "guardian.core.telemetry", "guardian.core.match",
    "guardian.core.sense", "guardian.core.policy", "guardian.core.waiter", "guardian.core.selfprotect",
    "guardian.core.history", "guardian.core.reading", "guardian.config", "guardian.safefile", "guardian.logger",
    "guardian.jsontext",
]
for _package in ("guardian/core/parts", "guardian/kernel", "guardian/actions"):
    RESIDENT += sorted("%s.%s" % (_package.replace("/", "."), name[:-3]) if name != "__init__.py"
                       else _package.replace("/", ".")
                       for name in os.listdir(os.path.join(REPO, _package)) if name.endswith(".py"))
NEVER = ["logging", "json", "socket", "selectors", "threading", "subprocess", "traceback", "re", "signal", "enum",
         "functools", "collections", "operator", "array", "bisect"]


# -S leaves out site; the launcher adds the interpreter's site-packages itself (where tomli, the
# TOML parser before Python 3.11, lives): these do too.
PYTHONPATH = os.pathsep.join([REPO] + [p for p in sys.path if p.endswith("site-packages")])


def _loaded(modules):
    """sys.modules of a fresh interpreter (-S: no site) once it has imported `modules`."""
    code = "import importlib, sys\nfor m in %r: importlib.import_module(m)\nprint(' '.join(sorted(sys.modules)))" % (
        modules,)
    out = subprocess.run([sys.executable, "-S", "-c", code], env=dict(os.environ, PYTHONPATH=PYTHONPATH), check=True,
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=60).stdout
    return set(out.split())


def test_the_resident_modules_import_none_of_the_costly_ones():
    loaded = _loaded(RESIDENT)
    assert not [m for m in NEVER if m in loaded]


def test_no_resident_module_imports_re_at_its_top():
    """A function's import runs when called: match.py's for a board with cmdline patterns (at
    start), oomwatch's parser at the first kernel OOM report."""
    importers = []
    for module in RESIDENT:
        path = os.path.join(REPO, *module.split("."))
        path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:  # module level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == "re" or n.startswith("re.") or n.endswith("oomreport") for n in names):
                importers.append(module)
    assert importers == []


# `guardian run` itself, started as the init scripts start it, through a launcher that adds no
# import (_signal, not signal.py): SIGUSR1 writes the daemon's sys.modules.
_LAUNCH = r"""
import os, sys, _signal
def dump(signum, frame):
    with open(os.environ["RESIDENT_DUMP"] + ".tmp", "w") as f:
        f.write(" ".join(sorted(sys.modules)))
    os.rename(os.environ["RESIDENT_DUMP"] + ".tmp", os.environ["RESIDENT_DUMP"])
_signal.signal(_signal.SIGUSR1, dump)
sys.argv[0] = "guardian"
from guardian.cli import main
sys.exit(main())
"""


# guardian's own modules that only the start child, a reload's child or a command needs: the JSON
# parser (the start child parses the leak state file), where the events go (the mounts), reading
# the event log back, the capability report, impostors, the command line and the board loader.
NEVER_GUARDIAN = ["guardian.jsonparse", "guardian.core.eventfiles", "guardian.kernel.mounts",
                  "guardian.core.capabilities", "guardian.core.impostors", "guardian.commands", "guardian.board",
                  "guardian.core.parts.reload",  # the reload part: from the first SIGHUP on
                  "guardian.lines"]  # the frozen build's line tables: for a traceback


def _extension_built():
    try:
        from guardian import _rest  # noqa: F401
    except ImportError:
        print("guardian._rest is not built: ctypes and _socket are allowed in the running daemon")
        return False
    return True


def test_the_running_daemon_holds_none_of_them(tmp_path):
    """The generic board has cmdline patterns (sshd, dbus) and leak watch: the daemon's own
    sys.modules once it runs, not only what its modules import at their top. A leak state file
    is there to load (the start child parses it)."""
    from guardian.core.parts import leakstate

    os.makedirs(str(tmp_path / "lib"))
    with open(str(tmp_path / "lib" / leakstate.STATE_NAME), "wb") as f:
        f.write(leakstate.encode([], time.monotonic(), time.monotonic(), leakstate.read_boot_id("/proc")))
    events, dump = str(tmp_path / "events.jsonl"), str(tmp_path / "modules")
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, RESIDENT_DUMP=dump)
    proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCH, "run", "--dry-run", "--board", "generic",
                             "--hotplug", "auto", "--events-file", events, "--state-file", "",
                             "--state-dir", str(tmp_path / "lib")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(events) and '"event":"start"' in open(events).read().replace(" ", "")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(0.5)  # the parts start after the start event
        proc.send_signal(signal.SIGUSR1)
        while not os.path.exists(dump):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.02)
        with open(dump) as f:
            loaded = set(f.read().split())
    finally:
        proc.kill()
        proc.wait()
    assert "guardian.core.daemon" in loaded and "guardian.core.parts.leakwatch" in loaded
    assert "_sre" in loaded  # the generic board's patterns, adopted
    # ctypes (and libffi), _socket: the libc calls os lacks and the sockets come from the C extension
    # where it is built
    never = NEVER + ["typing", "dataclasses", "argparse", "tomllib"] + NEVER_GUARDIAN
    if _extension_built():  # its socket, poll, epoll, json_quote and erfc stand in for these
        never += ["ctypes", "_socket", "select", "_json", "math", "guardian.kernel.libc_fallback"]
    held = sorted(m for m in never if m in loaded or any(n.startswith(m + ".") for n in loaded))
    assert not held, "held by the running daemon: %s" % held
    with open(events) as f:
        assert '"loaded 0 series from %s' % (tmp_path / "lib" / leakstate.STATE_NAME) in f.read()
