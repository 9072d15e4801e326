"""Build what the VMs boot, from the current tree, into build/vm/:

- the kernel: Debian's current linux-image-*-amd64 (apt-get download, dpkg -x), cached;
- initramfs.cpio.gz: BusyBox and the modules the root disk needs (virtio, squashfs, ext4),
  nothing else - it mounts the root disk and switches to it;
- root.sqfs: the read-only root of a BusyBox board (the board's flash): BusyBox as init and
  userland, the frozen guardian (dist/guardian: the directory build it points into goes to
  /usr/lib/guardian/ with /usr/bin/guardian a symlink, as packaging/README.md installs it; a
  single-file build to /usr/bin/guardian) with the project's init/S03guardian and
  init/guardian.default, the floor beside it (dist/guardian-floor, the trivial wake loop frozen
  by the same spec: /usr/lib/guardian-floor/ and /usr/bin/guardian-floor, laid out the same way;
  the agent measures it after the guardian's idle window), earlyoom and stress-ng (Debian's) with
  the libraries they need, vmtool, the scenario boards, and the zram modules (loaded by rcS only
  where a scenario asks for swap).

Per architecture (tests/vm/arches.py): x86_64 into build/vm/ from this machine's own tools; an
ARM architecture into build/vm-<arch>/ from Debian's packages of that architecture and the root
`make frozen-<arch>` built (its C library, and its gcc for vmtool), checked under qemu-user.
"""
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import zlib
from typing import Dict, Iterable, List, Optional, Set, Tuple

from arches import ARCHES, HOST, Arch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(REPO, "build", "vm")
GUEST = os.path.join(HERE, "guest")

# What rcS loads where a scenario asks for zram swap (ZRAM_MIB), dependencies first; the
# compressor (lzo-rle) is built into Debian's kernel. (The initramfs's modules: Arch.modules.)
ZRAM_MODULES = ("zram",)
INITRAMFS_APPLETS = ("sh", "mount", "mkdir", "insmod", "sleep", "grep", "cat", "echo",
                     "switch_root", "poweroff")
DATA_FILES = 4  # page-cache data set: 4 files of 24 MiB of random bytes in /srv/data
DATA_FILE_MIB = 24


def log(message: str) -> None:
    print("vm: %s" % message, file=sys.stderr, flush=True)


def run(cmd: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


# --------------------------------------------------------------------------- Debian's packages

def kernel_package(arch: Arch) -> str:
    """The package Debian's kernel meta-package of the architecture depends on now (override:
    VM_KERNEL_PKG for x86_64, VM_KERNEL_PKG_ARM64 / _ARMHF for the others)."""
    pkg = os.environ.get("VM_KERNEL_PKG" if arch.native else "VM_KERNEL_PKG_%s" % arch.name.upper())
    if pkg:
        return pkg
    meta = arch.kernel_meta if arch.native else "%s:%s" % (arch.kernel_meta, arch.deb)
    out = subprocess.run(["apt-cache", "depends", meta], capture_output=True, text=True).stdout
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s:]*-%s)\b" % re.escape(arch.kernel_meta.split("-")[-1]), out)
    if not m:
        raise SystemExit("vm: cannot tell the current kernel package (apt-cache depends %s); run `make vm-deps` "
                         "(apt-get update%s), or set VM_KERNEL_PKG%s" % (
                             meta, "" if arch.native else ", after dpkg --add-architecture %s" % arch.deb,
                             "" if arch.native else "_%s" % arch.name.upper()))
    return m.group(1)


def deb_tree(arch: Arch, pkg: str) -> str:
    """Debian's package of the architecture, downloaded (apt-get download) and unpacked once
    under build/vm[-ARCH]/pkgs/PKG; returns that directory."""
    dest = os.path.join(arch.build, "pkgs", pkg)
    if os.path.isdir(dest):
        return dest
    dl = os.path.join(arch.build, "dl")
    os.makedirs(dl, exist_ok=True)

    def debs() -> List[str]:
        return [f for f in os.listdir(dl) if f.startswith(pkg + "_") and f.endswith("_%s.deb" % arch.deb)]
    if not debs():
        log("downloading %s (%s)" % (pkg, arch.deb))
        res = subprocess.run(["apt-get", "download", "%s:%s" % (pkg, arch.deb)], cwd=dl,
                             capture_output=True, text=True)
        if res.returncode != 0 or not debs():
            raise SystemExit("vm: apt-get download %s:%s failed (run `make vm-deps`):\n%s" % (
                pkg, arch.deb, res.stderr.strip()))
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    run(["dpkg", "-x", os.path.join(dl, sorted(debs())[-1]), tmp])
    os.rename(tmp, dest)
    return dest


def kernel(arch: Arch) -> Tuple[str, str, str]:
    """(vmlinuz, modules dir, version), downloaded and unpacked once."""
    dest = deb_tree(arch, kernel_package(arch))
    boot = os.path.join(dest, "boot")
    vmlinuz = os.path.join(boot, next(f for f in os.listdir(boot) if f.startswith("vmlinuz-")))
    version = os.path.basename(vmlinuz)[len("vmlinuz-"):]
    moddir = os.path.join(dest, "lib", "modules", version)
    if not os.path.isdir(moddir):
        moddir = os.path.join(dest, "usr", "lib", "modules", version)
    return vmlinuz, moddir, version


def _module_index(moddir: str) -> Dict[str, str]:
    index = {}
    for root, _, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                index[f[:-3].replace("-", "_")] = os.path.join(root, f)
    return index


def _depends(path: str) -> List[str]:
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []


def _builtin(moddir: str) -> Set[str]:
    """The modules built into the kernel (modules.builtin): nothing to load. A module one
    architecture's kernel has as a .ko may be built into another's."""
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return {os.path.basename(line.strip())[:-3].replace("-", "_") for line in f if line.strip()}
    except OSError:
        return set()


def module_order(moddir: str, wanted: Iterable[str]) -> List[Tuple[str, str]]:
    """(name, path) of the wanted modules and their dependencies, dependencies first; those
    built into the kernel are left out."""
    index = _module_index(moddir)
    builtin = _builtin(moddir)
    out: List[Tuple[str, str]] = []
    seen = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index and name in builtin:
            return
        if name not in index:
            raise SystemExit("vm: module %s not in %s (compressed modules are not supported)" % (name, moddir))
        for dep in _depends(index[name]):
            visit(dep)
        out.append((name, index[name]))

    for name in wanted:
        visit(name)
    return out


# --------------------------------------------------------------------------- cpio (newc)

class Cpio:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def busybox(arch: Arch) -> str:
    """A static BusyBox of the architecture: this machine's, or Debian's busybox-static of it."""
    paths = ("/bin/busybox", "/usr/bin/busybox")
    if not arch.native:
        tree = deb_tree(arch, "busybox-static")
        paths = tuple(os.path.join(tree, p.lstrip("/")) for p in paths)
    for path in paths:
        if os.path.exists(path) and b"ld-linux" not in open(path, "rb").read(4096):
            return path
    raise SystemExit("vm: a static BusyBox is needed (apt-get install busybox-static)")


def build_initramfs(arch: Arch, moddir: str, out: str, modules: Optional[Iterable[str]] = None,
                    init: str = os.path.join(GUEST, "init"), applets: Iterable[str] = INITRAMFS_APPLETS) -> None:
    """BusyBox, the modules the root disk needs (the architecture's, or `modules`) and `init`,
    as the initramfs: this suite's, and the systemd VMs' (tests/vm/systemd/sdimage.py)."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        c.dir(d)
    with open(busybox(arch), "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    for applet in applets:
        c.symlink("bin/" + applet, "busybox")
    order = module_order(moddir, arch.modules if modules is None else modules)
    for name, path in order:
        with open(path, "rb") as f:
            c.file("modules/%s.ko" % name, f.read())
    c.file("modules.order", (" ".join(n for n, _ in order) + "\n").encode())
    with open(init, "rb") as f:
        c.file("init", f.read(), 0o755)
    with open(out + ".tmp", "wb") as f:
        f.write(gzip.compress(c.bytes(), compresslevel=6))
    os.replace(out + ".tmp", out)


# --------------------------------------------------------------------------- the root disk

def pyinstaller_binaries(path: str) -> Dict[str, bytes]:
    """The shared objects inside a PyInstaller onefile build (name -> bytes), so that the
    system libraries they link are copied too. Empty when it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    magic = b"MEI\014\013\012\013\016"
    pos = data.rfind(magic)
    if pos < 0:
        return {}
    fmt = "!8sIIII64s"
    _, length, toc_off, toc_len, _, _ = struct.unpack(fmt, data[pos:pos + struct.calcsize(fmt)])
    start = pos + struct.calcsize(fmt) - length
    toc = data[start + toc_off:start + toc_off + toc_len]
    out: Dict[str, bytes] = {}
    cur = 0
    hdr = struct.calcsize("!IIIIBc")
    while cur < len(toc):
        elen, off, dlen, _, compressed, _ = struct.unpack("!IIIIBc", toc[cur:cur + hdr])
        name = toc[cur + hdr:cur + elen].rstrip(b"\0").decode("utf-8", "replace")
        cur += elen
        if not re.search(r"\.so(\.|$)", name):
            continue
        blob = data[start + off:start + off + dlen]
        if compressed:
            blob = zlib.decompress(blob)
        if blob[:4] == b"\x7fELF":
            out[name] = blob
    return out


def onedir_of(path: str) -> Optional[str]:
    """The directory of the PyInstaller onedir build whose executable path is (or points at,
    as dist/guardian does), else None (a single-file build)."""
    top = os.path.dirname(os.path.realpath(path))
    return top if os.path.isdir(os.path.join(top, "_internal")) else None


def elf_files(top: str) -> List[str]:
    out = []
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return sorted(out)


def ldd(paths: Iterable[str]) -> List[str]:
    """Every library the ELF files need, resolved on this machine (the loader included)."""
    libs = set()
    for p in paths:
        res = subprocess.run(["ldd", p], capture_output=True, text=True)
        for line in res.stdout.splitlines():
            m = re.search(r"(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    return sorted(libs)


def in_root(sysroot: str, path: str) -> str:
    """The host path of PATH as seen from inside SYSROOT: symlinks are followed inside it (an
    absolute link target is the root's, not this machine's)."""
    parts = [p for p in path.split("/") if p]
    resolved = ""
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        host = sysroot + resolved + "/" + part
        if os.path.islink(host):
            hops += 1
            if hops > 40:
                raise SystemExit("vm: symlink loop at %s" % host)
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = ""
            parts = [p for p in target.split("/") if p] + parts
        else:
            resolved += "/" + part
    return sysroot + resolved


_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]")
_RUNPATH = re.compile(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^]]*)\]")
_INTERP = re.compile(r"Requesting program interpreter: ([^]]+)\]")


def foreign_ldd(arch: Arch, paths: Iterable[str]) -> List[str]:
    """ldd for another architecture's ELF files, resolved in its root (Arch.sysroot) as its loader
    would: a library found through the file's own RUNPATH ($ORIGIN: bundled beside it) is not the
    system's; the others are looked up in the root's library directories, and what they need in
    turn. Returns the paths inside the root (the loader included)."""
    sysroot = arch.sysroot or "/"
    dirs = ["/lib/" + arch.triplet, "/usr/lib/" + arch.triplet, "/lib", "/usr/lib"]
    libs: Set[str] = set()
    queue = [(p, False) for p in paths]
    seen: Set[str] = set()
    while queue:
        path, from_root = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        out = subprocess.run(["readelf", "-dlW", path], capture_output=True, text=True).stdout
        interp = _INTERP.search(out)
        if interp:
            libs.add(interp.group(1))
        runpath = [d.replace("$ORIGIN", os.path.dirname(path)) for m in _RUNPATH.finditer(out)
                   for d in m.group(1).split(":") if d and not from_root]
        for name in _NEEDED.findall(out):
            if any(os.path.exists(os.path.join(d, name)) for d in runpath):
                continue
            for d in dirs:
                host = in_root(sysroot, d + "/" + name)
                if os.path.exists(host):
                    libs.add(d + "/" + name)
                    queue.append((host, True))
                    break
    return sorted(libs)


def _copy_lib(path: str, root: str, sysroot: Optional[str] = None) -> None:
    """Copy a library under the same path, and the file a symlink points at (inside SYSROOT
    when the library is another architecture's)."""
    dest = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    real = in_root(sysroot, path) if sysroot else os.path.realpath(path)
    if not os.path.exists(dest):
        shutil.copy2(real, dest)


def _install(src: str, root: str, dest: str, mode: int = 0o755) -> None:
    path = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(src, path)
    os.chmod(path, mode)


def _write(root: str, dest: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def build_vmtool(arch: Arch, out: str) -> None:
    """vmtool, static: by this machine's gcc, or by the gcc of the architecture's root (under
    qemu-user: a few seconds, and no cross compiler to install)."""
    src = os.path.join(HERE, "src", "vmtool.c")
    flags = ["-O2", "-static", "-Wall", "-Wextra"]
    if arch.native:
        run(["gcc"] + flags + ["-o", out + ".tmp", src])
    else:
        work = os.path.join(arch.sysroot, "tmp", "vmtool-build")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        shutil.copyfile(src, os.path.join(work, "vmtool.c"))
        run(["chroot", arch.sysroot, "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "gcc"] + flags
            + ["-o", "/tmp/vmtool-build/vmtool", "/tmp/vmtool-build/vmtool.c"])
        shutil.move(os.path.join(work, "vmtool"), out + ".tmp")
        shutil.rmtree(work)
    os.replace(out + ".tmp", out)


def data_set() -> str:
    """Random (incompressible) files for the page-cache scenario, made once (shared by every
    architecture's image that runs it)."""
    d = os.path.join(BUILD, "data")
    os.makedirs(d, exist_ok=True)
    for i in range(DATA_FILES):
        p = os.path.join(d, "data%d.bin" % i)
        if not os.path.exists(p) or os.path.getsize(p) != DATA_FILE_MIB << 20:
            with open(p + ".tmp", "wb") as f:
                for _ in range(DATA_FILE_MIB):
                    f.write(os.urandom(1 << 20))
            os.replace(p + ".tmp", p)
    return d


def install_frozen(path: str, root: str, name: str, scratch: str) -> List[str]:
    """Install a frozen build as packaging/README.md does: a directory build (what `path` is, or
    points into) to /usr/lib/NAME/ with /usr/bin/NAME a symlink, a single file to /usr/bin/NAME.
    Returns the ELF files whose libraries the image needs (the bundled shared objects; those of
    a single file are unpacked into SCRATCH)."""
    onedir = onedir_of(path)
    if onedir:
        shutil.copytree(onedir, os.path.join(root, "usr", "lib", name), symlinks=True)
        os.symlink("../lib/%s/%s" % (name, os.path.basename(os.path.realpath(path))),
                   os.path.join(root, "usr", "bin", name))
        return [path] + elf_files(onedir)
    _install(path, root, "/usr/bin/" + name)
    scratch = os.path.join(scratch, name)
    os.makedirs(scratch, exist_ok=True)
    inner = [path]
    for so, blob in pyinstaller_binaries(path).items():
        p = os.path.join(scratch, so.replace("/", "_"))
        with open(p, "wb") as f:
            f.write(blob)
        inner.append(p)
    return inner


def build_rootfs(arch: Arch, root: str, guardian: str, floor: str, earlyoom: str, stress: Optional[str],
                 vmtool: str, moddir: str) -> None:
    """The root disk's tree. `stress`: stress-ng, where the architecture runs a scenario with it."""
    from scenarios import SCENARIOS, env_file

    shutil.rmtree(root, ignore_errors=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "etc/default", "etc/guardian/vm",
              "etc/vmtest/scenarios", "dev", "proc", "sys", "run", "var/lib", "root", "srv/data"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.makedirs(os.path.join(root, "tmp"))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    for link, target in (("var/run", "../run"), ("var/tmp", "../tmp"), ("var/log", "../tmp")):
        os.symlink(target, os.path.join(root, link))

    # BusyBox: init and every applet.
    _install(busybox(arch), root, "/bin/busybox")
    # (another architecture's static BusyBox lists its applets under qemu-user, through binfmt_misc)
    applets = subprocess.run([busybox(arch), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    os.symlink("../bin/busybox", os.path.join(root, "sbin", "init"))

    # The tools: the frozen guardian and its floor, earlyoom, vmtool, and the libraries they load.
    scratch = os.path.join(arch.build, "sofiles")
    shutil.rmtree(scratch, ignore_errors=True)
    inner = (install_frozen(guardian, root, "guardian", scratch)
             + install_frozen(floor, root, "guardian-floor", scratch))
    _install(earlyoom, root, "/usr/bin/earlyoom")
    if stress:
        _install(stress, root, "/usr/bin/stress-ng")
    _install(vmtool, root, "/usr/bin/vmtool")
    # Also what the bundled ones link (the bootloader needs libz before it unpacks its own);
    # another architecture's from its root.
    elves = [earlyoom] + ([stress] if stress else []) + inner
    libs = ldd(elves) if arch.native else foreign_ldd(arch, elves)
    # glibc loads libgcc_s when a thread exits through pthread_exit (Python's daemon threads).
    libgcc = "/lib/%s/libgcc_s.so.1" % arch.triplet
    if os.path.exists(in_root(arch.sysroot, libgcc) if arch.sysroot else libgcc):
        libs.append(libgcc)
    for lib in libs:
        _copy_lib(lib, root, arch.sysroot)
    shutil.rmtree(scratch, ignore_errors=True)

    # zram and what it needs, for rcS to insmod in this order (BusyBox has no modprobe index).
    order = module_order(moddir, ZRAM_MODULES)
    for name, path in order:
        _install(path, root, "/lib/modules/vmtest/%s.ko" % name, 0o644)
    _write(root, "/lib/modules/vmtest/order", " ".join(n for n, _ in order) + "\n")

    # The project's init integration, as a board would install it.
    _install(os.path.join(REPO, "init", "S03guardian"), root, "/etc/init.d/S03guardian")
    with open(os.path.join(REPO, "init", "guardian.default")) as f:
        default = f.read()
    _write(root, "/etc/default/guardian", default + (
        "\n# VM test suite: the scenario's arguments (written by rcS from the kernel command line).\n"
        "[ -r /run/vmtest/guardian.env ] && . /run/vmtest/guardian.env\n"))

    # The test board: inittab, rcS, services, earlyoom's script, the agent, the boards.
    _install(os.path.join(GUEST, "inittab"), root, "/etc/inittab", 0o644)
    _install(os.path.join(GUEST, "rcS"), root, "/etc/init.d/rcS")
    _install(os.path.join(GUEST, "S02earlyoom"), root, "/etc/init.d/S02earlyoom")
    _install(os.path.join(GUEST, "service"), root, "/etc/init.d/S50critd")
    _install(os.path.join(GUEST, "service"), root, "/etc/init.d/S60lowprio")
    _install(os.path.join(GUEST, "agent.sh"), root, "/etc/vmtest/agent.sh")
    _install(os.path.join(GUEST, "respawn.sh"), root, "/etc/vmtest/respawn.sh")
    for f in os.listdir(os.path.join(HERE, "boards")):
        if f.endswith(".toml"):
            _install(os.path.join(HERE, "boards", f), root, "/etc/guardian/vm/" + f, 0o644)
    for s in SCENARIOS:
        _write(root, "/etc/vmtest/scenarios/%s.env" % s.name, env_file(s))
    _write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    _write(root, "/etc/group", "root:x:0:\n")
    _write(root, "/etc/hostname", "vmboard\n")
    # The page-cache data set, where the architecture runs a scenario that reads it (96 MiB of
    # random bytes take mksquashfs half a minute).
    if any(s.kind == "pagecache" and arch.name in s.arches for s in SCENARIOS):
        for f in sorted(os.listdir(data_set())):
            os.link(os.path.join(BUILD, "data", f), os.path.join(root, "srv", "data", f))


def check_rootfs(root: str, arch: Arch = ARCHES[HOST]) -> None:
    """Run the frozen guardian and its floor from the image on this machine (chroot, own mount
    namespace; another architecture's under qemu-user, through binfmt_misc): the libraries are
    all there, and every scenario board loads. A 32-bit guest under qemu-user cannot list an
    ext4 directory of a 64-bit host (its 64-bit hash offsets: EOVERFLOW), so its image is
    checked from a copy in a tmpfs, as packaging/smoke-test.sh does."""
    boards = sorted(f for f in os.listdir(os.path.join(root, "etc", "guardian", "vm"))
                    if f.endswith(".toml") and f != "vm-base.toml")
    where = root
    copy = ""
    if arch.bits == 32 and not arch.native:
        where = os.path.join(arch.build, "rootfs-check")
        os.makedirs(where, exist_ok=True)
        copy = "mount -t tmpfs tmpfs %s && cp -a %s/. %s/ && " % (where, root, where)
    script = copy + "mount -t proc proc %s/proc && chroot %s /bin/sh -c '%s'" % (where, where, " && ".join(
        ["TMPDIR=/root /usr/bin/guardian --version", "TMPDIR=/root /usr/bin/guardian-floor --once",
         "/usr/bin/earlyoom -v >/dev/null",
         "{ [ ! -e /usr/bin/stress-ng ] || /usr/bin/stress-ng --version >/dev/null; }"] +
        ["{ TMPDIR=/root /usr/bin/guardian check --config /etc/guardian/vm/%s >/root/check.out 2>&1; "
         "[ $? -lt 2 ] || { cat /root/check.out; exit 1; }; }" % b for b in boards]))
    res = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", script], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit("vm: the image's guardian does not run or refuses a board:\n%s%s" % (res.stdout, res.stderr))
    log("image check: %s" % res.stdout.strip().splitlines()[0])
    for leftover in ("root/check.out",):
        p = os.path.join(root, leftover)
        if os.path.exists(p):
            os.unlink(p)


def inputs_digest(paths: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        if os.path.isdir(p):
            for r, dirs, files in sorted(os.walk(p)):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith((".pyc",)):
                        continue
                    fp = os.path.join(r, f)
                    h.update(fp.encode())
                    with open(fp, "rb") as fh:
                        h.update(hashlib.sha256(fh.read()).digest())
        elif os.path.exists(p):
            h.update(p.encode())
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def build(arch: Arch = ARCHES[HOST], guardian: Optional[str] = None, floor: Optional[str] = None) -> Dict[str, str]:
    """Build (or reuse) everything the architecture's VMs need; returns their paths. `floor`: the
    frozen floor (default: guardian-floor[-ARCH] beside the guardian)."""
    from scenarios import SCENARIOS

    os.makedirs(arch.build, exist_ok=True)
    gi = os.path.join(REPO, "build", ".gitignore")
    if not os.path.exists(gi):
        with open(gi, "w") as f:
            f.write("*\n")
    guardian = guardian or arch.guardian
    if not os.access(guardian, os.X_OK):
        raise SystemExit("vm: %s is missing: run `make %s` first" % (guardian, arch.frozen_target))
    floor = floor or os.path.join(os.path.dirname(os.path.abspath(guardian)),
                                  os.path.basename(guardian).replace("guardian", "guardian-floor", 1))
    if not os.access(floor, os.X_OK):
        raise SystemExit("vm: %s (the floor the idle cost is measured against) is missing: run `make %s` "
                         "first, or name it with --floor" % (floor, arch.frozen_target))
    stress: Optional[str] = None
    if arch.native:
        earlyoom = shutil.which("earlyoom") or ""
        if not earlyoom:
            raise SystemExit("vm: earlyoom is missing (apt-get install earlyoom)")
        stress = shutil.which("stress-ng")
        if not stress:
            raise SystemExit("vm: stress-ng is missing (apt-get install stress-ng)")
    else:
        if not os.path.isdir(arch.sysroot or ""):
            raise SystemExit("vm: %s is missing: `make %s` makes it" % (arch.sysroot, arch.frozen_target))
        earlyoom = os.path.join(deb_tree(arch, "earlyoom"), "usr", "bin", "earlyoom")
        if any(s.kind == "stress" and arch.name in s.arches for s in SCENARIOS):
            raise SystemExit("vm: stress-ng is not installed in %s images" % arch.name)
    for tool in (arch.qemu, "mksquashfs", "gcc" if arch.native else "readelf", "unshare"):
        if not shutil.which(tool):
            raise SystemExit("vm: %s is missing (make vm-deps installs it)" % tool)
    vmlinuz, moddir, version = kernel(arch)
    paths = {"kernel": vmlinuz, "initramfs": os.path.join(arch.build, "initramfs.cpio.gz"),
             "root": os.path.join(arch.build, "root.sqfs"), "version": version}
    digest = inputs_digest([onedir_of(guardian) or guardian, onedir_of(floor) or floor, earlyoom, busybox(arch)]
                           + ([stress] if stress else []) + [HERE, os.path.join(REPO, "init"), vmlinuz])
    stamp = os.path.join(arch.build, "image.digest")
    if (os.path.exists(stamp) and open(stamp).read() == digest
            and os.path.exists(paths["initramfs"]) and os.path.exists(paths["root"])):
        log("%s image up to date (kernel %s)" % (arch.name, version))
        return paths
    log("building the %s image (kernel %s, guardian %s, floor %s)" % (
        arch.name, version, os.path.relpath(guardian, REPO), os.path.relpath(floor, REPO)))
    vmtool = os.path.join(arch.build, "vmtool")
    build_vmtool(arch, vmtool)
    build_initramfs(arch, moddir, paths["initramfs"])
    root = os.path.join(arch.build, "rootfs")
    build_rootfs(arch, root, guardian, floor, earlyoom, stress, vmtool, moddir)
    check_rootfs(root, arch)
    out = paths["root"]
    if os.path.exists(out):
        os.unlink(out)
    run(["mksquashfs", root, out + ".tmp", "-noappend", "-all-root", "-comp", "gzip", "-quiet", "-no-progress"],
        stdout=subprocess.DEVNULL)
    os.replace(out + ".tmp", out)
    with open(stamp, "w") as f:
        f.write(digest)
    log("%s image: %s (%.0f MiB), %s" % (arch.name, os.path.relpath(out, REPO), os.path.getsize(out) / 2**20,
                                         os.path.relpath(paths["initramfs"], REPO)))
    return paths
