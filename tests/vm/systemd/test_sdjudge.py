"""The systemd VMs' judge (judge.py) on made-up runs: each check must fail where it should. No VM
is booted; these run with the unit tests."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import judge  # noqa: E402

KICK = "<4>guardian: WARNING: kill: hog[319]: chosen as culprit"


def _round(**extra):
    r = {"type": "round", "round": 1, "rate": 20, "t0": 10.0, "t1": 26.0, "ended_s": 16.0, "hog_pid": 319,
         "hog_alive": False, "hog_mib": 310, "hog_result": "signal", "hog_exit": "2/9", "oom_kills": 0,
         "oom_messages": 0, "critd_before": 130, "critd_after": 130, "critd_alive": True, "lowprio_before": 132,
         "lowprio_after": 132, "lowprio_active": True, "monitor": {"min_available_kib": 16488}, "tool_alive": True,
         "journal": [KICK]}
    r.update(extra)
    return r


def _run(tool="guardian", rounds=None, boot=None, done=True, errors=(), mem=512):
    b = {"type": "boot", "pid1": "systemd", "cgroup_fs": "cgroup2fs", "swap_total_kib": 0, "uptime": 10.4,
         "boot_time": "Startup finished in 2.7s (kernel) + 7.4s (userspace) = 10.1s"}
    b.update(boot or {})
    lines = [b, {"type": "ready", "pid": 135}]
    lines += [{"type": "error", "message": m} for m in errors]
    lines += [{"type": "idle", "seconds": 20.0, "ticks": 12, "wakes": 41, "rss_kib": 11784, "pss_kib": 10272,
               "anon_kib": 5216, "startup_ticks": 252}]
    lines += rounds if rounds is not None else [_round()]
    if done:
        lines.append({"type": "done"})
    return {"scenario": "runaway-%d" % mem, "tool": tool, "mem_mib": mem, "seconds": 60.0, "lines": lines,
            "expect_rounds": len(rounds) if rounds is not None else 1}


def _failures(run):
    res = judge.judge(run)
    return res["failures"] + [f for r in res["rounds"] for f in r["failures"]]


def test_a_clean_run_passes():
    res = judge.judge(_run())
    assert res["passed"], _failures(_run())
    assert res["rounds"][0]["how"] == "SIGKILL"


def test_a_kernel_oom_kill_fails_the_round():
    assert any("kernel OOM kill" in f for f in _failures(_run(rounds=[_round(oom_kills=1, hog_result="oom-kill")])))
    # the counter alone, or the kernel's report alone, is enough
    assert any("kernel OOM kill" in f for f in _failures(_run(rounds=[_round(oom_messages=1)])))
    assert judge.who_ended(_round(hog_result="oom-kill")) == "kernel OOM kill"


def test_the_critical_unit_must_live_with_the_same_pid():
    assert any("critd.service ended" in f for f in _failures(_run(rounds=[_round(critd_after=400)])))
    assert any("critd.service ended" in f for f in _failures(_run(rounds=[_round(critd_alive=False)])))


def test_the_runaway_must_be_the_only_one_to_end():
    assert any("lowprio.service ended" in f for f in _failures(_run(rounds=[_round(lowprio_active=False)])))
    assert any("lowprio.service ended" in f for f in _failures(_run(rounds=[_round(lowprio_after=900)])))
    assert any("never ended" in f for f in _failures(_run(rounds=[_round(hog_alive=True)])))


def test_the_guardian_must_say_so_at_warning_in_the_journal():
    assert any("journalctl -p warning" in f for f in _failures(_run(rounds=[_round(journal=[])])))
    # the references are not asked for it
    assert not _failures(_run(tool="earlyoom", rounds=[_round(journal=[])]))


def test_the_boot_must_be_systemd_on_cgroup_v2_without_swap():
    assert any("PID 1" in f for f in _failures(_run(boot={"pid1": "init"})))
    assert any("cgroup v2" in f for f in _failures(_run(boot={"cgroup_fs": "tmpfs"})))
    assert any("swap" in f for f in _failures(_run(boot={"swap_total_kib": 1024})))


def test_a_vm_that_did_not_finish_fails():
    assert any("no done line" in f for f in _failures(_run(done=False)))
    assert any("agent: x" in f for f in _failures(_run(errors=["x"])))
    run = _run(rounds=[])
    run["expect_rounds"] = 3
    assert any("0 of 3 rounds" in f for f in _failures(run))
    assert any("no boot line" in f for f in _failures({"scenario": "s", "tool": "guardian", "lines": []}))


def test_only_the_guardian_is_asserted():
    assert judge.asserted(judge.judge(_run()))
    assert not judge.asserted(judge.judge(_run(tool="oomd")))


def test_how_the_runaway_ended():
    assert judge.who_ended(_round(hog_exit="2/15", hog_result="success")) == "SIGTERM"
    assert judge.who_ended(_round(hog_alive=True)) == "still running"
    assert judge.who_ended(_round(hog_exit="1/3", hog_result="exit-code")) == "exit 3"


def test_the_report_puts_the_tools_side_by_side():
    results = [judge.judge(_run(t)) for t in judge.TOOLS]
    results.append(judge.judge(_run("oomd", rounds=[_round(hog_result="oom-kill", oom_kills=1, hog_exit="2/9")])))
    text = judge.report(results[1:])
    row = [line for line in text.splitlines() if line.startswith("| 512 MiB | 20 |")][0]
    assert row.count("|") == 6 and "kernel OOM kill" in row and "**FAIL**" in row
    assert "| 512 MiB | earlyoom (Debian unit) | 11.5 | 10.0 | 5.1 | 12 | 41 | 252 |" in text
    assert "(reference, not asserted)" in text
