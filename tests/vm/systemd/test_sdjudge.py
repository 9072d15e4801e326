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


RESTART = {"type": "restart", "critd_before": 130, "critd_after": 700, "start_us": 90_000_000, "seen_uptime": 90.03,
           "adj": -900, "adj_ms": 30, "adj_ms_from_fork": 80}
CGROUP_OOM = {"type": "cgroup_oom", "t0": 100.0, "pid": 800, "alive": False, "result": "oom-kill",
              "cgroup": "/system.slice/capped.service", "oom_kills": 1, "journal": []}
KERNEL_OOM = {"time": 101.0, "event": "kernel_oom", "cause": "cgroup_limit",
              "oom_memcg": "/system.slice/capped.service", "message": "capped[800] killed: cgroup limit"}


def _run(tool="guardian", rounds=None, boot=None, done=True, errors=(), mem=512, restart=RESTART,
         cgroup_oom=CGROUP_OOM, events=(KERNEL_OOM,)):
    b = {"type": "boot", "pid1": "systemd", "cgroup_fs": "cgroup2fs", "swap_total_kib": 0, "uptime": 10.4,
         "boot_time": "Startup finished in 2.7s (kernel) + 7.4s (userspace) = 10.1s"}
    b.update(boot or {})
    lines = [b, {"type": "ready", "pid": 135}]
    lines += [{"type": "error", "message": m} for m in errors]
    lines += [{"type": "idle", "seconds": 20.0, "ticks": 12, "wakes": 41, "rss_kib": 11784, "pss_kib": 10272,
               "anon_kib": 5216, "startup_ticks": 252}]
    lines += rounds if rounds is not None else [_round()]
    lines += [x for x in (restart, cgroup_oom) if x]
    lines += [{"type": "event", "e": e} for e in events]
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


def test_a_restarted_critical_unit_gets_its_adj_within_a_tenth_of_a_second():
    assert any("150 ms after its exec" in f and "CAP_NET_ADMIN" in f
               for f in _failures(_run(restart=dict(RESTART, adj_ms=150))))
    assert any("oom_score_adj is 0" in f for f in _failures(_run(restart=dict(RESTART, adj=0, adj_ms=None))))
    assert any("no new process" in f for f in _failures(_run(restart=dict(RESTART, critd_after=130))))
    assert any("no restart line" in f for f in _failures(_run(restart=None)))
    assert not _failures(_run(tool="oomd", restart=dict(RESTART, adj=0, adj_ms=None)))


def test_a_memorymax_overrun_is_explained_by_a_kernel_oom_event_from_kmsg():
    assert any("cause 'unknown'" in f and "/dev/kmsg" in f
               for f in _failures(_run(events=[dict(KERNEL_OOM, cause="unknown")])))
    assert any("not capped.service's" in f for f in _failures(_run(events=[dict(KERNEL_OOM, oom_memcg="/")])))
    assert any("no kernel_oom event" in f for f in _failures(_run(events=[])))
    # an event from before the overrun does not count
    assert any("no kernel_oom event" in f for f in _failures(_run(events=[dict(KERNEL_OOM, time=50.0)])))
    assert any("did not end by its cgroup" in f
               for f in _failures(_run(cgroup_oom=dict(CGROUP_OOM, result="success", oom_kills=0))))
    assert not _failures(_run(tool="earlyoom", events=[]))
    text = judge.report([judge.judge(_run())])
    assert ("| 512 MiB | guardian | 30 ms after its exec (80 ms after systemd forked it) | Result=oom-kill, kernel "
            "OOM kills 1 | kernel_oom: cause cgroup_limit, cgroup /system.slice/capped.service |") in text


SIGKILL = {"type": "sigkill", "pid_before": 136, "pid_after": 900, "back_s": 4.2, "restarts": 1,
           "state": "active/running", "hog_alive": False, "hog_result": "signal", "hog_exit": "2/9", "oom_kills": 0}
SIGSTOP = {"type": "sigstop", "watchdog": "30s", "pid_before": 900, "pid_after": 950, "back_s": 33.0, "waited_s": 50}
SCOPE = {"type": "scope", "t0": 300.0, "ended_s": 9.0, "grower_alive": False, "grower_result": "signal",
         "grower_exit": "2/9", "slice_oom_kills": 0, "oom_kills": 0, "appidle_active": True, "critd_active": True}


DIFFUSE = {"type": "diffuse", "t0": 200.0, "lowprio_before": 132, "lowprio_after": 0,
           "lowprio_state": "inactive/success", "lowprio_stop_job": 1, "critd_alive": True, "oom_kills": 0,
           "journal": ["guardian: WARNING: terminate: lowprio[132] by stop command ['systemctl', 'stop', "
                       "'lowprio.service']: no clear culprit"]}


def _gateway(tool="guardian", **lines):
    run = _run(tool, rounds=[], restart=None, cgroup_oom=None, events=[{"time": 301.0, "event": "reclaim",
                                                                       "step": "cgroup_reclaim",
                                                                       "message": "cgroup_reclaim ok: freed 1 MiB"}])
    body = [dict(DIFFUSE), dict(SIGKILL), dict(SIGSTOP), dict(SCOPE)]
    for x in body:
        x.update(lines.get(x["type"], {}))
    run["lines"][-1:-1] = body
    run.update(scenario="gateway-512", expect=("diffuse", "sigkill", "sigstop", "scope"), expect_rounds=0)
    return run


def test_a_clean_gateway_run_passes_and_reports_its_reclaim():
    res = judge.judge(_gateway())
    assert res["passed"], _failures(_gateway())
    assert res["scope_reclaims"] == ["cgroup_reclaim ok: freed 1 MiB"]
    assert "back in 4.2 s; runaway: SIGKILL" in judge.report([res])


def test_systemd_must_bring_a_killed_guardian_back_and_it_must_still_act():
    assert any("not back within" in f for f in _failures(_gateway(sigkill={"back_s": None})))
    assert any("not back within" in f for f in _failures(_gateway(sigkill={"back_s": 21.0})))
    assert any("not restarted by the watchdog" in f for f in _failures(_gateway(sigstop={"back_s": 56.0})))
    assert any("never ended" in f for f in _failures(_gateway(sigkill={"hog_alive": True})))
    assert any("kernel OOM kill after the restart" in f for f in _failures(_gateway(sigkill={"oom_kills": 2})))


def test_the_watchdog_must_restart_a_stopped_guardian():
    assert any("not restarted by the watchdog" in f for f in _failures(_gateway(sigstop={"back_s": None})))
    assert any("not restarted by the watchdog" in f for f in _failures(_gateway(sigstop={"pid_after": 900})))
    # earlyoom's unit has no watchdog: shown, not asserted
    assert not _failures(_gateway("earlyoom", sigstop={"back_s": None}))


def test_a_scoped_guardian_must_beat_the_slices_own_oom_killer():
    assert any("slice's OOM killer fired" in f for f in _failures(_gateway(scope={"slice_oom_kills": 1})))
    assert any("never ended" in f for f in _failures(_gateway(scope={"grower_alive": True})))
    assert any("app-idle.service" in f for f in _failures(_gateway(scope={"appidle_active": False})))
    assert any("critd.service ended" in f for f in _failures(_gateway(scope={"critd_active": False})))
    run = _gateway()
    run["lines"] = [x for x in run["lines"] if x["type"] != "scope"]
    assert any("no scope line" in f for f in _failures(run))


def test_memory_reclaim_in_the_slice_is_reported_not_asserted():
    run = _gateway()
    run["lines"] = [x for x in run["lines"] if x.get("type") != "event" or x["e"].get("event") != "reclaim"]
    res = judge.judge(run)
    assert res["passed"] and res["scope_reclaims"] == []


def test_without_a_culprit_lowprio_must_go_first():
    worker_first = _gateway(diffuse={"journal": ["guardian: WARNING: kill: worker[250]: no clear culprit"],
                                     "lowprio_after": 132, "lowprio_stop_job": 0})
    assert any("lowprio.service did not go first" in f and "aimed at worker" in f for f in _failures(worker_first))
    assert "not ended, worker went first" in judge.report([judge.judge(worker_first)])
    # asked to stop, but still running when the growth was over: no
    asked = _gateway(diffuse={"lowprio_after": 132})
    assert any("did not go first" in f and "still running" in f for f in _failures(asked))
    # a decision that came only after a worker's: no
    later = _gateway(diffuse={"journal": ["guardian: WARNING: terminate: worker[250] by SIGTERM: x",
                                          DIFFUSE["journal"][0]]})
    assert any("did not go first" in f for f in _failures(later))
    # the stop job too slow, the guardian's SIGKILL after it: passes, and the report says so
    slow = _gateway(diffuse={"lowprio_stop_job": 0, "lowprio_state": "failed/signal"})
    assert not _failures(slow)
    assert "ended: failed/signal (0 stop job(s) in its journal)" in judge.report([judge.judge(slow)])
    # memory past the kill line at the first look (a burst): its SIGKILL first passes too
    burst = _gateway(diffuse={"lowprio_stop_job": 0, "lowprio_state": "failed/signal", "journal": [
        "guardian: WARNING: kill: lowprio[132]: available 10.2 MiB below the kill line 31.9 MiB; no clear culprit"]})
    assert not _failures(burst)
    assert any("kernel OOM kill in the growth" in f for f in _failures(_gateway(diffuse={"oom_kills": 1})))
    assert any("critd.service ended" in f for f in _failures(_gateway(diffuse={"critd_alive": False})))
    assert "stopped by systemctl (1 stop job(s) in its journal)" in judge.report([judge.judge(_gateway())])
