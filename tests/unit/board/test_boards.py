"""The shipped board files: every expected board is there, found where boards.py looks (a
checkout, a PyInstaller bundle, the package data), and each one loads without notes and says
what a real board must."""
import os
import re

import pytest

from guardian.board.boards import shipped_boards, shipped_dir
from guardian.board.load import LoadedConfig, load_config
from guardian.config import Critical, LowPriority
from tests.support import REPO


SHIPPED = shipped_boards()
EXPECTED_BOARDS = {"generic", "rpi3b", "rpi-zero2w", "beaglebone-black", "colibri-imx6ull", "stm32mp157c-dk2",
                   "x86-gateway"}


def test_every_expected_board_is_shipped():
    assert EXPECTED_BOARDS <= set(SHIPPED), sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_board_loads_and_validates(name):
    loaded = load_config(board=name, boards_dirs=[])
    assert isinstance(loaded, LoadedConfig)
    config = loaded.config
    assert config.board == name == config.board_info.name
    assert loaded.files[-1] == SHIPPED[name]
    assert loaded.notes == (), "shipped files should load without notes: %s" % (loaded.notes,)
    assert config.board_info.description
    if name != "generic":
        assert loaded.files[0] == SHIPPED["generic"], "every board builds on generic"
        assert config.board_info.match, "a real board must say how to recognise it"
        assert config.board_info.ram_mib
        assert config.critical and config.low_priority and config.sysctl
    for entry in config.critical:
        assert isinstance(entry, Critical) and -1000 <= entry.oom_score_adj <= 1000
        if entry.leak.on_leak in ("restart", "command"):
            assert entry.leak.command, entry.name
    for entry in config.low_priority:
        assert isinstance(entry, LowPriority)
        assert entry.oom_score_adj is None or entry.oom_score_adj >= 0
    names = [e.name for e in config.critical] + [e.name for e in config.low_priority]
    assert len(names) == len(set(names))


def test_board_ram_sizes_are_the_ones_the_boards_have():
    ram = {n: load_config(board=n, boards_dirs=[]).config.board_info.ram_mib for n in SHIPPED}
    assert ram["rpi3b"] == 1024
    assert ram["rpi-zero2w"] == 512
    assert ram["beaglebone-black"] == 512
    assert ram["colibri-imx6ull"] == 256
    assert ram["stm32mp157c-dk2"] == 512


def test_the_daemons_people_run_are_covered():
    text = " ".join(open(p).read() for p in SHIPPED.values())
    for daemon in ("connmand", "NetworkManager", "dropbear", "sshd", "watchdog", "syslogd", "rauc", "swupdate",
                   "mosquitto", "node-red", "lighttpd", "fluent-bit", "promtail"):
        assert daemon in text, daemon


def test_busybox_board_uses_init_scripts_and_systemd_boards_use_systemctl():
    colibri = load_config(board="colibri-imx6ull", boards_dirs=[]).config
    assert any(lp.stop[:1] == ("/etc/init.d/S50lighttpd",) for lp in colibri.low_priority)
    rpi = load_config(board="rpi3b", boards_dirs=[]).config
    assert all(lp.stop[:1] in ((), ("systemctl",)) for lp in rpi.low_priority)


def test_shipped_file_names_are_board_names():
    for name, path in SHIPPED.items():
        assert os.path.basename(path) == name + ".toml"


def test_shipped_dir_is_found_from_a_checkout():
    d = shipped_dir()
    assert d is not None and os.path.isfile(os.path.join(d, "generic.toml"))


def test_shipped_dir_prefers_a_pyinstaller_bundle(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle" / "guardian" / "board_configs"
    bundle.mkdir(parents=True)
    (bundle / "generic.toml").write_text('[board]\nname = "generic"\n')
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path / "bundle"), raising=False)
    assert shipped_dir() == str(bundle)
    assert set(shipped_boards()) == {"generic"}


def test_pyproject_ships_the_board_configs_as_package_data():
    text = open(os.path.join(REPO, "pyproject.toml")).read()
    assert '"guardian.board_configs" = "board-configs"' in text
    assert re.search(r'"guardian\.board_configs" = \["\*\.toml"\]', text)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_entries_name_a_comm_or_cmdline(name):
    """So that the adj keeper rejects an unrelated exec after reading comm (and cmdline)
    instead of the whole process: that is the cost of every exec on the board."""
    config = load_config(board=name, boards_dirs=[]).config
    for entry in config.critical + config.low_priority:
        assert entry.match.comm or entry.match.cmdline, entry.name
