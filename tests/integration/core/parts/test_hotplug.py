"""Hotplug on this machine, with pyudev and libudev present: a real netlink monitor, and
the uevent the kernel sends for a zram device."""
import os
import select
import time

import pytest

from guardian.core.parts.hotplug import HotplugWatcher

pytestmark = pytest.mark.integration


def test_real_uevent_from_a_zram_device(tmp_path):
    """With pyudev and libudev present: a real netlink monitor sees a uevent the kernel sends
    when asked to (writing 'change' to a device's uevent file)."""
    pytest.importorskip("pyudev")
    zram = [d for d in sorted(os.listdir("/sys/block")) if d.startswith("zram")] if os.path.isdir("/sys/block") else []
    if not zram:
        pytest.skip("no zram device here (modprobe zram makes one)")
    # tmp_path has no 'control' socket: listen to the kernel's own uevents, as on mdev boards.
    watcher, reason = HotplugWatcher.open(udev_run_dir=str(tmp_path))
    if watcher is None:
        pytest.skip(reason)
    try:
        assert watcher.source == "kernel"
        try:
            with open("/sys/block/%s/uevent" % zram[0], "w") as f:
                f.write("change")
        except OSError as exc:
            pytest.skip("cannot trigger a uevent: %s" % exc)
        changes = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not changes:
            ready, _, _ = select.select([watcher.fileno()], [], [], 0.5)
            if ready:
                changes += watcher.drain()
        assert "zram device %s change" % zram[0] in changes
    finally:
        watcher.close()


def test_pyudev_present_gives_a_pollable_watcher(tmp_path):
    pytest.importorskip("pyudev")
    watcher, reason = HotplugWatcher.open(udev_run_dir=str(tmp_path))
    if watcher is None:
        pytest.skip(reason)
    try:
        assert isinstance(watcher.fileno(), int) and "memory and block" in reason
        assert all(isinstance(c, str) for c in watcher.drain())
    finally:
        watcher.close()
