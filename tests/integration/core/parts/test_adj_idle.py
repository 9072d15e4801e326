"""The idle cost of the oom_score_adj keeper: CPU ticks and wake-ups of a process that runs
the keeper's loop (netlink proc connector, or the /proc polling fallback) next to one that
runs no keeper at all. The keeper's wake-ups follow the system's exec rate (netlink) or the
clock (poll), so the exec rate seen during each run is reported with it.

    python3 tests/integration/core/parts/test_adj_idle.py [--seconds 30] [--board rpi3b] [--execs-per-s 0]

prints one line per mode. The pytest test runs a short version and checks the shape only
(the machine's own exec rate decides the netlink numbers).
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

import pytest


# The checkout, four levels up: found from here, since this file also runs as a script (and as
# its own child), without the tests package on the path.
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
MODES = ("nothing", "netlink", "poll")


def _cpu_ticks():
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _ctx_switches():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def child(mode, seconds, board):
    """Runs in its own process: set up, then measure only the loop."""
    sys.path.insert(0, REPO)
    from guardian.board.load import load_config
    from guardian.kernel.procs import read_procs
    from guardian.core.parts.adj import AdjKeeper

    config = load_config(board=board).config
    keeper = None
    if mode != "nothing":
        keeper = AdjKeeper(config, use_netlink=(mode == "netlink"))
        if mode == "netlink" and keeper.fileno() is None:
            print(json.dumps({"mode": mode, "skipped": keeper.mode_detail}))
            return
        keeper.apply(read_procs())
    ticks0, ctx0, wakes = _cpu_ticks(), _ctx_switches(), 0
    start = time.monotonic()
    deadline = start + seconds
    next_poll = start + (keeper.poll_interval_s() or 0) if keeper else deadline
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if mode == "nothing":
            time.sleep(deadline - now)
        elif mode == "netlink":
            # as the daemon does: the fd in its poll set, and poll() when the keeper asks for it
            interval = keeper.poll_interval_s()
            if interval is None:
                next_poll = deadline
            elif next_poll >= deadline or next_poll < now - interval:
                next_poll = now + interval
            if select.select([keeper.fileno()], [], [], max(0.0, min(next_poll, deadline) - now))[0]:
                wakes += 1
                keeper.read_events()
            elif interval is not None and time.monotonic() >= next_poll:
                wakes += 1
                keeper.poll()
                next_poll += interval
        else:
            time.sleep(max(0.0, min(next_poll, deadline) - now))
            if time.monotonic() >= next_poll:
                wakes += 1
                keeper.poll()
                next_poll += keeper.poll_interval_s()
    print(json.dumps({"mode": mode, "seconds": seconds, "ticks": _cpu_ticks() - ticks0,
                      "ctx_switches": _ctx_switches() - ctx0, "wakes": wakes,
                      "detail": (keeper.mode_detail + ", ended as " + keeper.mode) if keeper else "no keeper"}))


def _count_execs(sock, until):
    from guardian.kernel.connector import parse_events

    n = 0
    while time.monotonic() < until:
        if select.select([sock], [], [], max(0.0, until - time.monotonic()))[0]:
            try:
                n += len(parse_events(sock.recv(65536)))
            except BlockingIOError:
                pass
    return n


def measure(mode, seconds, board="rpi3b", execs_per_s=0):
    """One mode in a fresh process; returns its report plus the exec events seen meanwhile."""
    sys.path.insert(0, REPO)
    from guardian.kernel.connector import open_proc_connector

    load = None
    if execs_per_s:
        load = subprocess.Popen(["/bin/sh", "-c", "while :; do /bin/true; sleep %s; done" % (1.0 / execs_per_s)])
    counter, _ = open_proc_connector()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode, "--seconds", str(seconds),
                             "--board", board], stdout=subprocess.PIPE, cwd=REPO)
    execs = _count_execs(counter, time.monotonic() + seconds + 0.5) if counter else None
    out, _ = proc.communicate(timeout=seconds + 60)
    if counter:
        counter.close()
    if load:
        load.kill()
        load.wait()
    report = json.loads(out.decode().strip().splitlines()[-1])
    report["system_exec_and_comm_events"] = execs
    return report


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--board", default="rpi3b")
    p.add_argument("--execs-per-s", type=float, default=0)
    p.add_argument("--child", choices=MODES)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.seconds, args.board)
        return 0
    tck = os.sysconf("SC_CLK_TCK")
    print("board %s, %.0f s per mode, extra load %s exec/s, %d ticks/s" % (args.board, args.seconds,
                                                                         args.execs_per_s, tck))
    for mode in MODES:
        r = measure(mode, args.seconds, args.board, args.execs_per_s)
        if "skipped" in r:
            print("%-8s skipped: %s" % (mode, r["skipped"]))
            continue
        print("%-8s %3d ticks  %5d wakes  %5d voluntary switches  (%s exec/comm events on the system; %s)" % (
            mode, r["ticks"], r["wakes"], r["ctx_switches"], r["system_exec_and_comm_events"], r["detail"]))
    return 0


@pytest.mark.integration
def test_keeper_idle_cost_shape():
    reports = {mode: measure(mode, 3.0) for mode in MODES}
    for r in reports.values():
        print("\n%s" % r)
    assert reports["nothing"]["wakes"] == 0
    assert 2 <= reports["poll"]["wakes"] <= 4  # once a second
    if "skipped" not in reports["netlink"]:
        events = reports["netlink"]["system_exec_and_comm_events"]
        # one wake per burst of exec/comm events at most (none on a quiet system)
        assert reports["netlink"]["wakes"] <= events + 4  # plus its own 1 s timer once batched


if __name__ == "__main__":
    sys.exit(main())
