"""Hotplug on this machine: the kernel's uevent socket, and the uevent the kernel sends for a
zram device when asked to."""
import os
import select
import time

import pytest

from guardian.core.parts.hotplug import HotplugWatcher

pytestmark = pytest.mark.integration


def test_real_uevent_from_a_zram_device():
    """The kernel's own uevent (writing 'change' to a device's uevent file makes it send one)
    reaches the watcher, with no libudev and no pyudev."""
    zram = [d for d in sorted(os.listdir("/sys/block")) if d.startswith("zram")] if os.path.isdir("/sys/block") else []
    if not zram:
        pytest.skip("no zram device here (modprobe zram makes one)")
    watcher, reason = HotplugWatcher.open()
    if watcher is None:
        pytest.skip(reason)
    try:
        try:
            with open("/sys/block/%s/uevent" % zram[0], "w") as f:
                f.write("change")
        except OSError as exc:
            pytest.skip("cannot trigger a uevent: %s" % exc)
        changes = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "zram device %s change" % zram[0] not in changes:
            ready, _, _ = select.select([watcher.fileno()], [], [], 0.5)
            if ready:
                changes += watcher.drain()
        assert "zram device %s change" % zram[0] in changes
    finally:
        watcher.close()


def test_the_socket_opens_and_is_quiet_at_rest():
    watcher, reason = HotplugWatcher.open()
    if watcher is None:
        pytest.skip(reason)
    try:
        assert isinstance(watcher.fileno(), int) and "memory and block" in reason
        assert all(isinstance(c, str) for c in watcher.drain())
    finally:
        watcher.close()
