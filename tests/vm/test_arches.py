"""The VM suite's architecture parts (arches.py, image.py, run.py) without booting a VM: what each
board's QEMU is given, libraries resolved inside another architecture's root, and the report
across architectures. Run with the unit tests."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import arches  # noqa: E402
import image  # noqa: E402
from scenarios import BY_NAME, SCENARIOS  # noqa: E402

_spec = importlib.util.spec_from_file_location("vm_run_arches", os.path.join(HERE, "run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)

MIB = 1024
PATHS = {"kernel": "/k", "initramfs": "/i", "root": "/r.sqfs"}


def test_parse_names_the_unknown_architecture():
    assert [a.name for a in arches.parse("x86_64, arm64")] == ["x86_64", "arm64"]
    with pytest.raises(SystemExit, match="unknown architecture 'riscv64'"):
        arches.parse("arm64,riscv64")


def test_each_board_gets_its_machine_console_and_results_port():
    x86 = run.qemu_command(arches.ARCHES["x86_64"], PATHS, 256, "a", "/d", "/c", "/res")
    assert x86[x86.index("-machine") + 1] == "pc" and x86[-2:] == ["-serial", "file:/res"]
    arm = run.qemu_command(arches.ARCHES["arm64"], PATHS, 128, "a", "/d", "/c", "/res")
    assert arm[0].endswith("qemu-system-aarch64")
    assert arm[arm.index("-cpu") + 1] == "cortex-a53" and arm[arm.index("-m") + 1] == "128"
    # One UART on virt: the console on it, the results on a virtio console.
    assert arm.count("-serial") == 1 and "file,id=results,path=/res" in arm and "virtconsole,chardev=results" in arm
    hf = run.qemu_command(arches.ARCHES["armhf"], PATHS, 256, "a", "/d", "/c", "/res")
    assert hf[hf.index("-machine") + 1] == "virt,highmem=off" and hf[hf.index("-cpu") + 1] == "cortex-a15"
    # The root disk first, read-only: it is vda, the data disk vdb (virtio over PCI keeps the order).
    drives = [arm[i + 1] for i, a in enumerate(arm) if a == "-drive"]
    assert drives[0].startswith("file=/r.sqfs,") and "readonly=on" in drives[0] and drives[1].startswith("file=/d,")


def test_builds_and_timeouts_per_architecture():
    x86, a64 = arches.ARCHES["x86_64"], arches.ARCHES["arm64"]
    assert x86.build.endswith("/build/vm") and a64.build.endswith("/build/vm-arm64")
    assert x86.guardian.endswith("/dist/guardian") and a64.guardian.endswith("/dist/guardian-arm64")
    assert a64.sysroot.endswith("/build/cross-arm64/root") and x86.sysroot is None
    s = BY_NAME["runaway-256"]
    assert run.vm_timeout(s, x86) == s.timeout_s < run.vm_timeout(s, a64)
    assert "virtio_console" in a64.modules and "virtio_console" not in x86.modules


def test_the_arm_boards_run_runaway_leak_restart_and_idle():
    for a in ("arm64", "armhf"):
        assert sorted(s.name for s in SCENARIOS if a in s.arches) == ["leak", "restart", "runaway-128",
                                                                       "runaway-256"]
    # the ARM images have no stress-ng: no stress scenario may ask for it there
    assert all(s.arches == ("x86_64",) for s in SCENARIOS if s.kind == "stress")
    assert all(int(BY_NAME[n].env["IDLE_S"]) > 0 for n in ("runaway-256", "runaway-128"))


def test_in_root_follows_links_inside_the_root(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "usr", "lib", "aarch64-linux-gnu"))
    with open(os.path.join(root, "usr", "lib", "aarch64-linux-gnu", "ld-2.36.so"), "w") as f:
        f.write("loader")
    os.symlink("usr/lib", os.path.join(root, "lib"))  # merged /usr
    # an absolute target is the root's, not this machine's
    os.symlink("/lib/aarch64-linux-gnu/ld-2.36.so", os.path.join(root, "usr", "lib", "ld-linux-aarch64.so.1"))
    got = image.in_root(root, "/lib/ld-linux-aarch64.so.1")
    assert got == os.path.join(root, "usr", "lib", "aarch64-linux-gnu", "ld-2.36.so")
    assert image.in_root(root, "/lib/aarch64-linux-gnu/../aarch64-linux-gnu/ld-2.36.so") == got
    os.symlink("loop", os.path.join(root, "loop"))
    with pytest.raises(SystemExit, match="symlink loop"):
        image.in_root(root, "/loop/x")


def test_builtin_modules_are_not_loaded(tmp_path):
    moddir = str(tmp_path)
    os.makedirs(os.path.join(moddir, "kernel"))
    with open(os.path.join(moddir, "kernel", "virtio_blk.ko"), "wb") as f:
        f.write(b"\0depends=virtio_ring\0")
    with open(os.path.join(moddir, "kernel", "virtio_ring.ko"), "wb") as f:
        f.write(b"\0depends=\0")
    with open(os.path.join(moddir, "modules.builtin"), "w") as f:
        f.write("kernel/drivers/char/virtio_console.ko\n")
    order = image.module_order(moddir, ("virtio_blk", "virtio_console"))
    assert [n for n, _ in order] == ["virtio_ring", "virtio_blk"]
    with pytest.raises(SystemExit, match="module squashfs not in"):
        image.module_order(moddir, ("squashfs",))


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("readelf")), reason="needs gcc and readelf")
def test_foreign_ldd_takes_the_roots_libraries_and_not_the_bundled_ones(tmp_path):
    # This machine's ELF files stand in for another architecture's: what is checked is where
    # each needed library is found, which the architecture does not change.
    arch = arches.ARCHES["x86_64"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "libbundled.so").write_text("")
    src = tmp_path / "m.c"
    src.write_text("int main(void) { return 0; }\n")
    lib_src = tmp_path / "b.c"
    lib_src.write_text("int b(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(bundle / "libbundled.so"), str(lib_src)], check=True)
    exe = bundle / "prog"
    subprocess.run(["gcc", "-o", str(exe), str(src), "-L", str(bundle), "-Wl,--no-as-needed", "-lbundled", "-lm",
                    "-Wl,-rpath,$ORIGIN"], check=True)
    libs = image.foreign_ldd(arch, [str(exe)])
    names = {os.path.basename(p) for p in libs}
    assert "libm.so.6" in names and "libc.so.6" in names  # from the root ("/" here), and what libm needs
    assert "libbundled.so" not in names  # found through $ORIGIN: it ships in the bundle
    assert any(os.path.basename(p).startswith("ld-linux") for p in libs)  # the loader


def _judged(arch, tool="guardian", idle_rss=10, oom=0, scenario="runaway-256", kernel="6.1.0-50-arm64"):
    lines = [{"type": "boot", "now": 950.0, "uptime": 10.0, "mem_total_kib": 224 * MIB, "mark_kib": 24 * MIB,
              "psi": True, "kernel": kernel, "page_kib": 4, "cma_total_kib": 64 * MIB},
             {"type": "ready", "lowprio": 11, "critd": 10},
             {"type": "idle", "seconds": 20.0, "ticks": 10, "wakeups": 40, "procs": 1, "rss_kib": idle_rss * MIB,
              "hwm_kib": idle_rss * MIB, "pss_kib": idle_rss * MIB, "private_dirty_kib": MIB, "anon_kib": MIB,
              "unpack_kib": 0, "unpack_fs": "", "mem_available_kib": 100 * MIB},
             {"type": "event", "e": {"time": 960.0, "event": "start", "message": "guardian armed, wait psi-trigger"}},
             {"type": "event", "e": {"time": 1005.0, "event": "kill_result", "mreleased": True, "error": None}},
             {"type": "event", "e": {"time": 1006.0, "event": "kill_result", "mreleased": False, "error": None,
                                     "mrelease_skipped": "ESRCH"}},
             # ended by the SIGTERM first: no SIGKILL, no process_mrelease to count
             {"type": "event", "e": {"time": 1007.0, "event": "kill_result", "mreleased": False, "error": None,
                                     "exited_on_sigterm": True}},
             {"type": "round", "label": "rate=20", "rate": 20, "hog_mib": 100, "hog_s": 5, "t0": 1000.0,
              "t1": 1060.0, "oom_kills": oom, "oom_messages": oom, "critd_before": 10, "critd_after": 10,
              "critd_alive": True, "lowprio_before": 11, "available_kib": 100 * MIB,
              "ended": [{"name": "hog", "pid": 50, "final_kib": -1}], "monitor": {}},
             {"type": "done"}]
    return run.judge({"scenario": scenario, "tool": tool, "arch": arch, "repeat": 0, "seconds": 100.0,
                      "timed_out": False, "exit": 0, "lines": lines, "garbled_lines": 0, "dir": "x"})


def test_one_architecture_reports_as_before_and_several_side_by_side():
    one = run.report([_judged("x86_64", kernel="6.1.0-amd64")], 1.0)
    assert "Across architectures" not in one and "\n## Idle cost" in one
    text = run.report([_judged("x86_64", kernel="6.1.0-amd64"), _judged("arm64", idle_rss=12, oom=1)], 1.0)
    assert "## Across architectures" in text and "\n## x86_64: pc" in text
    assert "\n## arm64: virt cortex-a53" in text and "\n### Idle cost" in text
    assert "| arm64 | 6.1.0-50-arm64 | 4 | yes | 64 of 224 | wait psi-trigger | 1 / 2 (ESRCH) | none |" in text
    assert "| runaway-256 | guardian | 10.0 / 10.0 / 1.0 | 10, 40 | 12.0 / 12.0 / 1.0 | 10, 40 |" in text
    # the arm64 round saw a kernel OOM kill: its highest safe rate is none, and its VM failed
    assert "| runaway-256 | 20 MiB/s (20.0 MiB/s seen) | - | none (FAIL) | - |" in text
    assert "| arm64 | 0 / 1 |" in text and "| x86_64 | 1 / 1 |" in text


def test_a_run_of_some_architectures_keeps_the_others_from_the_run_before(tmp_path):
    path = str(tmp_path / "results.json")
    assert run.earlier_runs(path, ["armhf"]) == []  # no earlier results
    with open(path, "w") as f:
        json.dump({"finished": "2026-11-29 21:00 UTC", "judged": [_judged("x86_64"), _judged("arm64")],
                   "earlier": []}, f)
    kept = run.earlier_runs(path, ["armhf"])
    assert sorted(j["arch"] for j in kept) == ["arm64", "x86_64"]
    assert all(j["earlier"] == "2026-11-29 21:00 UTC" for j in kept)
    assert [j["arch"] for j in run.earlier_runs(path, ["x86_64", "armhf"])] == ["arm64"]
    # ... and carried on by the run after (armhf's results now, x86_64's and arm64's earlier)
    with open(path, "w") as f:
        json.dump({"finished": "22:00", "judged": [_judged("armhf")], "earlier": kept}, f)
    again = run.earlier_runs(path, ["x86_64", "arm64"])
    assert [(j["arch"], j["earlier"]) for j in again] == [("armhf", "22:00")]
    text = run.report(again + [_judged("x86_64"), _judged("arm64")], 1.0)
    assert "## armhf: virt,highmem=off cortex-a15 (from an earlier run, 22:00)" in text


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_vm_test_builds_and_boots_arm64_and_vm_test_arm_both_arm_boards_alone():
    def dry(*args):
        return subprocess.run(["make", "-n", "-C", os.path.dirname(os.path.dirname(HERE))] + list(args),
                              capture_output=True, text=True, check=True).stdout

    out = dry("vm-test")  # make test's: armhf is left to vm-test-arm (CI's time)
    assert "sh packaging/build-cross.sh arm64" in out and "build-cross.sh armhf" not in out
    assert "run.py --arch x86_64,arm64 " in out
    out = dry("vm-test-arm")
    assert "sh packaging/build-cross.sh armhf" in out and "run.py --arch arm64,armhf " in out
    assert "build-frozen.sh" not in out  # no x86_64 build
    assert "for arch in arm64 armhf;" in out  # vm-deps readies dpkg and apt for both
    out = dry("vm-test", "VM_ARCHES=x86_64")
    assert "build-cross.sh" not in out and "run.py --arch x86_64 " in out
