"""The architectures the VM suite boots: what differs between an x86_64 VM and an ARM board's.

x86_64 is this machine's own: its BusyBox, earlyoom, stress-ng, gcc and ldd, and Debian's amd64
kernel. The ARM ones are foreign: Debian's kernel, BusyBox and earlyoom of that architecture
(`apt-get download pkg:ARCH`, which needs `dpkg --add-architecture ARCH` and `apt-get update`:
`make vm-deps` does it), the frozen guardian built by `make frozen-ARCH` in a Debian root of
that architecture (packaging/build-cross.sh), whose C library the image takes and in which
vmtool is compiled (under qemu-user).

The ARM boards are QEMU's `virt` machine: a PL011 UART (ttyAMA0) is the only serial port, so the
agent's results go out on a virtio console (hvc0) instead of a second UART.
"""
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@dataclass(frozen=True)
class Arch:
    name: str  # what --arch takes, and the suffix of dist/guardian-<name>
    deb: str  # Debian's name of the architecture
    kernel_meta: str  # the package that depends on the current kernel
    qemu: str
    machine: Tuple[str, ...]  # QEMU's machine and CPU
    console: str  # the kernel's console
    results_port: str  # the device the agent writes its JSON lines to (/dev/<results_port>)
    results_args: Tuple[str, ...]  # QEMU's arguments for it; "{path}" is the host file
    modules: Tuple[str, ...]  # what the initramfs loads (and their dependencies)
    triplet: str  # Debian's multiarch directory of its libraries
    # Known slowdown of this architecture's TCG against x86_64's on x86_64 (VM timeouts scale by it).
    slowdown: float = 1.0
    native: bool = False
    bits: int = 64

    @property
    def build(self) -> str:
        """Where the image, kernel and runs of this architecture go (x86_64 keeps build/vm)."""
        return os.path.join(REPO, "build", "vm" if self.native else "vm-%s" % self.name)

    @property
    def guardian(self) -> str:
        return os.path.join(REPO, "dist", "guardian" if self.native else "guardian-%s" % self.name)

    @property
    def frozen_target(self) -> str:
        return "frozen" if self.native else "frozen-%s" % self.name

    @property
    def sysroot(self) -> Optional[str]:
        """The Debian root of the architecture that build-cross.sh made (None: this machine)."""
        return None if self.native else os.path.join(REPO, "build", "cross-%s" % self.name, "root")


# What every board's initramfs loads: the disks (virtio over PCI on both machines, so that the
# disks keep the order they are given in: the root is vda, the data disk vdb), the root's
# squashfs, the data disk's ext4 (crc32c_generic is its soft dependency).
_DISK_MODULES = ("virtio_pci", "virtio_blk", "squashfs", "crc32c_generic", "ext4")

ARCHES: Dict[str, Arch] = {a.name: a for a in (
    Arch("x86_64", "amd64", "linux-image-amd64", "qemu-system-x86_64", ("-machine", "pc"),
         "ttyS0", "ttyS1", ("-serial", "file:{path}"), _DISK_MODULES, "x86_64-linux-gnu", native=True),
    Arch("arm64", "arm64", "linux-image-arm64", "qemu-system-aarch64", ("-machine", "virt", "-cpu", "cortex-a53"),
         "ttyAMA0", "hvc0",
         ("-device", "virtio-serial-pci", "-chardev", "file,id=results,path={path}",
          "-device", "virtconsole,chardev=results"),
         _DISK_MODULES + ("virtio_console",), "aarch64-linux-gnu", slowdown=1.5),
    # Debian's armmp kernel has no LPAE: the machine keeps its devices below 4 GiB (highmem=off).
    Arch("armhf", "armhf", "linux-image-armmp", "qemu-system-arm",
         ("-machine", "virt,highmem=off", "-cpu", "cortex-a15"),
         "ttyAMA0", "hvc0",
         ("-device", "virtio-serial-pci", "-chardev", "file,id=results,path={path}",
          "-device", "virtconsole,chardev=results"),
         _DISK_MODULES + ("virtio_console",), "arm-linux-gnueabihf", slowdown=1.5, bits=32),
)}
HOST = "x86_64"


def parse(names: str) -> Tuple[Arch, ...]:
    """"x86_64,arm64" -> the Arch of each; SystemExit naming the unknown ones."""
    out = []
    for n in (x.strip() for x in names.split(",")):
        if not n:
            continue
        if n not in ARCHES:
            raise SystemExit("vm: unknown architecture %r; known: %s" % (n, ", ".join(ARCHES)))
        out.append(ARCHES[n])
    return tuple(out)
