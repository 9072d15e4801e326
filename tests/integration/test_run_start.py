"""`guardian run` as a real process through its real entry: the start-up work (parser, board
config loader, sysctls) and every reload run in short-lived children (guardian.boot,
guardian.core.parts.reload), so the daemon never holds the loader; what a user sees is as before."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import REPO
from tests.support.processes import PROGRAMS, stop_process

pytestmark = pytest.mark.integration

LAUNCHER = os.path.join(PROGRAMS, "guardian_run.py")
NEVER_RESIDENT = ("argparse", "tomllib", "guardian.board", "guardian.commands")


def board(path, name, reclaim=15.0, extra=""):
    # max_timeout_s = 1: a full tick every second at most, which the dump shows
    path.write_text('[board]\nname = "%s"\n[thresholds.reclaim]\npercent = %s\n[wait]\nmax_timeout_s = 1\n%s'
                    % (name, reclaim, extra))
    return str(path)


class Run:
    def __init__(self, tmp_path, *args, timeout_s=None):
        self.tmp = tmp_path
        self.events_file = str(tmp_path / "events.jsonl")
        self.dump_file = str(tmp_path / "dump.json")
        self.hook = tmp_path / "reload-hook"
        env = dict(os.environ, PYTHONPATH=REPO, GUARDIAN_TEST_DUMP=self.dump_file, GUARDIAN_TEST_RELOAD=str(self.hook))
        if timeout_s:
            env["GUARDIAN_TEST_RELOAD_TIMEOUT_S"] = str(timeout_s)
        self.log = open(str(tmp_path / "guardian.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, LAUNCHER, "--log-level", "debug", "run", "--dry-run", "--events-file", self.events_file,
             "--state-file", str(tmp_path / "state.json"), "--state-dir", str(tmp_path / "lib")] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.wait_for(lambda e: e["event"] == "start")

    def events(self, kind=None):
        try:
            with open(self.events_file) as f:
                found = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [e for e in found if kind is None or e["event"] == kind]

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def wait_for(self, predicate, timeout=30.0, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events()[after:] if predicate(e)]
            if found:
                return found[0]
            assert self.proc.poll() is None, "guardian exited %s:\n%s" % (self.proc.returncode, self.text())
            time.sleep(0.05)
        raise AssertionError("no such event in %s s: %s\n%s" % (timeout, self.events(), self.text()))

    def reload(self, timeout=30.0):
        """SIGHUP; the reload event it brings."""
        before = len(self.events())
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_for(lambda e: e["event"] == "reload", timeout, after=before)

    def dump(self):
        if os.path.exists(self.dump_file):
            os.remove(self.dump_file)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.dump_file):
            assert time.monotonic() < deadline and self.proc.poll() is None, self.text()
            time.sleep(0.02)
        with open(self.dump_file) as f:
            return json.load(f)

    def stop(self):
        status = stop_process(self.proc, 10)
        self.log.close()
        return status


@pytest.fixture
def start(tmp_path):
    runs = []

    def run(*args, **kw):
        r = Run(tmp_path, *args, **kw)
        runs.append(r)
        return r

    try:
        yield run
    finally:
        for r in runs:
            r.stop()


def guardian(*args):
    return subprocess.run([sys.executable, "-m", "guardian"] + list(args), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO, timeout=60)


def test_a_bad_config_stops_the_start_with_the_loaders_message(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[thresholds]\nkil = 3\n")
    out = guardian("run", "--config", str(path), "--state-file", "", "--events-file", "")
    assert out.returncode == 2
    assert out.stderr == "guardian: ERROR: %s:2: thresholds.kil: unknown key; did you mean 'kill'?\n" % path
    assert out.stdout == ""


def test_help_and_usage_errors_are_the_parsers(tmp_path):
    out = guardian("--log-level", "warning", "run", "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: guardian run ") and "--dry-run" in out.stdout
    assert out.stderr == ""
    out = guardian("run", "--no-such-option")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("usage: guardian ") and "unrecognized arguments: --no-such-option" in out.stderr
    out = guardian("--log-level", "loud", "run")
    assert out.returncode == 2 and "invalid choice: 'loud'" in out.stderr


def test_the_daemon_never_holds_the_parser_nor_the_loader(start, tmp_path):
    g = start("--config", board(tmp_path / "a.toml", "a", extra='[sysctl]\n"vm.swappiness" = "60"\n'))
    assert "sysctl: " in g.text()  # the child set (in a dry run: would set) the board's sysctls
    for when in ("started", "reloaded"):
        dump = g.dump()
        assert dump["pid"] == g.proc.pid and "guardian.core.daemon" in dump["modules"] and dump["board"] == "a"
        held = [m for m in dump["modules"] if any(m == n or m.startswith(n + ".") for n in NEVER_RESIDENT)]
        assert not held, "%s: %s" % (when, held)
        assert g.reload()["ok"] is True


def test_sighup_brings_the_new_config_or_keeps_the_old(start, tmp_path):
    path = tmp_path / "b.toml"
    g = start("--config", board(path, "a"))
    board(path, "b", reclaim=25.0)
    done = g.reload()
    assert done["ok"] is True and done["board"] == "b" and done["message"] == "config reloaded from %s" % path
    dump = g.dump()
    assert dump["board"] == "b" and dump["reclaim_percent"] == 25.0

    path.write_text("[thresholds]\nkil = 3\n")
    done = g.reload()
    assert done["ok"] is False
    assert done["message"] == ("config refused, keeping the old one: %s:2: thresholds.kil: unknown key; "
                               "did you mean 'kill'?" % path)
    assert g.dump()["board"] == "b" and g.proc.poll() is None

    board(path, "c")
    assert g.reload()["board"] == "c" and g.dump()["board"] == "c"
    assert g.stop() == 0


def test_a_hanging_or_crashing_reload_child_costs_only_that_reload(start, tmp_path):
    path = tmp_path / "b.toml"
    g = start("--config", board(path, "a"), timeout_s=4)
    board(path, "b")
    g.hook.write_text("hang")
    began = time.monotonic()
    g.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    first = g.dump()
    time.sleep(2.5)
    second = g.dump()
    assert first["reload_busy"] and second["reload_busy"]
    assert second["last_full_tick"] > first["last_full_tick"]  # the loop ticks on meanwhile
    done = g.wait_for(lambda e: e["event"] == "reload", 30)
    assert done["ok"] is False and "did not answer within 4 s (killed)" in done["message"]
    assert time.monotonic() - began < 15 and g.dump()["board"] == "a"

    g.hook.write_text("crash")
    done = g.reload()
    assert done["ok"] is False and "signal %d" % signal.SIGSEGV in done["message"]

    g.hook.write_text("")
    assert g.reload()["board"] == "b"
    assert g.dump()["reload_busy"] is False
    children = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(g.proc.pid)], capture_output=True,
                              text=True).stdout.split()
    assert "Z" not in "".join(children[1::2]), children  # every child was reaped
    assert g.stop() == 0


def _connector_sockets(pid):
    """The NETLINK_CONNECTOR (11) sockets among the descriptors of pid, from /proc/net/netlink."""
    with open("/proc/net/netlink") as f:
        connector = {line.split()[9] for line in f.readlines()[1:] if line.split()[1] == "11"}
    held = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            held.add(link[8:-1])
    return held & connector


def test_the_start_line_says_how_the_adj_keeper_hears_of_new_processes(start, tmp_path):
    """An operator (and the VM suite's report, per architecture) reads from the start line
    whether the keeper has the kernel's exec events or polls /proc; what it says is what the
    daemon holds: a proc connector socket, or none."""
    g = start("--config", board(tmp_path / "a.toml", "a"))
    message = g.events("start")[0]["message"]
    said = message.split("; oom_score_adj keeper: ", 1)[1]
    if said.startswith("netlink proc connector"):
        assert _connector_sockets(g.proc.pid), message
    else:
        assert said.endswith("polling /proc every 1.0 s") and "netlink proc connector" in said, message
        assert not _connector_sockets(g.proc.pid), message
