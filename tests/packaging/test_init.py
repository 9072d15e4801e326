"""init/: the BusyBox/SysV script and the systemd unit.

The SysV script is run the way a Buildroot board runs it: in a chroot whose only tools
are BusyBox's (its sh, its start-stop-daemon), starting the real frozen guardian.
"""
import configparser
import glob
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.packaging.conftest import onedir_of
from tests.support import REPO
from tests.support.tools import need, need_root

SCRIPT = os.path.join(REPO, "init", "S03guardian")
DEFAULTS = os.path.join(REPO, "init", "guardian.default")
UNIT = os.path.join(REPO, "init", "guardian.service")


def test_shell_scripts_are_shellcheck_clean():
    shellcheck = need("shellcheck")
    scripts = [SCRIPT, DEFAULTS] + sorted(glob.glob(os.path.join(REPO, "packaging", "*.sh")))
    proc = subprocess.run([shellcheck, "--shell=sh", "--severity=style"] + scripts,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout


def test_sysv_script_follows_buildroot_conventions():
    """What Buildroot's utils/check-package checks in an S-script (lib_sysv), for CI, which
    has no Buildroot checkout."""
    name = os.path.basename(SCRIPT)
    with open(SCRIPT) as f:
        text = f.read()
    daemon = re.search(r'^DAEMON="([^"/]+)"$', text, re.M)
    assert daemon, "DAEMON=\"name\" (no path) is missing"
    assert re.fullmatch(r"S\d\d" + re.escape(daemon.group(1)), name)
    assert re.search(r'^PIDFILE="/var/run/\$DAEMON\.pid"$', text, re.M)
    assert '. "/etc/default/$DAEMON"' in text
    for n, line in enumerate(text.splitlines(), 1):
        assert not re.match(r"^\t* ", line), "line %d: indent with tabs" % n
        assert line == line.rstrip(), "line %d: trailing whitespace" % n
    assert text.endswith("\n") and not text.endswith("\n\n")
    # check-package wants it not executable in the source tree (installed with -m 0755)
    assert not os.access(SCRIPT, os.X_OK)
    for option in ("--start", "--stop", "--background", "--make-pidfile", "--pidfile",
                   "--exec", "--signal HUP", "--test"):
        assert option in text, option


def _unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    with open(UNIT) as f:
        parser.read_string(f.read())
    return parser


def test_systemd_unit_keeps_what_the_guardian_must_do():
    s = _unit()["Service"]
    assert s["Type"] == "notify"
    assert s["NotifyAccess"] == "all"  # onefile: the guardian is the main PID's child
    assert s["WatchdogSec"]
    assert s["OOMScoreAdjust"] == "-1000"
    assert s["Restart"] == "always"
    assert "HUP" in s["ExecReload"] and "$MAINPID" in s["ExecReload"]
    caps = set(s["CapabilityBoundingSet"].split())
    assert caps == {"CAP_KILL", "CAP_IPC_LOCK", "CAP_SYS_RESOURCE", "CAP_DAC_OVERRIDE", "CAP_SYS_PTRACE",
                    "CAP_NET_ADMIN", "CAP_SYSLOG"}  # the proc connector; /dev/kmsg (issue 16)
    # /dev/kmsg stays readable: the kernel OOM report behind a kernel_oom event is read there.
    assert "ProtectKernelLogs" not in s
    assert s["BindReadOnlyPaths"] == "/dev/kmsg" and s["DeviceAllow"] == "/dev/kmsg r"
    # These would break writing /proc/sys/vm, /proc/PID/oom_score_adj or cgroup files,
    # or hide processes from it.
    for key in ("ProtectKernelTunables", "ProtectControlGroups", "ProtectProc", "ProcSubset",
                "PrivatePIDs", "PrivateUsers", "DynamicUser", "User", "MemoryDenyWriteExecute"):
        assert key not in s, key
    assert "TMPDIR=%S/guardian" in s["Environment"]
    assert s["StateDirectory"] == "guardian" and s["RuntimeDirectory"] == "guardian"


def test_systemd_unit_verifies(tmp_path):
    analyze = need("systemd-analyze")
    # verify insists that the executables exist: point ExecStart at a stand-in.
    stub = tmp_path / "guardian"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    with open(UNIT) as f:
        unit = f.read().replace("/usr/bin/guardian", str(stub))
    (tmp_path / "guardian.service").write_text(unit)
    proc = subprocess.run([analyze, "verify", str(tmp_path / "guardian.service")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    # systemd-analyze also reports on units the host has: keep only ours.
    ours = [line for line in proc.stdout.splitlines() if "guardian" in line]
    assert proc.returncode == 0 and not ours, proc.stdout


def test_a_script_runs_under_its_own_name(tmp_path):
    """The S-script matches by --name guardian: the Python package's /usr/bin/guardian is a
    script whose process the kernel names after the script, not after python3."""
    script = tmp_path / "guardian"
    # The interpreter itself, not whatever `python3` is on PATH: a version-manager shim there is a
    # shell script, and the kernel would name the process after the shim.
    script.write_text("#!%s\nimport time\ntime.sleep(30)\n" % os.path.realpath(sys.executable))
    script.chmod(0o755)
    proc = subprocess.Popen([str(script)])
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            assert f.read().split(" (", 1)[1].split(")", 1)[0] == "guardian"
    finally:
        proc.kill()
        proc.wait()


def _libs(binary):
    """The shared libraries (and the loader) ldd lists for a binary."""
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, universal_newlines=True).stdout
    return re.findall(r"(/\S+\.so[.\d]*)", out)


def _board_root(root, frozen_binary):
    """A root with nothing but BusyBox (as sh and start-stop-daemon), the C library, the
    frozen guardian, and the init script and defaults file as a Buildroot image has them."""
    busybox = need("busybox")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "etc/default", "proc", "sys",
              "dev", "run", "var/lib", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.symlink("../run", os.path.join(root, "var", "run"))
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.split()
    assert "start-stop-daemon" in applets and "sh" in applets
    for applet in applets:
        link = os.path.join(root, "bin", applet)
        if not os.path.exists(link):
            os.symlink("busybox", link)
    top = onedir_of(frozen_binary)
    if top:  # the onedir layout, installed as packaging/README.md says
        shutil.copytree(top, os.path.join(root, "usr", "lib", "guardian"), symlinks=True)
        os.symlink("../lib/guardian/" + os.path.basename(os.path.realpath(frozen_binary)),
                   os.path.join(root, "usr", "bin", "guardian"))
    else:
        shutil.copy2(frozen_binary, os.path.join(root, "usr", "bin", "guardian"))
    # The C library: for busybox (if not static) and the guardian, and the libraries
    # of the C library's family that the bundled libpython links.
    libs = set(_libs(busybox)) | set(_libs(frozen_binary))
    for inner in glob.glob(os.path.join(top, "_internal", "libpython*")) if top else ():
        libs.update(_libs(inner))
    libc = [p for p in libs if os.path.basename(p).startswith("libc.so")]
    if libc:
        libdir = os.path.dirname(os.path.realpath(libc[0]))
        for pattern in ("libc.so*", "libm.so*", "libdl.so*", "libpthread.so*", "libutil.so*",
                        "librt.so*", "libz.so*", "libgcc_s.so*"):
            libs.update(glob.glob(os.path.join(libdir, pattern)))
    for lib in libs:
        dest = os.path.join(root, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    shutil.copy2(SCRIPT, os.path.join(root, "etc", "init.d", "S03guardian"))
    with open(DEFAULTS) as f:
        defaults = f.read()
    # The chroot sees the host's /proc: a host process that fits an entry of the generic board
    # is leak-watched, and its trend saved on stop. That state goes to a directory of the
    # test's own, so that what the unpack dir holds does not depend on what the host runs.
    args = "--dry-run --board generic --events-file /var/lib/events.jsonl --state-dir /var/lib/guardian-state"
    defaults = defaults.replace('GUARDIAN_ARGS=""', 'GUARDIAN_ARGS="%s"' % args)
    defaults = defaults.replace('#GUARDIAN_LOG_LEVEL="debug"', 'GUARDIAN_LOG_LEVEL="debug"')
    with open(os.path.join(root, "etc", "default", "guardian"), "w") as f:
        f.write(defaults)


SESSION = textwrap.dedent("""\
    set -u
    export PATH=/bin
    unset JOURNAL_STREAM  # a BusyBox board has no journal: what the guardian says goes to syslogd
    syslogd -n -C64 & syslogd=$!
    wait_log() {  # wait_log PATTERN: up to 10 s for a line in syslogd's buffer
        n=100
        while ! logread 2>/dev/null | grep -q "$1"; do
            n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 0.1
        done
    }
    S=/etc/init.d/S03guardian
    step() { echo "== $*"; }
    events() { cat /var/lib/events.jsonl 2>/dev/null; }
    second_start() { [ "$(grep -c '"event": "start"' /var/lib/events.jsonl)" -ge 2 ]; }
    wait_for() {  # wait_for SECONDS COMMAND...
        n=$(($1 * 10)); shift
        while ! "$@" >/dev/null 2>&1; do
            n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 0.1
        done
    }
    step start; sh $S start; echo "rc=$?"
    wait_for 60 grep -q '"event": "start"' /var/lib/events.jsonl || echo "NO START EVENT"
    pid=$(cat /var/run/guardian.pid); echo "pid=$pid"
    echo "children=$(cat /proc/$pid/task/$pid/children 2>/dev/null)"
    echo "comm=$(cat /proc/$pid/comm)"
    mkdir -p /var/lib/guardian
    echo "unpacked=$(ls /var/lib/guardian)"
    # Not the unpacker's (on a board the daemon's leaks.json is there): its cleanups leave it.
    : >/var/lib/guardian/not-unpacked
    # stderr is /dev/null under start-stop-daemon --background: the log lines are in logread
    wait_log "guardian.*config: " || echo "NO CONFIG LINE IN SYSLOG"
    step syslog; logread | grep ' guardian' | head -20
    step status; sh $S status; echo "rc=$?"
    step start-again; sh $S start; echo "rc=$?"
    step guardian-status; /usr/bin/guardian status --json | grep -c '"daemon": {'
    step reload; sh $S reload; echo "rc=$?"
    wait_for 30 grep -q '"event": "reload"' /var/lib/events.jsonl || echo "NO RELOAD EVENT"
    step restart; sh $S restart; echo "rc=$?"
    wait_for 60 second_start || echo "NO SECOND START"
    pid2=$(cat /var/run/guardian.pid); echo "pid2=$pid2"
    kids2=$(cat /proc/$pid2/task/$pid2/children 2>/dev/null)
    step stop; sh $S stop; echo "rc=$?"
    for p in $pid2 $kids2; do [ -d /proc/$p ] && echo "STILL RUNNING $p $(cat /proc/$p/comm)"; done
    echo "pidfile=$(ls /var/run/guardian.pid 2>/dev/null)"
    echo "left=$(ls /var/lib/guardian)"
    step stop-again; sh $S stop; echo "rc=$?"
    step status-stopped; sh $S status; echo "rc=$?"
    step events; events
    kill $syslogd
    """)


@pytest.mark.parametrize("layout", ["default", "onefile"])
def test_sysv_script_under_busybox(layout, tmp_path, frozen_binary, onefile_binary):
    """start, status, reload, restart, stop of the real frozen guardian (--dry-run), with
    BusyBox's sh and start-stop-daemon as the only tools, the way a Buildroot board has it:
    the default (onedir) layout and the single-file one."""
    need_root()
    unshare = need("unshare")
    root = str(tmp_path / "root")
    binary = frozen_binary if layout == "default" else onefile_binary
    onedir = onedir_of(binary) is not None
    _board_root(root, binary)
    with open(os.path.join(root, "session.sh"), "w") as f:
        f.write(SESSION)
    # A mount namespace of its own: /proc, /sys and /dev for the chroot, gone afterwards.
    # /dev of its own (a tmpfs with the host's null, zero, random, urandom and kmsg bound in):
    # the session's syslogd creates /dev/log, which must not replace the host's.
    nodes = " && ".join("{ [ ! -e /dev/@N ] || { touch @R/dev/@N && mount --bind /dev/@N @R/dev/@N; }; }"
                        .replace("@N", n) for n in ("null", "zero", "random", "urandom", "kmsg"))
    outer = ("mount -t proc proc @R/proc && mount --rbind /sys @R/sys && mount -t tmpfs tmpfs @R/dev && "
             + nodes + " && exec chroot @R /bin/sh /session.sh").replace("@R", root)
    proc = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", outer],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    out = proc.stdout
    steps = dict((block.split("\n", 1) + [""])[:2] for block in out.split("== ")[1:])
    assert proc.returncode == 0, out
    assert "OK" in steps["start"] and "rc=0" in steps["start"], out
    assert "NO START EVENT" not in out and "NO RELOAD EVENT" not in out and "NO SECOND START" not in out, out
    assert "comm=guardian" in steps["start"], out
    if onedir:  # one process, nothing unpacked
        assert "children=\n" in steps["start"] and "unpacked=\n" in steps["start"], out
    else:  # onefile: the unpacker and the guardian, unpacked into GUARDIAN_UNPACK_DIR
        assert re.search(r"children=\d+", steps["start"]), out
        assert re.search(r"unpacked=_MEI\w+", steps["start"]), out
    # Log lines (not only events) reach syslog, with their level: logread shows the board chosen.
    assert "NO CONFIG LINE IN SYSLOG" not in out, out
    assert re.search(r"daemon\.info guardian\[\d+\]: config: ", steps["syslog"]), out
    assert re.search(r"daemon\.notice guardian\[\d+\]: start: ", steps["syslog"]), out
    assert "is running" in steps["status"] and "rc=0" in steps["status"], out
    assert "already running" in steps["start-again"], out
    assert steps["guardian-status"].strip() == "1", out
    assert "OK" in steps["reload"], out
    assert "OK" in steps["restart"], out
    assert "OK" in steps["stop"] and "rc=0" in steps["stop"], out
    assert "STILL RUNNING" not in steps["stop"], out
    assert "pidfile=\n" in steps["stop"] and "left=not-unpacked\n" in steps["stop"], out
    assert "not running" in steps["stop-again"] and "rc=0" in steps["stop-again"], out
    assert "rc=3" in steps["status-stopped"], out
    events = steps["events"]
    assert events.count('"event": "start"') == 2 and '"event": "reload"' in events, out
    assert events.count('"event": "stop"') == 2, out
