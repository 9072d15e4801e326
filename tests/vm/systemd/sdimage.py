"""What the systemd VMs boot, built into build/vm-systemd/:

- root/: a Debian bookworm root (debootstrap minbase + systemd, systemd-sysv, earlyoom,
  systemd-oomd, procps), built once and kept; `--rebuild-root` (or removing it) builds it anew.
  Its docs, locales and apt cache are dropped (the board's flash).
- root.ext4: that root plus the frozen guardian installed as README.md tells an operator
  (dist/guardian's directory build as /usr/lib/guardian/, /usr/bin/guardian a symlink,
  init/guardian.service and init/guardian.default as shipped, the board config), the test
  units (critd, lowprio, the agent), vmtool, and the trims that make systemd boot fast under TCG
  (units a headless gateway does not run are masked). Booted read-write with QEMU's snapshot=on:
  every VM starts from the same disk and its writes are thrown away.
- initramfs.cpio.gz: BusyBox and the modules that mount the root disk (virtio, ext4), then
  systemd as PID 1.

The kernel is the VM suite's (tests/vm/image.py: Debian's, fetched with apt-get download).
"""
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
VM = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(VM))
BUILD = os.path.join(REPO, "build", "vm-systemd")
GUEST = os.path.join(HERE, "guest")
sys.path.insert(0, VM)

import image as vmimage  # noqa: E402  the BusyBox suite's kernel, cpio writer and vmtool build
from arches import ARCHES, HOST  # noqa: E402

X86 = ARCHES[HOST]  # the systemd VMs are x86_64 ones: its kernel, BusyBox and vmtool

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "systemd-oomd", "earlyoom", "procps")
MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
INITRAMFS_APPLETS = ("sh", "mount", "umount", "mkdir", "insmod", "sleep", "grep", "cat", "echo",
                     "switch_root", "poweroff")
# What a headless gateway's boot does not need, masked so that systemd under TCG reaches the
# agent sooner: logins (no getty on tty1 nor on the serial console), apt's and the disks' timers,
# first-boot and cache jobs, module loading (kmod is not installed), logind (no D-Bus here).
MASKED = ("getty@.service", "serial-getty@.service", "getty.target", "console-getty.service",
          "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
          "e2scrub_reap.service", "fstrim.timer", "systemd-tmpfiles-clean.timer", "systemd-pstore.service",
          "ldconfig.service", "modprobe@.service", "systemd-logind.service", "systemd-update-utmp.service",
          "systemd-update-utmp-runlevel.service", "systemd-firstboot.service", "systemd-machine-id-commit.service",
          "systemd-journal-catalog-update.service", "systemd-update-done.service", "systemd-random-seed.service",
          "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "sys-kernel-debug.mount",
          "sys-kernel-tracing.mount", "dev-hugepages.mount", "dev-mqueue.mount", "sys-fs-fuse-connections.mount",
          "systemd-ask-password-console.path", "systemd-ask-password-wall.path", "remote-fs.target")
# The tools under test: each VM unmasks one (kernel command line systemd.mask= for the others).
TOOL_UNITS = {"guardian": "guardian.service", "earlyoom": "earlyoom.service", "oomd": "systemd-oomd.service"}


def log(message: str) -> None:
    print("vm-systemd: %s" % message, file=sys.stderr, flush=True)


def run(cmd: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def host_mirror() -> str:
    """The first Debian archive (not the security one) this host's apt uses."""
    env = os.environ.get("VM_MIRROR")
    if env:
        return env
    found: List[str] = []
    d = "/etc/apt/sources.list.d"
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.endswith(".sources"):
            with open(os.path.join(d, name)) as f:
                for line in f:
                    if line.startswith("URIs:"):
                        found += [u for u in line.split()[1:] if "security" not in u and "debian" in u]
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as f:
            for line in f:
                parts = line.split()
                if parts[:1] == ["deb"] and "security" not in line:
                    found += [p for p in parts[1:] if "://" in p]
    if not found:
        raise SystemExit("vm-systemd: no Debian archive in this host's apt sources: set VM_MIRROR")
    return found[0]


def build_root(rebuild: bool = False) -> Tuple[str, str]:
    """The Debian root, debootstrapped once (about a minute here) and kept; and how long the
    debootstrap took ("no" when the kept one served)."""
    root = os.path.join(BUILD, "root")
    stamp = os.path.join(root, ".vmtest-root")
    want = "%s %s\n" % (SUITE, " ".join(PACKAGES))
    if not rebuild and os.path.exists(stamp) and open(stamp).read() == want:
        return root, "no"
    started = time.monotonic()
    if not shutil.which("debootstrap"):
        raise SystemExit("vm-systemd: debootstrap is missing (make vm-deps-systemd installs it)")
    new = root + ".new"
    shutil.rmtree(new, ignore_errors=True)
    os.makedirs(BUILD, exist_ok=True)
    logf = os.path.join(BUILD, "debootstrap.log")
    log("debootstrap %s (minbase + %s) into %s" % (SUITE, ",".join(PACKAGES), os.path.relpath(new, REPO)))
    with open(logf, "w") as f:
        r = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, new,
                            host_mirror()], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        raise SystemExit("vm-systemd: debootstrap failed: see %s" % os.path.relpath(logf, REPO))
    # What a board's flash does not carry.
    for d in ("usr/share/doc", "usr/share/locale", "usr/share/man", "usr/share/info", "var/cache/apt",
              "var/lib/apt/lists"):
        shutil.rmtree(os.path.join(new, d), ignore_errors=True)
        os.makedirs(os.path.join(new, d))
    with open(os.path.join(new, ".vmtest-root"), "w") as f:
        f.write(want)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(new, root)
    return root, "yes, debootstrap %.0f s" % (time.monotonic() - started)


def _install(src: str, root: str, dest: str, mode: int = 0o644) -> None:
    vmimage._install(src, root, dest, mode)


_write = vmimage._write


def _link(root: str, dest: str, target: str) -> None:
    path = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def enable(root: str, unit: str, target: str = "multi-user.target") -> None:
    """What `systemctl enable` does for a unit with WantedBy=target."""
    _link(root, "/etc/systemd/system/%s.wants/%s" % (target, unit), "/etc/systemd/system/" + unit
          if os.path.exists(os.path.join(root, "etc/systemd/system", unit)) else "/lib/systemd/system/" + unit)


# What the gateway operator adds for systemd-oomd (systemd-oomd.service(8), oomd.conf(5)): the
# services' slice is watched for memory pressure and a unit of it is killed when its pressure
# stays above the limit (the defaults: 60 % over 30 s); swap-based kills on the root slice (the
# documented default for -.slice) do nothing here, there is no swap. critd and the agent opt out
# (ManagedOOMPreference=omit in their units).
OOMD_DROPINS = {
    "/etc/systemd/system/system.slice.d/50-managed-oom.conf":
        "[Slice]\nManagedOOMMemoryPressure=kill\nManagedOOMMemoryPressureLimit=60%\n",
    "/etc/systemd/system/-.slice.d/50-managed-oom.conf": "[Slice]\nManagedOOMSwap=kill\n",
}


def build_image(guardian: str, rebuild_root: bool = False) -> Dict[str, str]:
    base, root_built = build_root(rebuild_root)
    stage = os.path.join(BUILD, "stage")
    shutil.rmtree(stage, ignore_errors=True)
    run(["cp", "-a", base, stage])
    os.unlink(os.path.join(stage, ".vmtest-root"))

    # The guardian, as README.md's "Installing on a board" says.
    onedir = vmimage.onedir_of(guardian)
    if not onedir:
        raise SystemExit("vm-systemd: %s is not a directory build (make frozen builds one)" % guardian)
    shutil.copytree(onedir, os.path.join(stage, "usr/lib/guardian"), symlinks=True)
    _link(stage, "/usr/bin/guardian", "../lib/guardian/" + os.path.basename(os.path.realpath(guardian)))
    _install(os.path.join(REPO, "init", "guardian.service"), stage, "/etc/systemd/system/guardian.service")
    with open(os.path.join(REPO, "init", "guardian.default")) as f:
        default = f.read()
    _write(stage, "/etc/default/guardian", default.replace(
        'GUARDIAN_ARGS=""', 'GUARDIAN_ARGS="--config /etc/guardian/vm-gateway.toml"'))
    _install(os.path.join(HERE, "boards", "vm-gateway.toml"), stage, "/etc/guardian/vm-gateway.toml")
    enable(stage, "guardian.service")

    # The test gateway: vmtool, the services, the agent.
    vmtool = os.path.join(BUILD, "vmtool")
    vmimage.build_vmtool(X86, vmtool)
    _install(vmtool, stage, "/usr/bin/vmtool", 0o755)
    for unit in ("critd.service", "lowprio.service", "vmtest-agent.service"):
        _install(os.path.join(GUEST, "units", unit), stage, "/etc/systemd/system/" + unit)
        enable(stage, unit)
    _install(os.path.join(GUEST, "agent.sh"), stage, "/etc/vmtest/agent.sh", 0o755)
    for path, text in OOMD_DROPINS.items():
        _write(stage, path, text)

    # Trims for a fast boot, and a fixed identity (no first-boot jobs).
    for unit in MASKED:
        _link(stage, "/etc/systemd/system/" + unit, "/dev/null")
    for wants in ("getty.target.wants/getty@tty1.service", "timers.target.wants",
                  "sysinit.target.wants/systemd-pstore.service"):
        p = os.path.join(stage, "etc/systemd/system", wants)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)
    _write(stage, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
    _write(stage, "/etc/hostname", "gateway\n")
    _write(stage, "/etc/fstab", "# the root is mounted by the initramfs; nothing else\n")
    # The journal in RAM (/run), as on a gateway that keeps its flash; small.
    _write(stage, "/etc/systemd/journald.conf.d/50-vmtest.conf",
           "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\nForwardToConsole=no\n")
    _write(stage, "/etc/systemd/system.conf.d/50-vmtest.conf",
           "[Manager]\nShowStatus=no\nDefaultTimeoutStartSec=60s\n")

    img = os.path.join(BUILD, "root.ext4")
    if os.path.exists(img + ".tmp"):
        os.unlink(img + ".tmp")
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", stage, img + ".tmp", "640M"])
    os.replace(img + ".tmp", img)
    shutil.rmtree(stage, ignore_errors=True)

    vmlinuz, moddir, version = vmimage.kernel(X86)
    initramfs = os.path.join(BUILD, "initramfs.cpio.gz")
    build_initramfs(moddir, initramfs)
    return {"kernel": vmlinuz, "kernel_version": version, "initramfs": initramfs, "root": img,
            "root_built": root_built}


def build_initramfs(moddir: str, out: str) -> None:
    vmimage.build_initramfs(X86, moddir, out, modules=MODULES, init=os.path.join(GUEST, "init"),
                            applets=INITRAMFS_APPLETS)


def tool_kernel_args(tool: str) -> str:
    """The kernel command line that leaves only this tool's unit to start."""
    return " ".join("systemd.mask=%s" % u for t, u in sorted(TOOL_UNITS.items()) if t != tool)


if __name__ == "__main__":
    print(build_image(os.path.join(REPO, "dist", "guardian"), "--rebuild-root" in sys.argv))
