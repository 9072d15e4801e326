"""packaging/: the frozen builds for this machine (onedir, the default, and onefile), the floor built
beside them, and what they leave out."""
import ast
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile

import pytest

from tests.packaging.conftest import onedir_of
from tests.support import REPO
from tests.support.tools import need, need_root

sys.path.insert(0, os.path.join(REPO, "packaging"))
from frozen_excludes import EXCLUDES, FALLBACK, PROBED  # noqa: E402


def _excluded(module):
    return any(module == e or module.startswith(e + ".") for e in EXCLUDES)


@pytest.mark.parametrize("layout", ["default", "onefile"])
def test_smoke(layout, frozen_binary, onefile_binary):
    """--version, status on a fake tree, check on every board config (packaging/smoke-test.sh)."""
    binary = frozen_binary if layout == "default" else onefile_binary
    proc = subprocess.run(["sh", os.path.join(REPO, "packaging", "smoke-test.sh"), binary],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout


def _stripped(path):
    if shutil.which("file"):
        out = subprocess.run(["file", "-L", path], stdout=subprocess.PIPE, universal_newlines=True).stdout
        assert "not stripped" not in out, out


def test_is_one_stripped_file_with_the_board_configs(onefile_binary):
    with open(onefile_binary, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    _stripped(onefile_binary)
    with open(onefile_binary, "rb") as f:
        data = f.read()
    for name in os.listdir(os.path.join(REPO, "board-configs")):
        if name.endswith(".toml"):
            assert ("guardian/board_configs/" + name).encode() in data, name
    # nothing of what frozen_excludes.py leaves out, by its shared libraries
    for lib in (b"libcrypto.so", b"liblzma.so", b"libbz2.so", b"unicodedata.", b"_codecs_jp."):
        assert lib not in data, lib


def test_the_default_is_the_onedir_layout(frozen_binary):
    """dist/guardian points into dist/guardian-onedir/: the executable and _internal/ with the
    stripped libraries and the board configs; nothing of what frozen_excludes.py leaves out."""
    if os.environ.get("GUARDIAN_FROZEN_BIN"):
        pytest.skip("GUARDIAN_FROZEN_BIN names another build")
    top = onedir_of(frozen_binary)
    assert top, "%s is not in a onedir layout" % frozen_binary
    internal = os.path.join(top, "_internal")
    for name in os.listdir(os.path.join(REPO, "board-configs")):
        if name.endswith(".toml"):
            assert os.path.isfile(os.path.join(internal, "guardian", "board_configs", name)), name
    files = [os.path.join(d, f) for d, _dirs, fs in os.walk(internal) for f in fs]
    names = " ".join(os.path.basename(f) for f in files)
    for lib in ("libcrypto.so", "liblzma.so", "libbz2.so", "unicodedata.", "_codecs_jp."):
        assert lib not in names, lib
    _stripped(os.path.realpath(frozen_binary))
    _stripped(os.path.join(internal, "libpython%d.%d.so.1.0" % sys.version_info[:2]))
    rest = [f for f in os.listdir(os.path.join(internal, "guardian")) if f.startswith("_rest.") and f.endswith(".so")]
    assert len(rest) == 1, "guardian._rest (guardian/_rest.c) is not in %s/guardian" % internal


@pytest.mark.parametrize("layout", ["default", "onefile"])
def test_rests_in_c(layout, tmp_path, frozen_binary, onefile_binary):
    """The frozen guardian has guardian._rest (built by build-frozen.sh): its start event says the
    loop at rest runs in C."""
    binary = frozen_binary if layout == "default" else onefile_binary
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([binary, "run", "--dry-run", "--board", "generic", "--state-file", "",
                             "--events-file", str(events)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            universal_newlines=True)
    try:
        start = None
        deadline = time.monotonic() + 30
        while start is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if events.exists():
                for line in events.read_text().splitlines():
                    event = json.loads(line)
                    if event.get("event") == "start":
                        start = event
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert start is not None, "no start event:\n" + err[-2000:]
    assert "rest loop in C" in start["message"], start


def test_floor_builds_and_runs(floor_binaries):
    """The floor (packaging/floor.py), built by the same spec: one wake and out, and what it has
    loaded when its code starts: none of what PyInstaller's dropped runtime hooks imported
    (pyi_rth_inspect: inspect, zipfile, pathlib, shutil, threading...)."""
    for layout, binary in sorted(floor_binaries.items()):
        proc = subprocess.run([binary, "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=60)
        assert proc.returncode == 0, (layout, proc.stdout)
        proc = subprocess.run([binary, "--once", "--modules"], stdout=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
        modules = set(proc.stdout.split())
        assert proc.returncode == 0 and "pyimod02_importers" in modules, (layout, proc.stdout)
        loaded = modules & {"inspect", "zipfile", "pathlib", "shutil", "threading", "urllib.parse", "ast",
                            "dis", "tokenize", "pkgutil", "ipaddress"}
        assert not loaded, (layout, sorted(loaded))
        assert len(modules) <= 45, (layout, len(modules), sorted(modules))
        proc = subprocess.run([binary, "--once", "--import", "json,guardian.core.daemon", "--modules"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=60)
        assert proc.returncode == 0 and "guardian.core.daemon" in proc.stdout.split(), (layout, proc.stdout)


def _frames(stderr):
    """(file below the package or script, line, function) of each frame of a printed traceback."""
    import re

    out = []
    for path, line, function in re.findall(r'File "([^"]*)", line (\S+), in (\S+)', stderr):
        at = path.rfind("guardian/")
        out.append((path[at:] if at >= 0 else os.path.basename(path), line, function))
    return out


def test_a_traceback_names_the_source_lines(floor_binaries):
    """The build keeps the line tables of the guardian's code objects in a file of the bundle
    (packaging/frozen_code.py, guardian/lines.py): an uncaught exception raised in the guardian's
    code prints each frame with the line the unfrozen code prints."""
    plain = subprocess.run([sys.executable, os.path.join(REPO, "packaging", "floor.py"), "--raise"],
                           env=dict(os.environ, PYTHONPATH=REPO), stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=60)
    expected = _frames(plain.stderr)
    assert plain.returncode == 1 and [f[0] for f in expected].count("guardian/jsontext.py") == 4, plain.stderr
    for layout, binary in sorted(floor_binaries.items()):
        proc = subprocess.run([binary, "--raise"], stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert proc.returncode == 1 and _frames(proc.stderr) == expected, (layout, proc.stderr)
        assert "TypeError: Object of type object is not JSON serializable" in proc.stderr, (layout, proc.stderr)


READ_ONLY_START = r"""
set -e
mount --bind "$RO" "$RO" && mount -o remount,bind,ro "$RO"
exec "$RO/usr/bin/guardian" run --dry-run --board generic --state-file "" --events-file ""
"""


@pytest.mark.parametrize("layout", ["onedir", "onefile"])
def test_starts_from_a_read_only_place(layout, tmp_path, frozen_binary, onefile_binary):
    """Installed on a read-only root as a board has it (onedir: /usr/lib/guardian/ and the
    /usr/bin/guardian symlink; onefile: /usr/bin/guardian), started directly with a TMPDIR
    that does not exist: it comes up (READY=1). onedir writes nothing anywhere and maps its
    libraries from the read-only tree; onefile falls back to unpacking into /tmp (its RAM cost
    on a board whose /tmp is tmpfs: packaging/README.md)."""
    need_root()
    unshare = need("unshare")
    ro = tmp_path / "root"
    (ro / "usr" / "bin").mkdir(parents=True)
    if layout == "onedir":
        top = onedir_of(frozen_binary)
        if not top:
            pytest.skip("dist/guardian is not the onedir layout")
        shutil.copytree(top, str(ro / "usr" / "lib" / "guardian"), symlinks=True)
        os.symlink("../lib/guardian/guardian", str(ro / "usr" / "bin" / "guardian"))
    else:
        shutil.copy2(onefile_binary, str(ro / "usr" / "bin" / "guardian"))
    sock_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(1.0)
    env = dict(os.environ, RO=str(ro), NOTIFY_SOCKET=sock_path, TMPDIR=str(tmp_path / "no-such-dir"))
    for var in ("WATCHDOG_USEC", "WATCHDOG_PID", "LD_LIBRARY_PATH"):
        env.pop(var, None)
    proc = subprocess.Popen([unshare, "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_START],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    maps = ""
    try:
        text = ""
        deadline = time.monotonic() + 60
        while "READY=1" not in text and time.monotonic() < deadline:
            try:
                text += sock.recv(4096).decode()
            except socket.timeout:
                assert proc.poll() is None, proc.stderr.read().decode()
        assert "READY=1" in text, text
        pids = [proc.pid] + [int(p) for p in open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read().split()]
        for pid in pids:
            maps += open("/proc/%d/maps" % pid).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        sock.close()
    assert not (tmp_path / "no-such-dir").exists()
    libpython = [line.split()[-1] for line in maps.splitlines() if "libpython" in line]
    assert libpython, maps
    if layout == "onedir":
        assert len(pids) == 1
        assert all(p.startswith(str(ro) + "/usr/lib/guardian/_internal/") for p in libpython), libpython
        assert "_MEI" not in maps
    else:
        assert len(pids) == 2
        assert all("/_MEI" in p for p in libpython), libpython


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
                    if _excluded(module) and module not in FALLBACK:
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


@pytest.mark.parametrize("layout", ["default", "onefile"])
def test_notifies_systemd_from_the_guardian_process(layout, tmp_path, frozen_binary, onefile_binary):
    """Under systemd. onefile: the main PID is the unpacker, the guardian its child. The
    unit has NotifyAccess=all; the runtime hook hands the watchdog (WATCHDOG_PID) to the
    child, so WATCHDOG=1 pings come. onedir: one process, the main PID. READY=1 too, and
    STOPPING=1 on SIGTERM."""
    binary = frozen_binary if layout == "default" else onefile_binary
    sock_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(1.0)
    (tmp_path / "unpack").mkdir()
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000",
               TMPDIR=str(tmp_path / "unpack"), GUARDIAN_TMPDIR="")
    # exec keeps the shell's PID: WATCHDOG_PID names the unpacker, as systemd would.
    script = 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" run --dry-run --board generic --state-file ""'
    proc = subprocess.Popen(["sh", "-c", script, binary], env=env,
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


def test_the_worker_does_not_outlive_a_killed_unpacker(onefile_binary):
    """An init script SIGKILLs the PID in its pidfile: the onefile unpacker. Its worker (the
    guardian proper) must go too, or a restart would run two guardians."""
    parent = subprocess.Popen([onefile_binary, "run", "--dry-run", "--state-file", "", "--events-file", ""],
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


def _iso_8859_15(tmp_path):
    """The environment of a board with LANG=en_US.ISO-8859-15: a locale made by localedef here."""
    localedef = need("localedef")
    if not os.path.exists("/usr/share/i18n/charmaps/ISO-8859-15.gz"):
        pytest.skip("no ISO-8859-15 charmap under /usr/share/i18n (apt-get install locales)")
    where = tmp_path / "locales"
    where.mkdir()
    subprocess.run([localedef, "-i", "en_US", "-f", "ISO-8859-15", str(where / "en_US.ISO-8859-15")],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert (where / "en_US.ISO-8859-15").exists(), "localedef made no locale"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    env.update(LOCPATH=str(where), LC_ALL="en_US.ISO-8859-15")
    # the locale takes: Python names its codec through the alias table
    seen = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                          env=env, stdout=subprocess.PIPE, universal_newlines=True, timeout=60).stdout
    assert seen.strip() == "iso8859-15", seen
    return env


@pytest.mark.parametrize("layout", ["default", "onefile"])
def test_starts_under_a_locale_whose_codec_has_an_alias(layout, tmp_path, frozen_binary, onefile_binary,
                                                        floor_binaries):
    """Python starts by looking up the locale's codec: "ISO-8859-15" is found through the alias
    iso_8859_15 -> iso8859_15, in the table the build trims to its own codecs
    (packaging/frozen_aliases.py). Without that alias the interpreter dies before any guardian code
    ("unknown encoding: ISO-8859-15")."""
    env = _iso_8859_15(tmp_path)
    binary = frozen_binary if layout == "default" else onefile_binary
    proc = subprocess.run([binary, "--version"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("guardian "), proc.stdout[-2000:]
    floor = floor_binaries["onedir" if layout == "default" else "onefile"]
    proc = subprocess.run([floor, "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_the_build_keeps_every_alias_of_its_codecs(frozen_binary):
    """base_library.zip's alias table is the standard library's less the aliases of codecs the
    build leaves out, and nothing else (packaging/frozen_aliases.py)."""
    import encodings.aliases

    from frozen_aliases import ALIASES_PYC, bundled_codecs, table_of

    top = onedir_of(frozen_binary)
    if top is None:
        pytest.skip("GUARDIAN_FROZEN_BIN is not a onedir build: no base_library.zip to read")
    with zipfile.ZipFile(os.path.join(top, "_internal", "base_library.zip")) as z:
        names = z.namelist()
        pyc = z.read(ALIASES_PYC)
    if pyc[:4] != importlib.util.MAGIC_NUMBER:
        pytest.skip("the frozen build is another Python than this one: its table cannot be compared")
    table = table_of(pyc)
    kept = bundled_codecs(names)
    assert {"utf_8", "latin_1", "iso8859_15", "cp1252"} <= kept
    assert table == {a: c for a, c in encodings.aliases.aliases.items() if c in kept}
    assert len(table) < len(encodings.aliases.aliases) / 2


def test_base_library_code_has_no_column_ranges(frozen_binary):
    """What Python starts with keeps line numbers, not a traceback's ^^^ column ranges
    (frozen_code.pycs_without_columns)."""
    import marshal
    import types

    top = onedir_of(frozen_binary)
    if top is None:
        pytest.skip("GUARDIAN_FROZEN_BIN is not a onedir build: no base_library.zip to read")
    with zipfile.ZipFile(os.path.join(top, "_internal", "base_library.zip")) as z:
        pycs = {name: z.read(name) for name in z.namelist() if name.endswith(".pyc")}
    if pycs["encodings/aliases.pyc"][:4] != importlib.util.MAGIC_NUMBER:
        pytest.skip("the frozen build is another Python than this one: its code cannot be read")

    def columns(code):
        return any(p[2] is not None for p in code.co_positions()) or any(
            columns(c) for c in code.co_consts if isinstance(c, types.CodeType))
    with_columns = sorted(name for name, pyc in pycs.items() if columns(marshal.loads(pyc[16:])))
    assert len(pycs) > 30 and not with_columns, with_columns


def test_the_daemons_names_fit_before_the_interned_table_doubles(floor_binaries):
    """Every name the daemon's modules intern goes into the interpreter's table of interned
    strings, which doubles when full (a 207 KiB table at 16,384 slots, written at once). The
    modules `guardian run` holds (from a real unfrozen run) are imported into the frozen floor,
    which then counts how many more names fit. The run itself interns some more (its config's
    keys, its events' fields: about 20 measured): 100 must still fit."""
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from modcost import frozen_argv, interned_headroom, run_modules

    names = [n for n in run_modules(sys.executable, 3) if n.startswith("guardian.")]
    assert "guardian.core.daemon" in names and "guardian.core.parts.leakwatch" in names, names
    floor = interned_headroom(frozen_argv(floor_binaries["onedir"], []))
    room = interned_headroom(frozen_argv(floor_binaries["onedir"], names))
    print("interned headroom: floor %d, with the daemon's %d modules %d" % (floor, len(names), room))
    # more room than the floor's: the table has doubled on the way
    assert 100 <= room < floor, (
        "room for %d more interned names with the daemon's modules, %d in the floor: the table %s "
        "(0.2 MiB). Keep what the daemon does not need at rest off its resident path, or trim what "
        "Python starts with (packaging/frozen_aliases.py)"
        % (room, floor, "has doubled" if room >= floor else "is about to double"))
