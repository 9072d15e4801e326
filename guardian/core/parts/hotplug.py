"""Hotplug: memory blocks going online/offline, zram and swap devices added or removed.

With pyudev and libudev present, a netlink monitor on the `memory` and `block` subsystems;
the daemon polls its descriptor and calls `on_readable()`, which tells one `hotplug` event per
change that matters and has the daemon restart its fill rate (totals are re-read every tick).
Without them (BusyBox/mdev boards, a build without pyudev) `HotplugWatcher.open()` logs one line
and returns None: the guardian reads MemTotal and SwapTotal every tick anyway, so nothing else
depends on this - it only makes the refresh of what is read rarely (watermarks) immediate.

It listens to udev's re-broadcast when a udev daemon runs (its events carry ID_FS_TYPE, so a
swap partition is recognised), else to the kernel's own uevents.
"""
import logging
import os
from typing import Any, Callable, List, Optional, Tuple

from guardian.core.parts import Part, Tell

log = logging.getLogger("guardian")

SUBSYSTEMS = ("memory", "block")


def _lib_dirs(root: str) -> List[str]:
    """The directories the dynamic loader searches: the standard ones, their multiarch
    subdirectories, /etc/ld.so.conf (with its includes) and LD_LIBRARY_PATH."""
    dirs = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib32", "/usr/lib32", "/usr/local/lib"]
    confs = [os.path.join(root, "etc/ld.so.conf")]
    seen = set()
    while confs:
        conf = confs.pop()
        if conf in seen:
            continue
        seen.add(conf)
        try:
            with open(conf) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = os.path.join(root, line[len("include "):].strip().lstrip("/"))
                folder, star, suffix = pattern.rpartition("/*")
                if not star:  # one file named outright
                    confs.append(pattern)
                    continue
                try:
                    confs += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(suffix)]
                except OSError:
                    pass
            elif line.startswith("/"):
                dirs.append(line)
    dirs += [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d.startswith("/")]
    return dirs


def libudev_present(root: str = "/") -> bool:
    """Whether libudev.so.1 is where the loader looks (with its multiarch subdirectories)."""
    for d in _lib_dirs(root):
        path = os.path.join(root, d.lstrip("/"))
        try:
            names = os.listdir(path)
        except OSError:
            continue
        if "libudev.so.1" in names:
            return True
        for name in names:
            if "-linux-" in name and os.path.exists(os.path.join(path, name, "libudev.so.1")):
                return True
    return False


class HotplugWatcher(Part):
    name = "hotplug"

    def __init__(self, monitor: Any, source: str, tell: Optional[Tell] = None,
                 on_change: Optional[Callable[[], None]] = None):
        self.monitor = monitor
        self.source = source
        self.tell = tell  # where `hotplug` events go (a Telemetry)
        self.on_change = on_change  # called after a batch of changes

    @classmethod
    def open(cls, udev_run_dir: str = "/run/udev", root: str = "/", tell: Optional[Tell] = None,
             on_change: Optional[Callable[[], None]] = None) -> Tuple[Optional["HotplugWatcher"], str]:
        """(a watcher, what it watches) or (None, why not). Logs one line either way."""
        if not libudev_present(root):
            # Importing pyudev costs ~2 MiB and its library lookup runs ldconfig: not on a
            # board without libudev (BusyBox mdev), where it could only fail.
            watcher, reason = None, "no libudev on this system (BusyBox mdev?), no hotplug events"
        else:
            watcher, reason = cls._open(udev_run_dir)
        if watcher is not None:
            watcher.tell, watcher.on_change = tell, on_change
        if watcher is None:
            log.info("hotplug: %s; memory and swap totals are re-read every tick instead", reason)
        else:
            log.info("hotplug: %s", reason)
        return watcher, reason

    @classmethod
    def _open(cls, udev_run_dir: str) -> Tuple[Optional["HotplugWatcher"], str]:
        try:
            import pyudev  # type: ignore[import-untyped]  # optional: pip install pyudev (guardian[udev])
        except ImportError:
            return None, "pyudev is not installed, no hotplug events"
        try:
            context = pyudev.Context()  # loads libudev: ImportError/OSError when it is absent
        except (ImportError, OSError) as exc:
            return None, "libudev is not available (%s), no hotplug events" % exc
        source = "udev" if os.path.exists(os.path.join(udev_run_dir, "control")) else "kernel"
        try:
            monitor = pyudev.Monitor.from_netlink(context, source=source)
            for subsystem in SUBSYSTEMS:
                monitor.filter_by(subsystem)
            monitor.start()
        except Exception as exc:  # EPERM/EPROTONOSUPPORT on odd kernels or sandboxes
            return None, "cannot listen to %s uevents: %s" % (source, exc)
        return cls(monitor, source), "watching memory and block (zram, swap) uevents from %s" % source

    def fileno(self) -> Optional[int]:
        return self.monitor.fileno() if self.monitor is not None else None

    def on_readable(self) -> None:
        changes = self.drain()
        for change in changes:
            if self.tell is not None:
                self.tell.event("hotplug", change)
        if changes and self.on_change is not None:
            self.on_change()

    def drain(self) -> List[str]:
        """Drain the pending uevents; one description per change that moves memory totals."""
        changes: List[str] = []
        if self.monitor is None:
            return changes
        for _ in range(256):
            try:
                device = self.monitor.poll(timeout=0)
            except Exception as exc:  # ENOBUFS: the socket overflowed; refresh anyway
                changes.append("uevents lost (%s): refresh everything" % exc)
                break
            if device is None:
                break
            text = describe(device.subsystem, device.action, device.sys_name, _props(device))
            if text is not None:
                changes.append(text)
        return changes

    def close(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.stop()
            except Exception:
                pass
            self.monitor = None


def _props(device: Any) -> dict:
    try:
        return dict(device.properties)
    except Exception:
        return {}


def describe(subsystem: Optional[str], action: Optional[str], name: Optional[str], props: dict) -> Optional[str]:
    """What one uevent means for the guardian, or None if nothing: every memory block event;
    block events of zram devices and of swap devices (ID_FS_TYPE=swap, udev only)."""
    name = name or "?"
    action = action or "change"
    if subsystem == "memory":
        return "memory block %s %s" % (name, action)
    if subsystem == "block":
        if name.startswith("zram"):
            return "zram device %s %s" % (name, action)
        if props.get("ID_FS_TYPE") == "swap":
            return "swap device %s %s" % (name, action)
    return None
