"""Matching board entries against fake /proc trees, with the real readers; and a hostile
command line against the slice of it a cmdline regex may read (issue 12)."""
import os
import time

import pytest

from guardian.board.load import load_config
from guardian.board.schema import backtracking_risk
from guardian.config import Config, Critical, LowPriority, Match
from guardian.core.match import MAX_MATCH_CHARS, classify, matches, programs
from guardian.kernel.procs import ProcInfo, read_procs
from tests.support import fakeproc


def proc(root, pid, comm, cmdline=None, cgroup=None, exe=None, kthread=False, adj=0):
    fakeproc.process(root, pid, comm, 4, cmdline=cmdline, kthread=kthread, adj=adj)
    if cgroup is not None:
        fakeproc.write(os.path.join(root, str(pid), "cgroup"), cgroup)
    if exe is not None:
        os.symlink(exe, os.path.join(root, str(pid), "exe"))


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "proc")
    proc(root, 1, "systemd", ["/sbin/init"])
    proc(root, 2, "kthreadd", kthread=True)
    proc(root, 3, "watchdogd", kthread=True)
    proc(root, 310, "connmand", ["/usr/sbin/connmand", "-n"], cgroup="0::/system.slice/connman.service\n")
    proc(root, 320, "sshd", ["sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"])
    proc(root, 321, "sshd", ["sshd: root@pts/0"])
    proc(root, 322, "sshd", ["/usr/sbin/sshd", "-D", "-R"])
    proc(root, 330, "node-red", ["node-red"], cgroup="0::/system.slice/nodered.service\n")
    proc(root, 331, "node", ["node", "/usr/bin/node-red", "--max-old-space-size=256"],
         cgroup="0::/system.slice/nodered.service\n")
    proc(root, 340, "python3", ["/usr/bin/python3", "/opt/webui/app.py"], cgroup="0::/system.slice/webui.service\n")
    proc(root, 341, "python3", ["/usr/bin/python3", "/opt/other/app.py"], cgroup="0::/system.slice/webui.services\n")
    proc(root, 350, "mosquitto", ["/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"],
         cgroup="12:memory:/system.slice/mosquitto.service\n0::/system.slice/mosquitto.service\n")
    proc(root, 360, "dropbear", ["/usr/sbin/dropbear", "-R"], exe="/usr/sbin/dropbear (deleted)")
    proc(root, 370, "systemd-journal", ["/lib/systemd/systemd-journald"])
    return root


def by_pid(tree):
    return {p.pid: p for p in read_procs(tree)}


@pytest.mark.parametrize("match, expected", [
    (Match(comm="connmand"), {310}),
    (Match(comm="sshd"), {320, 321, 322}),
    (Match(comm="sshd", cmdline=r'^/usr/s?bin/sshd\b(?!.* -R)|\[listener\]'), {320}),
    (Match(cmdline=r"(^|/)node-red\b"), {330, 331}),
    (Match(unit="nodered.service"), {330, 331}),
    (Match(unit="webui.service"), {340}),
    (Match(cgroup="/system.slice/webui.service"), {340}),
    (Match(cgroup="/system.slice/webui.service/"), {340}),
    (Match(comm="python3", cmdline=r"/opt/webui/"), {340}),
    (Match(unit="mosquitto.service"), {350}),
    (Match(exe="/usr/sbin/dropbear"), {360}),  # a replaced binary reads "... (deleted)"
    (Match(comm="systemd-journald"), {370}),  # the kernel keeps 15 characters
    (Match(comm="watchdogd"), set()),  # kernel threads never match
    (Match(comm="connmand", unit="NetworkManager.service"), set()),  # every field must fit
])
def test_matches(tree, match, expected):
    procs = by_pid(tree)
    assert {pid for pid, p in procs.items() if matches(match, p, tree)} == expected


def test_classify_critical_wins_and_first_entry_wins(tree):
    config = Config(
        critical=(Critical("node-red", Match(cmdline="node-red")), Critical("any-node", Match(comm="node"))),
        low_priority=(LowPriority("node", Match(comm="node")), LowPriority("webui", Match(unit="webui.service"))),
    )
    roles = classify(read_procs(tree), config, tree)
    assert {pid: (r.kind, r.entry.name) for pid, r in roles.items()} == {
        330: ("critical", "node-red"),
        331: ("critical", "node-red"),
        340: ("low_priority", "webui"),
    }


def test_classify_without_entries_is_empty(tree):
    assert classify(read_procs(tree), Config(), tree) == {}


def test_shipped_rpi3b_board_against_a_fake_pi(tree):
    config = load_config(board="rpi3b", boards_dirs=[]).config
    roles = classify(read_procs(tree), config, tree)
    names = {pid: r.entry.name for pid, r in roles.items()}
    assert names[320] == "sshd"
    assert 321 not in names and 322 not in names  # sessions are ordinary processes
    assert names[330] == names[331] == "node-red"
    assert names[350] == "mosquitto"
    assert names[360] == "dropbear"
    assert names[370] == "journald"
    assert 1 not in names and 2 not in names


def test_the_reported_attack_no_longer_stalls_a_match():
    """'^(\\w+\\s?)+$' against 'a' * 24 + '!' took 2.2 s per classify; it is refused now. What
    is accepted (at most two unbounded repeats) runs on a bounded slice of the arguments: the
    worst accepted shape against a hostile 100 KiB command line, a generous bound."""
    hostile = ProcInfo(pid=4242, ppid=1, pgid=4242, comm="x", cmdline=("a" * 24 + "!",) + ("b" * 100000,), uid=65534,
                       rss=0, rss_anon=0, oom_score=0, oom_score_adj=0, kthread=False, cgroup="", starttime=1)
    assert backtracking_risk(r"^(\w+\s?)+$")
    assert backtracking_risk(r".*b.*b.*c$")  # three unbounded repeats
    worst = r".*b.*c$"
    assert not backtracking_risk(worst)
    started = time.monotonic()
    assert not matches(Match(cmdline=worst), hostile)
    assert time.monotonic() - started < 2.0
    assert MAX_MATCH_CHARS == 512


# The daemon's cmdline patterns come compiled from its loader child (programs -> marshal ->
# adopt): the same patterns, and no re in the daemon.
_ADOPT = r"""
import marshal, sys
from guardian.config import Config, Critical, Match
from guardian.core import match
patterns = %r
config = Config(critical=tuple(Critical(name="c%%d" %% i, match=Match(cmdline=p)) for i, p in enumerate(patterns)))
data = sys.stdin.buffer.read()
match.adopt(marshal.loads(data))
match.precompile(config)
texts = %r
print(repr(["re" in sys.modules, [[bool(match.regex(p).search(t)) for t in texts] for p in patterns],
            [match.regex(p).pattern for p in patterns]]))
"""


def test_the_daemon_adopts_the_patterns_its_loader_compiled_and_never_imports_re():
    import ast
    import marshal
    import re
    import subprocess
    import sys

    from tests.support import REPO

    patterns = [r"^/usr/s?bin/sshd\b(?!.* -R)|\[listener\]", r"^(\S*/)?dbus-(daemon|broker)\b.*--system",
                r"(?P<name>node)-red(?:\s|$)", r"caf\u00e9|[^\x00-\x7f]+x"]
    texts = ["/usr/sbin/sshd -D", "/usr/sbin/sshd -D -R", "sshd: [listener] 0 of 10", "/usr/bin/dbus-daemon --system",
             "dbus-broker --user", "node-red", "node-redx", "café", "\u00e9\u00e9x"]
    config = Config(critical=tuple(Critical(name="c%d" % i, match=Match(cmdline=p)) for i, p in enumerate(patterns)))
    compiled = programs(config)
    assert sorted(compiled) == sorted(patterns)
    out = subprocess.run([sys.executable, "-S", "-c", _ADOPT % (patterns, texts)], input=marshal.dumps(compiled),
                         env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, check=True, timeout=60).stdout
    imported_re, found, sources = ast.literal_eval(out.decode())
    assert not imported_re
    assert found == [[bool(re.search(p, t)) for t in texts] for p in patterns]
    assert sources == patterns


def test_without_programs_the_daemon_compiles_with_re(monkeypatch):
    from guardian.core import match as match_module

    monkeypatch.setattr(match_module, "_regex_cache", {})
    match_module.adopt(None)
    match_module.adopt({"a+b": ("not", "a program")})  # one that does not build is left to re
    assert match_module.regex("a+b").search("xaab")
