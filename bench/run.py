#!/usr/bin/env python3
"""guardian bench: idle cost, hot path and reaction, side by side with earlyoom and nohang.

Run as root (`make bench` installs earlyoom, nohang and matplotlib first). Prints a markdown
table, writes bench/results/results.md, results.json and bench.png, and takes about 4 minutes:
  1. idle (--idle-seconds, default 60): all tools running together at their default settings;
  2. hot path: Daemon._tick, Sensor.read, policy.decide, victim selection with
     200/1 000/5 000 sleeping children;
  3. reaction: a 256 MiB memory cgroup, hogs at 50/200/1 000 MiB/s, --reps runs each;
  4. modcost: RSS of each module set over the floor (packaging/floor.py), unfrozen and frozen
     (dist/guardian-floor, from `make frozen`): bench/modcost.py, about a minute.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import report  # noqa: E402


def log(message: str) -> None:
    print("bench: %s" % message, file=sys.stderr, flush=True)


def _tree_bytes(binary: str) -> int:
    """The size of a frozen build: the file, or the whole onedir tree it belongs to."""
    top = os.path.dirname(os.path.realpath(binary))
    if not os.path.isdir(os.path.join(top, "_internal")):
        return os.path.getsize(binary)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(top) for f in files)


def versions() -> dict:
    out = {"guardian": common.guardian_version()}
    out["earlyoom"] = common.dpkg_version("earlyoom") or "not installed"
    out["nohang"] = common.dpkg_version("nohang") or "not installed"
    frozen = os.path.join(common.REPO, "dist", "guardian")
    real = os.path.relpath(os.path.realpath(frozen), common.REPO)
    out["guardian frozen binary"] = ("dist/guardian -> %s, %.1f MB" % (real, _tree_bytes(frozen) / 1e6)
                                     if os.access(frozen, os.X_OK) else "not built")
    try:
        import matplotlib
        out["matplotlib"] = matplotlib.__version__
    except ImportError:
        out["matplotlib"] = "not installed"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--reps", type=int, default=5, help="reaction runs per rate and hog")
    parser.add_argument("--rates", default="50,200,1000", help="hog fill rates, MiB/s")
    parser.add_argument("--counts", default="200,1000,5000", help="sleeping children for victim selection")
    parser.add_argument("--only", default="idle,hotpath,reaction,modcost", help="phases to run (comma-separated)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, events)")
    args = parser.parse_args(argv)
    phases = set(args.only.split(","))

    if os.geteuid() != 0:
        print("bench: needs root (memory cgroups, other tools' /proc files, killing hogs)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="guardian-bench-")
    started = time.monotonic()
    results = {"machine": common.machine_facts(), "versions": versions(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    try:
        if "idle" in phases:
            import idle
            results["idle"] = idle.run(workdir, seconds=args.idle_seconds, log=log)
        if "hotpath" in phases:
            import hotpath
            log("hot path")
            results["hotpath"] = hotpath.run(counts=tuple(int(c) for c in args.counts.split(",")), log=log)
        if "reaction" in phases:
            why_not = common.memory_cgroup_available()
            if why_not:
                log("reaction skipped: %s" % why_not)
                results["reaction"] = {"skip": why_not, "runs": [], "limit_mib": 256}
            else:
                import reaction
                rates = tuple(int(r) for r in args.rates.split(","))
                results["reaction"] = reaction.run(workdir, rates=rates, reps=args.reps, log=log)
                if os.access(os.path.join(common.REPO, "dist", "guardian"), os.X_OK):
                    frozen = reaction.run(workdir, rates=rates, reps=args.reps, frozen=True, log=log)
                    results["reaction"]["runs"] += frozen["runs"]
        if "modcost" in phases:
            import modcost
            floor = modcost.default_floor()
            log("module cost (%s)" % ("unfrozen and %s" % os.path.relpath(floor, common.REPO) if floor
                                      else "unfrozen only: dist/guardian-floor not built, make frozen"))
            results["modcost"] = modcost.run(frozen=floor, log=lambda m: log("modcost: " + m))
    finally:
        if args.keep:
            log("scratch directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["runtime_s"] = round(time.monotonic() - started, 1)

    png = os.path.join(args.out, "bench.png")
    why = report.chart(results, png)
    if why:
        log(why)
    else:
        results["chart"] = os.path.relpath(png, common.REPO)
    text = report.markdown(results) + "\nTotal bench runtime: %.0f s.\n" % results["runtime_s"]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
