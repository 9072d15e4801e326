#!/usr/bin/env python3
"""Measure what a frozen guardian costs on a device: file size, unpacked size, start time,
RSS of all its processes, and tmpfs bytes held.

    python3 packaging/measure.py --bin dist/guardian --label onefile/tmpfs --unpack-to /dev/shm/guardian
    python3 packaging/measure.py --bin dist/guardian --label onedir

It starts `guardian run --dry-run` with NOTIFY_SOCKET pointing at a socket of its own and
times the start to READY=1, waits, then reads /proc/PID/smaps of every process of the
guardian (a onefile build is two: the unpacker and the guardian) and splits resident
memory into anonymous, files of the bundle, and other files (the C library, shared with
every process). For a foreign-architecture binary (run through qemu-user) only sizes and
times are meaningful: the RSS would be the emulator's.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "armhf"}


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head.startswith(b"#!"):  # a script (the Python package's entry point): runs here
        return host_machine()
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little"), "?")


def host_machine():
    m = os.uname().machine
    return "armhf" if m.startswith("arm") else m


def tree_size(path):
    """(bytes, allocated bytes) of a file or a directory tree."""
    if os.path.isfile(path):
        st = os.stat(path)
        return st.st_size, st.st_blocks * 512
    size = alloc = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            size += st.st_size
            alloc += st.st_blocks * 512
    return size, alloc


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, mnt, typ = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def descendants(pid):
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def memory_of(pid, bundle_dirs):
    """kB: rss, pss, anon, bundle file, other file, for one process."""
    m = {"rss": 0, "pss": 0, "anon": 0, "bundle": 0, "other": 0}
    path = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if not first.endswith(":"):  # a mapping header: start-end perms offset dev inode [path]
                parts = line.split(None, 5)
                path = parts[5].strip() if len(parts) > 5 else ""
                continue
            if first == "Rss:":
                kb = int(line.split()[1])
                m["rss"] += kb
                if not path or path.startswith("["):
                    m["anon"] += kb
                elif any(path.startswith(d) for d in bundle_dirs):
                    m["bundle"] += kb
                else:
                    m["other"] += kb
            elif first == "Pss:":
                m["pss"] += int(line.split()[1])
            elif first == "Anonymous:" and path and not path.startswith("["):
                # private copies of file pages (relocations): anonymous memory
                kb = int(line.split()[1])
                m["anon"] += kb
                if any(path.startswith(d) for d in bundle_dirs):
                    m["bundle"] -= kb
                else:
                    m["other"] -= kb
    return m


def wait_ready(sock, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("guardian exited with %s before READY=1" % proc.returncode)
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            data = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            continue
        if "READY=1" in data.split("\n"):
            return time.monotonic()
    raise SystemExit("no READY=1 within %.0f s" % timeout)


def measure(args):
    binary = os.path.realpath(args.bin)
    native = elf_machine(binary) == host_machine()
    onedir = os.path.isdir(os.path.join(os.path.dirname(binary), "_internal"))
    with open(binary, "rb") as f:
        script = f.read(2) == b"#!"
    work = tempfile.mkdtemp(prefix="guardian-measure-")
    unpack = os.path.abspath(args.unpack_to) if args.unpack_to else os.path.join(work, "unpack")
    os.makedirs(unpack, exist_ok=True)
    env = dict(os.environ, TMPDIR=unpack)
    for var in ("LD_LIBRARY_PATH", "PYTHONPATH", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(var, None)
    result = {"label": args.label, "binary": binary,
              "mode": "script" if script else "onedir" if onedir else "onefile",
              "arch": elf_machine(binary), "emulated": not native}
    size, _ = tree_size(os.path.dirname(binary) if onedir else binary)
    result["file_bytes"] = size

    # Start time of a short command: --version, best and median of N.
    times = []
    for _ in range(args.runs):
        t0 = time.monotonic()
        subprocess.run([binary, "--version"], env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.monotonic() - t0)
    result["version_s_median"] = round(statistics.median(times), 3)
    result["version_s_min"] = round(min(times), 3)

    # The daemon: start to READY=1, then memory once it settled.
    sock_path = os.path.join(work, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    denv = dict(env, NOTIFY_SOCKET=sock_path)
    cmd = [binary, "run", "--dry-run", "--state-file", os.path.join(work, "state.json")] + args.run_args
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=denv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    try:
        result["ready_s"] = round(wait_ready(sock, proc, args.timeout) - t0, 3)
        time.sleep(args.settle)
        pids = descendants(proc.pid)
        result["processes"] = len(pids)
        meis = [os.path.join(unpack, n) for n in os.listdir(unpack) if n.startswith("_MEI")]
        bundle_dirs = [d + "/" for d in meis] + ([os.path.dirname(binary) + "/"] if onedir else [])
        if meis:
            result["unpacked_bytes"], alloc = tree_size(meis[0])
            result["unpack_fs"] = fs_type(unpack)
            result["tmpfs_bytes"] = alloc if result["unpack_fs"] == "tmpfs" else 0
        else:
            result["unpacked_bytes"] = 0
            result["unpack_fs"] = "-"
            result["tmpfs_bytes"] = 0
        if native:
            total = {"rss": 0, "pss": 0, "anon": 0, "bundle": 0, "other": 0}
            per = []
            for pid in pids:
                m = memory_of(pid, bundle_dirs)
                per.append(m["rss"])
                for k in total:
                    total[k] += m[k]
            result.update({k + "_kb": v for k, v in total.items()})
            result["rss_kb_per_process"] = per
            # RAM the guardian holds: its anonymous memory, plus its bundle files that
            # cannot be evicted (all of them on tmpfs; on flash the mapped ones stay
            # resident while used but are clean page cache, counted as bundle_kb).
            pinned = result["tmpfs_bytes"] // 1024
            result["held_kb"] = total["anon"] + max(pinned, total["bundle"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            result["exit_code"] = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            result["exit_code"] = "killed"
        sock.close()
    leftovers = [n for n in os.listdir(unpack) if n.startswith("_MEI")]
    result["left_behind"] = leftovers
    shutil.rmtree(work, ignore_errors=True)
    if args.unpack_to:
        for n in leftovers:
            shutil.rmtree(os.path.join(unpack, n), ignore_errors=True)
    return result


def table(rows):
    mib = lambda b: "%.1f MiB" % (b / 1048576.0)  # noqa: E731
    out = ["| build | arch | file | unpacked | unpacked to | `--version` | start to READY | processes"
           " | RSS (anon + bundle + other) | PSS | tmpfs held | RAM held |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "rss_kb" in r:
            rss = "%s (%s + %s + %s)" % (mib(r["rss_kb"] * 1024), mib(r["anon_kb"] * 1024),
                                         mib(r["bundle_kb"] * 1024), mib(r["other_kb"] * 1024))
            pss, held = mib(r["pss_kb"] * 1024), mib(r["held_kb"] * 1024)
        else:
            rss = pss = held = "n/a (qemu-user)"
        out.append("| %s | %s | %s | %s | %s | %.2f s | %.2f s | %d | %s | %s | %s | %s |" % (
            r["label"], r["arch"], mib(r["file_bytes"]), mib(r["unpacked_bytes"]),
            r["unpack_fs"], r["version_s_median"], r["ready_s"], r["processes"], rss, pss,
            mib(r["tmpfs_bytes"]), held))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", help="the onefile binary, or the onedir executable")
    p.add_argument("--label", default="")
    p.add_argument("--unpack-to", help="TMPDIR for a onefile build (default: a new dir under $TMPDIR)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after READY=1 before reading memory")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", metavar="FILE", help="append the result as one JSON line")
    p.add_argument("--table", nargs="*", metavar="JSONL", help="print a markdown table of these results and exit")
    p.add_argument("run_args", nargs="*", help="extra arguments for `guardian run` (after --)")
    args = p.parse_args()
    if args.table is not None:
        rows = []
        for path in args.table:
            with open(path) as f:
                rows.extend(json.loads(line) for line in f if line.strip())
        print(table(rows))
        return 0
    if not args.bin:
        p.error("--bin is required (or --table)")
    r = measure(args)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    print(json.dumps(r, indent=1, sort_keys=True))
    return 0 if not r["left_behind"] else 1


if __name__ == "__main__":
    sys.exit(main())
