"""Board detection from fake device-tree and DMI trees: `guardian run` without --board or
--config picks the shipped board that matches, else generic, and says why."""
import os

import pytest

from guardian.board.boards import shipped_boards
from guardian.board.errors import ConfigError
from guardian.board.identity import read_identity
from guardian.board.load import detect_board, load_config


# What real boards expose (model: NUL-terminated; compatible: NUL-separated list).
DEVICE_TREES = {
    "rpi3b": ("Raspberry Pi 3 Model B Rev 1.2", ["raspberrypi,3-model-b", "brcm,bcm2837"]),
    "rpi3b+": ("Raspberry Pi 3 Model B Plus Rev 1.3", ["raspberrypi,3-model-b-plus", "brcm,bcm2837"]),
    "rpi-zero2w": ("Raspberry Pi Zero 2 W Rev 1.0", ["raspberrypi,model-zero-2-w", "brcm,bcm2837"]),
    "beaglebone-black": ("TI AM335x BeagleBone Black", ["ti,am335x-bone-black", "ti,am335x-bone", "ti,am33xx"]),
    "colibri-imx6ull": ("Toradex Colibri iMX6ULL 256/512MB on Colibri Evaluation Board V3",
                        ["toradex,colibri-imx6ull-eval", "toradex,colibri-imx6ull", "fsl,imx6ull"]),
    "colibri-imx6ull-old": ("Toradex Colibri iMX6ULL 256MB on Colibri Evaluation Board V3",
                            ["toradex,colibri-imx6ull-eval", "fsl,imx6ull"]),
    "stm32mp157c-dk2": ("STMicroelectronics STM32MP157C-DK2 Discovery Board", ["st,stm32mp157c-dk2", "st,stm32mp157"]),
}
DMI = {
    "x86-gateway": {"sys_vendor": "PC Engines", "product_name": "apu2", "board_name": "apu2"},
    "x86-gateway-protectli": {"sys_vendor": "Protectli", "product_name": "FW4B", "board_name": "FW4B"},
}


def fake_dt(tmp_path, model, compatible, where="proc"):
    proc_root, sys_root = str(tmp_path / "proc"), str(tmp_path / "sys")
    base = os.path.join(proc_root, "device-tree") if where == "proc" else \
        os.path.join(sys_root, "firmware", "devicetree", "base")
    os.makedirs(base, exist_ok=True)
    os.makedirs(sys_root, exist_ok=True)
    with open(os.path.join(base, "model"), "wb") as f:
        f.write(model.encode() + b"\0")
    with open(os.path.join(base, "compatible"), "wb") as f:
        f.write(b"".join(c.encode() + b"\0" for c in compatible))
    return proc_root, sys_root


def fake_dmi(tmp_path, fields):
    proc_root, sys_root = str(tmp_path / "proc"), str(tmp_path / "sys")
    d = os.path.join(sys_root, "class", "dmi", "id")
    os.makedirs(d)
    os.makedirs(proc_root, exist_ok=True)
    for k, v in fields.items():
        with open(os.path.join(d, k), "w") as f:
            f.write(v + "\n")
    return proc_root, sys_root


@pytest.mark.parametrize("key", sorted(DEVICE_TREES))
def test_device_tree_boards_are_detected(tmp_path, key):
    model, compatible = DEVICE_TREES[key]
    proc_root, sys_root = fake_dt(tmp_path, model, compatible)
    expected = key.split("+")[0].replace("-old", "")
    loaded = load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[])
    assert loaded.config.board == expected, loaded.why
    assert loaded.why.startswith('board "%s" detected: ' % expected)
    assert "also matched" not in loaded.why, "shipped boards must not overlap"


def test_model_from_sys_firmware_when_proc_has_no_device_tree(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, "Raspberry Pi 3 Model B Rev 1.2", [], where="sys")
    os.makedirs(proc_root)
    name, why = detect_board(shipped_boards(), proc_root, sys_root)
    assert name == "rpi3b"
    assert "device-tree model \"Raspberry Pi 3 Model B Rev 1.2\" matched" in why
    assert os.path.join(sys_root, "firmware", "devicetree", "base", "model") in why


def test_why_names_the_compatible_and_the_model(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, *DEVICE_TREES["stm32mp157c-dk2"])
    loaded = load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[])
    assert 'device-tree compatible "st,stm32mp157c-dk2"' in loaded.why
    assert loaded.why.endswith("(%s)" % shipped_boards()["stm32mp157c-dk2"])


@pytest.mark.parametrize("key", sorted(DMI))
def test_dmi_boards_are_detected(tmp_path, key):
    proc_root, sys_root = fake_dmi(tmp_path, DMI[key])
    loaded = load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[])
    assert loaded.config.board == "x86-gateway", loaded.why
    assert "DMI vendor" in loaded.why


def test_dmi_needs_every_field_of_one_match_table(tmp_path):
    # "apu2" from another vendor is not a PC Engines APU
    proc_root, sys_root = fake_dmi(tmp_path, {"sys_vendor": "Acme", "product_name": "apu2"})
    name, why = detect_board(shipped_boards(), proc_root, sys_root)
    assert name == "generic"


def test_unknown_board_falls_back_to_generic_and_says_why(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, "Raspberry Pi 4 Model B Rev 1.4", ["raspberrypi,4-model-b"])
    loaded = load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[])
    assert loaded.config.board == "generic"
    assert loaded.why.startswith('board "generic": no board file matched this machine (device-tree model '
                                 '"Raspberry Pi 4 Model B Rev 1.4")')


def test_nothing_to_read_falls_back_to_generic(tmp_path):
    os.makedirs(str(tmp_path / "proc"))
    os.makedirs(str(tmp_path / "sys"))
    loaded = load_config(proc_root=str(tmp_path / "proc"), sys_root=str(tmp_path / "sys"), boards_dirs=[])
    assert loaded.config.board == "generic"
    assert "no device-tree model and no DMI data" in loaded.why


def test_read_identity(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, *DEVICE_TREES["beaglebone-black"])
    ident = read_identity(proc_root, sys_root)
    assert ident.device_tree_model == "TI AM335x BeagleBone Black"
    assert ident.device_tree_compatible == ("ti,am335x-bone-black", "ti,am335x-bone", "ti,am33xx")
    assert ident.dmi_product_name is None


def test_a_local_board_file_is_detected_and_the_most_specific_wins(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, *DEVICE_TREES["rpi3b"])
    local = tmp_path / "boards"
    local.mkdir()
    (local / "kiosk.toml").write_text(
        '[board]\ninclude = "rpi3b"\n[[board.match]]\ndevice_tree_compatible = "raspberrypi,3-model-b"\n'
        "device_tree_model = 'Rev 1\\.2$'\n")
    os.chmod(str(local / "kiosk.toml"), 0o644)
    loaded = load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[str(local)])
    assert loaded.config.board == "kiosk"
    assert "also matched: rpi3b" in loaded.why


def test_a_broken_board_file_stops_detection(tmp_path):
    proc_root, sys_root = fake_dt(tmp_path, *DEVICE_TREES["rpi3b"])
    local = tmp_path / "boards"
    local.mkdir()
    (local / "typo.toml").write_text("[bord]\n")
    os.chmod(str(local / "typo.toml"), 0o644)
    with pytest.raises(ConfigError, match="did you mean 'board'"):
        load_config(proc_root=proc_root, sys_root=sys_root, boards_dirs=[str(local)])
