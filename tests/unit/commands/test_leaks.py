"""`guardian leaks [--json]` (guardian.commands.leaks.cli_main) against a fake /proc and a state file."""
import argparse
import json
import os
import time

from guardian.config import MIB, Config, Critical, LeakWatch, Leaks, Match
from guardian.kernel.procs import read_procs
from guardian.commands.leaks import cli_main
from guardian.core.parts.leakstate import Series
from guardian.core.parts.leakwatch import LeakWatcher
from guardian.core.match import classify
from tests.support import fakeproc
from tests.support.fakes import Tell


BOARD = """
[board]
name = "leaktest"

[[critical]]
name = "svc"
match = { comm = "svc" }
leak = { max_rss_mib = 64, on_leak = "notify" }

[[critical]]
name = "absent"
match = { comm = "nothere" }
"""


def setup(tmp_path, rate_kib_s=16):
    root = str(tmp_path / "proc")
    fakeproc.basic_tree(root)
    fakeproc.process(root, 300, "svc", 50)
    conf = tmp_path / "board.toml"
    conf.write_text(BOARD)
    state = str(tmp_path / "state")
    crit = (Critical("svc", Match(comm="svc"), leak=LeakWatch(max_rss_mib=64)),
            Critical("absent", Match(comm="nothere")))
    cfg = Config(critical=crit, leaks=Leaks(state_dir=state))
    w = LeakWatcher(cfg, proc_root=root, state_dir=state, tell=Tell())
    procs = read_procs(root)
    roles = classify(procs, cfg, root)
    svc = next(p for p in procs if p.comm == "svc")
    assert roles[svc.pid].entry.name == "svc"  # the process the state file below is about
    now = time.monotonic()
    s = w.series["svc"] = Series("svc", "svc", "critical")
    for i in range(180):  # the last 30 min: growing 16 KiB/s up to the 50 MiB it has now
        t = now - 1790 + i * 10
        rss = int(50 * MIB - rate_kib_s * 1024 * (now - t)) // 4096 * 4096
        s.add(t, svc.pid, svc.starttime, rss, rss, -1)
    w.series["svc"].grew = [("[heap]", 28 * MIB, 40 * MIB), ("/usr/lib/libleaky.so.3 (rw)", 64 * 1024, 80 * 1024)]
    w.series["svc"].grew_span = (now - 900, now - 10, svc.pid)
    w._dirty = True
    assert w.save(now, force=True)
    return argparse.Namespace(config=str(conf), board=None, json=True, state_dir=state, proc_root=root,
                              sys_root=str(tmp_path / "sys"))


def test_leaks_json(tmp_path, capsys):
    args = setup(tmp_path)
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["board"] == "leaktest" and out["state_file"].endswith("leaks.json")
    svc, absent = out["watched"]
    assert svc["name"] == "svc" and svc["pid"] == 300 and svc["running"]
    assert abs(svc["slope_kib_min"] - 16 * 60) < 16 * 60 * 0.05
    assert svc["growing"] and svc["status"] == "LEAK" and svc["leak"]  # 14 MiB to go at 16 KiB/s: 15 min
    assert 800 < svc["eta_ceiling_s"] < 1000
    assert svc["grew"][0]["mapping"] == "[heap]" and svc["grew_pid"] == 300
    assert absent == {"kind": "critical", "name": "absent", "pid": None, "running": False, "status": "no history",
                      "why": absent["why"]}


def test_leaks_text(tmp_path, capsys):
    args = setup(tmp_path)
    args.json = False
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "guardian leaks  board leaktest" in text
    assert "svc" in text and "+960.0 KiB/min" in text and "LEAK" in text
    assert "[heap]" in text and "libleaky.so.3 (rw)" in text
    assert "absent" in text and "not running" in text


def test_leaks_without_state_or_with_a_garbled_one(tmp_path, capsys):
    args = setup(tmp_path)
    with open(os.path.join(args.state_dir, "leaks.json"), "w") as f:
        f.write('{"format": 1, "ser')
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("ignored" in m for m in out["messages"])
    svc = out["watched"][0]
    assert svc["running"] and svc["status"] in ("learning", "no history")


def test_bad_config_is_refused(tmp_path, capsys):
    args = setup(tmp_path)
    with open(args.config, "w") as f:
        f.write("[[critical]]\nname = 3\n")
    assert cli_main(args) == 2
    assert "guardian:" in capsys.readouterr().err
