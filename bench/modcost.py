#!/usr/bin/env python3
"""What each module costs in memory, over the floor: unfrozen (python -S, compiled bytecode) and
frozen (dist/guardian-floor, the floor built by the guardian's own spec).

    python3 bench/modcost.py                        every set, both ways (about a minute)
    python3 bench/modcost.py --sets floor,json      some sets
    python3 bench/modcost.py --measure BIN [ARG...] one command: RSS, RssAnon, RssFile and PSS of all
                                                    its processes after --settle s, unpacked bytes

Each module set is imported by packaging/floor.py (`--import a,b`) in a fresh process, which then
runs the floor's wake loop; after --settle seconds the bench sums VmRSS, RssAnon and RssFile
(/proc/PID/status) and PSS (smaps_rollup) over the process and its children (a onefile binary is
two processes: the unpacker and the Python one), and reports each set's delta over the floor.
The sets: the floor; each heavy standard-library module; the guardian's module groups, among them
everything `guardian run` imports, taken from a real unfrozen run (`run --dry-run`).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FLOOR_SCRIPT = os.path.join(REPO, "packaging", "floor.py")
KIB = 1024
sys.path.insert(0, os.path.join(REPO, "packaging"))
from measure import descendants, tree_size  # noqa: E402  (one process-tree walk, one tree size)

from frozen_excludes import EXCLUDES  # noqa: E402  (left out of the frozen build: no frozen row)

STDLIB = ["typing", "dataclasses", "inspect", "logging", "json", "re", "socket", "_socket", "subprocess",
          "threading", "argparse", "tomllib", "ctypes", "enum", "collections", "functools", "struct",
          "select", "signal"]

# The modules `guardian run` holds once started, reported by the process itself after RUN_SETTLE s.
RUN_TRACE = r"""
import os, signal, sys
out = sys.argv[1]
sys.argv = ["guardian"] + sys.argv[2:]
def dump(signum, frame):
    with open(out, "w") as f:
        f.write("\n".join(sorted(sys.modules)) + "\n")
    os._exit(0)
signal.signal(signal.SIGALRM, dump)
signal.alarm(int(os.environ.get("MODCOST_RUN_SETTLE", "3")))
from guardian.cli import main
sys.exit(main())
"""


def log(message):
    print("modcost: %s" % message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Measuring one process tree


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def memory_kib(pids):
    """kB summed over the processes: rss, anon, file, shmem (status), pss (smaps_rollup)."""
    total = {"rss": 0, "anon": 0, "file": 0, "shmem": 0, "pss": 0}
    names = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}
    for pid in pids:
        for line in _read("/proc/%d/status" % pid).splitlines():
            parts = line.split()
            if parts and parts[0] in names:
                total[names[parts[0]]] += int(parts[1])
        for line in _read("/proc/%d/smaps_rollup" % pid).splitlines():
            if line.startswith("Pss:"):
                total["pss"] += int(line.split()[1])
    return total


def tree_bytes(path):
    return tree_size(path)[1]  # allocated bytes


def measure(argv, settle=3.0, env=None, modules=False, timeout=60.0):
    """Start argv (TMPDIR: a new empty directory), wait settle s, measure, stop it. With
    modules=True the command prints its module names on its first line (guardian-floor
    --modules). Returns kB figures, the process count, bytes unpacked under TMPDIR, modules."""
    scratch = tempfile.mkdtemp(prefix="modcost-")
    env = dict(os.environ if env is None else env, TMPDIR=scratch)
    for var in ("LD_LIBRARY_PATH", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(var, None)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        names = None
        if modules:
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("%s: %s" % (" ".join(argv), proc.stderr.read().decode()[-2000:]))
            names = line.split()
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError("%s exited %s: %s" % (" ".join(argv), proc.returncode,
                                                      proc.stderr.read().decode()[-2000:]))
        pids = descendants(proc.pid)
        out = memory_kib(pids)
        out["processes"] = len(pids)
        out["unpacked"] = tree_bytes(scratch)
        if names is not None:
            out["modules"] = len(names)
            out["module_names"] = names
        return out
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(timeout=timeout)
        proc.stdout.close()
        proc.stderr.close()
        shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The sets


def guardian_modules(package):
    """Every module of a guardian package, by its files (no import)."""
    top = os.path.join(REPO, *package.split("."))
    out = []
    for name in sorted(os.listdir(top)):
        if name == "__init__.py":
            out.insert(0, package)
        elif name.endswith(".py") and name != "__main__.py":
            out.append(package + "." + name[:-3])
    return out


def run_modules(python, settle):
    """What `guardian run --dry-run` has imported once it runs (unfrozen, python -S)."""
    work = tempfile.mkdtemp(prefix="modcost-run-")
    try:
        trace = os.path.join(work, "trace.py")
        out = os.path.join(work, "modules.txt")
        with open(trace, "w") as f:
            f.write(RUN_TRACE)
        env = dict(os.environ, PYTHONPATH=REPO, MODCOST_RUN_SETTLE=str(int(settle)))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([python, "-S", trace, out, "run", "--dry-run", "--board", "generic",
                        "--state-file", "", "--events-file", ""],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        with open(out) as f:
            names = f.read().split()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # __main__ and the import machinery are the floor's too
    return [n for n in names if n != "__main__" and not n.startswith("_frozen_importlib")]


def module_sets(python, settle):
    sets = [("floor", [])]
    sets += [(name, [name]) for name in STDLIB]
    run = run_modules(python, settle)
    sets += [
        ("guardian.config", ["guardian.config"]),
        ("guardian.kernel.*", guardian_modules("guardian.kernel")),
        ("guardian.core.daemon", ["guardian.core.daemon"]),
        ("guardian.board.load", ["guardian.board.load"]),
        ("guardian.commands.*", guardian_modules("guardian.commands")),
        ("`guardian run` (%d modules)" % len(run), [n for n in run if n.startswith("guardian")] or run),
    ]
    return sets


# ----------------------------------------------------------------------------------------------
# The table


def unfrozen_argv(python, modules):
    return [python, "-S", FLOOR_SCRIPT, "--modules"] + (["--import", ",".join(modules)] if modules else [])


def frozen_argv(binary, modules):
    return [binary, "--modules"] + (["--import", ",".join(modules)] if modules else [])


def interned_headroom(argv, env=None):
    """How many more names fit in the interned-strings table once a set is imported: argv is a
    floor command with --modules (as unfrozen_argv and frozen_argv make it), run with
    --interned-headroom instead (packaging/floor.py)."""
    argv = [a for a in argv if a != "--modules"] + ["--interned-headroom"]
    out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("interned headroom:"):
            return int(line.split(":")[1])
    raise RuntimeError("%s exited %s: %s" % (" ".join(argv), out.returncode, out.stderr[-2000:]))


def run(python=sys.executable, frozen=None, only=None, settle=3.0, jobs=4, log=log):
    """Measure every set (or those named in only) unfrozen and, when frozen names a floor binary,
    frozen. Returns {"sets": [...], "floor": {...}} with kB figures."""
    subprocess.run([python, "-m", "compileall", "-q", os.path.join(REPO, "guardian")], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    sets = module_sets(python, settle)
    if only:
        sets = [s for s in sets if s[0] == "floor" or s[0] in only or s[0].split(" ")[0] in only]
    log("%d sets, unfrozen%s, %d at a time, %.0f s each" % (
        len(sets), " and frozen (%s)" % os.path.relpath(frozen, REPO) if frozen else "", jobs, settle))
    tasks = []
    for name, mods in sets:
        tasks.append((name, "unfrozen", unfrozen_argv(python, mods)))
        if frozen and not any(m in EXCLUDES for m in mods):
            tasks.append((name, "frozen", frozen_argv(frozen, mods)))

    def one(task):
        name, how, argv = task
        m = measure(argv, settle=settle, env=env, modules=True)
        # the room left in the interned-strings table, where crossing it costs 0.2 MiB at once
        if name == "floor" or name.startswith("`guardian run`"):
            m["interned_headroom"] = interned_headroom(argv, env=env)
        return name, how, m

    results = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for name, how, m in pool.map(one, tasks):
            results[(name, how)] = m
    rows = []
    for name, mods in sets:
        row = {"set": name, "imports": mods}
        for how in ("unfrozen", "frozen"):
            m = results.get((name, how))
            if m is None:
                continue
            base = results[("floor", how)]
            row[how] = {k: m[k] for k in ("rss", "anon", "file", "pss", "processes", "unpacked", "modules",
                                          "interned_headroom") if k in m}
            row[how]["d_rss"] = m["rss"] - base["rss"]
            row[how]["d_anon"] = m["anon"] - base["anon"]
            row[how]["d_modules"] = m["modules"] - base["modules"]
        rows.append(row)
    return {"settle_s": settle, "python": python, "frozen": frozen and os.path.relpath(frozen, REPO),
            "sets": rows}


def _mib(kib):
    return "%.2f" % (kib / 1024.0)


def _delta(kib):
    return "%+.2f" % (kib / 1024.0)


def table(res):
    frozen = any("frozen" in r for r in res["sets"])
    head = ["set", "modules (+)", "RSS MiB", "ΔRSS", "ΔRssAnon"]
    if frozen:
        head += ["frozen modules (+)", "frozen RSS MiB", "ΔRSS", "ΔRssAnon"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["sets"]:
        cells = [r["set"]]
        for how in ("unfrozen", "frozen") if frozen else ("unfrozen",):
            m = r.get(how)
            if m is None:
                cells += ["–"] * 4
            elif r["set"] == "floor":
                cells += ["%d" % m["modules"], _mib(m["rss"]), "(anon %s)" % _mib(m["anon"]),
                          "(PSS %s)" % _mib(m["pss"])]
            else:
                cells += ["%d (+%d)" % (m["modules"], m["d_modules"]), _mib(m["rss"]), _delta(m["d_rss"]),
                          _delta(m["d_anon"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headroom_line(res):
    """Names that still fit before the interpreter's interned-strings table doubles."""
    parts = []
    for how in ("unfrozen", "frozen"):
        got = ["%s %d" % (r["set"].split(" (")[0], r[how]["interned_headroom"]) for r in res["sets"]
               if "interned_headroom" in r.get(how, {})]
        if got:
            parts.append("%s: %s" % (how, ", ".join(got)))
    if not parts:
        return ""
    return ("Interned-names headroom (how many more names fit in the interpreter's table of interned "
            "strings before it doubles, 0.2 MiB written at once; `guardian-floor --interned-headroom`): "
            + "; ".join(parts) + ".")


def markdown(res):
    text = ["## Module cost over the floor", "",
            "RSS of a fresh process after importing each set and %.0f s of the floor's wake loop "
            "(packaging/floor.py), summed over its processes; Δ is over the floor. Unfrozen: `python -S` "
            "with compiled bytecode. Frozen: `%s --import SET` (the floor built by the guardian's spec); "
            "– where the set is left out of the frozen build (packaging/frozen_excludes.py)."
            % (res["settle_s"], res["frozen"] or "dist/guardian-floor (not built)"), "", table(res), ""]
    line = headroom_line(res)
    if line:
        text += [line, ""]
    return "\n".join(text)


def default_floor():
    for path in ("dist/guardian-floor-onedir/guardian-floor", "dist/guardian-floor"):
        path = os.path.join(REPO, path)
        if os.access(path, os.X_OK):
            return path
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default=sys.executable, help="the interpreter for the unfrozen figures")
    p.add_argument("--frozen", default=None,
                   help="the frozen floor (default: dist/guardian-floor-onedir/guardian-floor or dist/guardian-floor)")
    p.add_argument("--no-frozen", action="store_true", help="unfrozen figures only")
    p.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--measure", nargs=argparse.REMAINDER, metavar="ARGV",
                   help="measure this one command instead (all its processes, unpacked bytes)")
    args = p.parse_args(argv)
    if args.measure:
        m = measure(args.measure, settle=args.settle, modules="--modules" in args.measure)
        print(json.dumps(m, sort_keys=True))
        return 0
    frozen = None if args.no_frozen else (args.frozen or default_floor())
    res = run(python=args.python, frozen=frozen, only=set(filter(None, args.sets.split(","))),
              settle=args.settle, jobs=args.jobs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
