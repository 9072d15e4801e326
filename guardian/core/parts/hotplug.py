"""Hotplug: memory blocks going online/offline, zram devices added, resized or removed.

The kernel's own uevents (guardian.kernel.uevent: a netlink socket, no libudev, no pyudev),
the same on udev, mdev and BusyBox boards. The daemon polls the socket and calls
`on_readable()`, which tells one `hotplug` event per change that matters and has the daemon
restart its fill rate: memory that goes offline would otherwise look like a burst that raises
the lines. MemTotal and SwapTotal are re-read every tick anyway, so nothing else depends on
this; without the socket (a kernel without CONFIG_NET, a sandbox that refuses netlink) `open()`
logs one line and returns None.

Measured (README, "Hotplug"): the socket costs a few KiB; pyudev, used before, cost 0.6 MiB RSS
on a udev host (libudev, ctypes) and was not loaded at all on boards without libudev.
"""
from __future__ import annotations

from guardian.core.parts import Part
from guardian.kernel.uevent import open_uevent_socket, parse_uevent, receive
from guardian.logger import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple

    from guardian.core.parts import Tell
    from guardian.kernel.sockets import Socket


SUBSYSTEMS = ("memory", "block")
DRAIN_MAX = 256  # messages read per wake; the rest wait for the next


class HotplugWatcher(Part):
    name = "hotplug"

    def __init__(self, sock: Optional[Socket], tell: Optional[Tell] = None,
                 on_change: Optional[Callable[[], None]] = None):
        self.sock = sock
        self.tell = tell  # where `hotplug` events go (a Telemetry)
        self.on_change = on_change  # called after a batch of changes

    @classmethod
    def open(cls, tell: Optional[Tell] = None,
             on_change: Optional[Callable[[], None]] = None) -> Tuple[Optional["HotplugWatcher"], str]:
        """(a watcher, what it watches) or (None, why not). Logs one line either way."""
        try:
            sock = open_uevent_socket()
        except OSError as exc:  # EPERM/EPROTONOSUPPORT on odd kernels or sandboxes
            reason = "cannot listen to the kernel's uevents: %s" % (exc.strerror or exc)
            log.info("hotplug: %s; memory and swap totals are re-read every tick instead", reason)
            return None, reason
        reason = "watching the kernel's memory and block (zram) uevents"
        log.info("hotplug: %s", reason)
        return cls(sock, tell, on_change), reason

    def fileno(self) -> Optional[int]:
        return self.sock.fileno() if self.sock is not None else None

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
        if self.sock is None:
            return changes
        for _ in range(DRAIN_MAX):
            try:
                data = receive(self.sock)
            except OSError as exc:  # ENOBUFS: the socket overflowed; refresh anyway
                changes.append("uevents lost (%s): refresh everything" % (exc.strerror or exc))
                break
            if data is None:
                break
            event = parse_uevent(data) if data else None
            if event is None or event.subsystem not in SUBSYSTEMS:
                continue
            text = describe(event.subsystem, event.action, event.name)
            if text is not None:
                changes.append(text)
        return changes

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def describe(subsystem: Optional[str], action: Optional[str], name: Optional[str]) -> Optional[str]:
    """What one uevent means for the guardian, or None if nothing: every memory block event,
    and the block events of zram devices (swap on zram is RAM). A swap partition is not told
    apart from others by the kernel's events; SwapTotal, re-read every tick, shows its swapon."""
    name = name or "?"
    action = action or "change"
    if subsystem == "memory":
        return "memory block %s %s" % (name, action)
    if subsystem == "block" and name.startswith("zram"):
        return "zram device %s %s" % (name, action)
    return None
