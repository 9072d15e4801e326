"""Hotplug with and without pyudev/libudev."""
import builtins
import logging
import os
import subprocess
import sys

import pytest

from guardian.core.parts import hotplug
from guardian.core.parts.hotplug import HotplugWatcher, describe
from tests.support import REPO


def block_pyudev(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pyudev" or name.startswith("pyudev."):
            raise ImportError("No module named 'pyudev'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pyudev", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_without_pyudev_one_log_line_and_none(monkeypatch, caplog):
    block_pyudev(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="guardian"):
        watcher, reason = HotplugWatcher.open()
    assert watcher is None and "pyudev is not installed" in reason
    assert len(caplog.records) == 1 and "re-read every tick" in caplog.records[0].getMessage()


def test_without_libudev(monkeypatch, caplog):
    pyudev = pytest.importorskip("pyudev")

    def no_library(*a, **k):
        raise ImportError("No library named udev")

    monkeypatch.setattr(pyudev, "Context", no_library)
    with caplog.at_level(logging.DEBUG, logger="guardian"):
        watcher, reason = HotplugWatcher.open()
    assert watcher is None and "libudev is not available" in reason and len(caplog.records) == 1


def test_netlink_refused(monkeypatch):
    pyudev = pytest.importorskip("pyudev")

    class Refusing:
        @staticmethod
        def from_netlink(context, source="udev"):
            raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(pyudev, "Monitor", Refusing)
    watcher, reason = HotplugWatcher.open()
    assert watcher is None and "Operation not permitted" in reason


def test_the_rest_of_the_guardian_imports_without_pyudev():
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def imp(name, *a, **k):\n"
            "    if name.startswith('pyudev'): raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = imp\n"
            "import guardian.core.telemetry, guardian.core.eventlog, guardian.core.parts.oomwatch\n"
            "import guardian.analysis.forensics, guardian.core.parts.metrics\n"
            "import guardian.core.parts.hotplug, guardian.core.daemon, guardian.cli\n"
            "w, why = guardian.core.parts.hotplug.HotplugWatcher.open()\n"
            "assert w is None, why\n"
            "assert 'pyudev' not in sys.modules\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("subsystem, action, name, props, expected", [
    ("memory", "online", "memory42", {}, "memory block memory42 online"),
    ("memory", "offline", "memory7", {}, "memory block memory7 offline"),
    ("block", "add", "zram0", {}, "zram device zram0 add"),
    ("block", "change", "zram1", {"RESIZE": "1"}, "zram device zram1 change"),
    ("block", "add", "mmcblk0p3", {"ID_FS_TYPE": "swap"}, "swap device mmcblk0p3 add"),
    ("block", "add", "mmcblk0p2", {"ID_FS_TYPE": "ext4"}, None),
    ("block", "add", "loop3", {}, None),
    ("net", "add", "wlan0", {}, None),
])
def test_describe(subsystem, action, name, props, expected):
    assert describe(subsystem, action, name, props) == expected


class FakeDevice:
    def __init__(self, subsystem, action, sys_name, properties=None):
        self.subsystem, self.action, self.sys_name = subsystem, action, sys_name
        self.properties = properties or {}


class FakeMonitor:
    def __init__(self, devices, fail=None):
        self.devices = list(devices)
        self.fail = fail
        self.stopped = False

    def fileno(self):
        return 99

    def poll(self, timeout=None):
        if self.fail and not self.devices:
            raise self.fail
        return self.devices.pop(0) if self.devices else None

    def stop(self):
        self.stopped = True


def test_on_readable_drains_and_filters():
    mon = FakeMonitor([FakeDevice("block", "add", "loop0"), FakeDevice("memory", "online", "memory9"),
                       FakeDevice("block", "remove", "zram0")])
    w = HotplugWatcher(mon, "kernel")
    assert w.fileno() == 99
    assert w.drain() == ["memory block memory9 online", "zram device zram0 remove"]
    assert w.drain() == []
    w.close()
    assert mon.stopped and w.fileno() is None and w.drain() == []


def test_on_readable_socket_overflow_still_asks_for_a_refresh():
    w = HotplugWatcher(FakeMonitor([], fail=OSError(105, "No buffer space available")), "kernel")
    (change,) = w.drain()
    assert "lost" in change


def test_source_is_udev_when_a_udev_daemon_runs(tmp_path, monkeypatch):
    pyudev = pytest.importorskip("pyudev")
    (tmp_path / "control").write_text("")
    sources = []

    class Mon:
        @staticmethod
        def from_netlink(context, source="udev"):
            sources.append(source)
            return FakeMonitor([])

    monkeypatch.setattr(pyudev, "Monitor", Mon)
    FakeMonitor.filter_by = lambda self, s: None
    FakeMonitor.start = lambda self: None
    watcher, _ = HotplugWatcher.open(udev_run_dir=str(tmp_path))
    assert watcher is not None and sources == ["udev"] and watcher.source == "udev"
    assert hotplug.SUBSYSTEMS == ("memory", "block")


def _lib(root, rel):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()


@pytest.mark.parametrize("where", [
    "usr/lib/libudev.so.1",  # Buildroot, Yocto
    "lib/aarch64-linux-gnu/libudev.so.1",  # Debian multiarch
    "opt/vendor/lib/libudev.so.1",  # named by an ld.so.conf include
])
def test_libudev_is_found_where_the_loader_looks(tmp_path, where):
    from guardian.core.parts.hotplug import libudev_present
    _lib(tmp_path, "usr/lib/libc.so.6")
    assert not libudev_present(str(tmp_path))
    os.makedirs(str(tmp_path / "etc/ld.so.conf.d"))
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (tmp_path / "etc/ld.so.conf.d/vendor.conf").write_text("# vendor\n/opt/vendor/lib\n")
    _lib(tmp_path, where)
    assert libudev_present(str(tmp_path))


def test_without_libudev_pyudev_is_not_even_imported(tmp_path, monkeypatch, caplog):
    """A BusyBox/mdev board: importing pyudev would cost ~2 MiB for nothing."""
    _lib(tmp_path, "usr/lib/libc.so.6")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.delitem(sys.modules, "pyudev", raising=False)
    with caplog.at_level(logging.DEBUG, logger="guardian"):
        watcher, reason = HotplugWatcher.open(root=str(tmp_path))
    assert watcher is None and "no libudev" in reason and "pyudev" not in sys.modules
    assert len(caplog.records) == 1


def test_an_ld_so_conf_include_of_one_file_is_followed(tmp_path):
    from guardian.core.parts.hotplug import libudev_present
    os.makedirs(str(tmp_path / "etc"))
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/vendor-ld.conf\n")
    (tmp_path / "etc/vendor-ld.conf").write_text("/opt/x/lib\n")
    _lib(tmp_path, "opt/x/lib/libudev.so.1")
    assert libudev_present(str(tmp_path))
