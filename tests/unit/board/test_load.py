"""Loading a board config (load.py): a whole file onto the dataclasses, includes (merged in
order, cycles, missing ones), --board and local board directories. A file's contents are
checked in test_schema.py, its TOML in test_toml.py, who may have written it in test_trust.py."""
import os

import pytest

from guardian.board.boards import shipped_boards
from guardian.board.errors import ConfigError
from guardian.board.load import load_config
from guardian.config import Config
from tests.support.boardfiles import error_of, load, write


SHIPPED = shipped_boards()


# ----------------------------------------------------------------------------- the format

def test_full_file_maps_onto_the_dataclasses(tmp_path):
    path = write(tmp_path, "b.toml", """
        [board]
        name = "myboard"
        description = "test"
        ram_mib = 256
        match = { device_tree_model = '^My Board' }

        [thresholds]
        kill = {percent = 4, min_mib = 12}
        hysteresis_percent = 2
        psi_full_terminate = false

        [wait]
        psi_window_us = 2000000
        use_psi = true

        [actions]
        grace_s = 3
        drop_caches_level = 3

        [victims]
        ignore_names = ["busybox"]

        [[critical]]
        name = "connman"
        oom_score_adj = -950
        match = { comm = "connmand" }
        leak = { max_rss_mib = 40, on_leak = "restart", command = ["/etc/init.d/S45connman", "restart"] }

        [[critical]]
        name = "app"
        [critical.match]
        cmdline = 'python3 .*/app\\.py'
        cgroup = "/app"

        [[low_priority]]
        name = "webui"
        order = 1
        stop = ["/etc/init.d/S60webui", "stop"]
        oom_score_adj = 500
        match = {comm = "lighttpd"}

        [sysctl]
        "vm.overcommit_memory" = 2
        "vm.overcommit_ratio" = "90"
        vm.swappiness = 10
        """)
    loaded = load(path)
    c = loaded.config
    assert c.board == "myboard" and c.board_info.ram_mib == 256
    assert c.board_info.match[0].device_tree_model == "^My Board"
    assert c.thresholds.kill.percent == 4.0 and c.thresholds.kill.min_mib == 12.0
    assert c.thresholds.terminate == Config().thresholds.terminate
    assert c.thresholds.hysteresis_percent == 2.0
    assert c.thresholds.psi_full_terminate is None  # false switches it off
    assert c.wait.psi_window_us == 2000000
    assert c.actions.grace_s == 3.0 and c.actions.drop_caches_level == 3
    assert c.victims.ignore_names == ("busybox",)
    connman, app = c.critical
    assert connman.oom_score_adj == -950 and connman.match.comm == "connmand"
    assert connman.leak.max_rss_mib == 40 and connman.leak.command == ("/etc/init.d/S45connman", "restart")
    assert connman.leak.window_s == 1800.0  # the rest from LeakWatch's defaults
    assert app.oom_score_adj == -900 and app.match.cgroup == "/app"
    (webui,) = c.low_priority
    assert webui.stop == ("/etc/init.d/S60webui", "stop") and webui.order == 1 and webui.oom_score_adj == 500
    assert c.sysctl == {"vm.overcommit_memory": "2", "vm.overcommit_ratio": "90", "vm.swappiness": "10"}
    assert c.source == path and c.files == (path,) and loaded.files == (path,)
    assert "given by --config" in loaded.why


def test_board_name_defaults_to_the_file_name(tmp_path):
    path = write(tmp_path, "mybox.toml", "[thresholds]\nhysteresis_percent = 1\n")
    assert load(path).config.board == "mybox"


# ----------------------------------------------------------------------------- includes

def test_include_chain_later_overrides_earlier(tmp_path):
    write(tmp_path, "base.toml", """
        [board]
        name = "base"
        match = { dmi_product_name = "Base" }
        [thresholds]
        kill = {percent = 4, min_mib = 10}
        reclaim = {percent = 20, min_mib = 40}
        [[critical]]
        name = "sshd"
        match = {comm = "sshd"}
        [[critical]]
        name = "watchdog"
        match = {comm = "watchdog"}
        oom_score_adj = -1000
        [[critical]]
        name = "old"
        match = {comm = "old"}
        [sysctl]
        "vm.swappiness" = 10
        "vm.panic_on_oom" = 0
        """)
    write(tmp_path, "middle.toml", """
        [board]
        include = "base.toml"
        [thresholds]
        kill = {min_mib = 14}
        [[critical]]
        name = "sshd"
        match = {comm = "dropbear"}
        oom_score_adj = -800
        """)
    top = write(tmp_path, "top.toml", """
        [board]
        name = "top"
        include = ["middle"]
        [[critical]]
        name = "app"
        match = {comm = "app"}
        [[critical]]
        name = "old"
        remove = true
        [sysctl]
        "vm.swappiness" = 1
        """)
    loaded = load(top)
    c = loaded.config
    assert [os.path.basename(f) for f in loaded.files] == ["base.toml", "middle.toml", "top.toml"]
    assert c.thresholds.kill.percent == 4.0 and c.thresholds.kill.min_mib == 14.0  # deep merge
    assert c.thresholds.reclaim.percent == 20.0
    assert [e.name for e in c.critical] == ["sshd", "watchdog", "app"]  # replaced in place, removed, appended
    assert c.critical[0].match.comm == "dropbear" and c.critical[0].oom_score_adj == -800
    assert c.sysctl == {"vm.swappiness": "1", "vm.panic_on_oom": "0"}
    assert c.board == "top" and c.board_info.match == ()  # [board] is never inherited


def test_include_by_board_name_finds_shipped_generic(tmp_path):
    path = write(tmp_path, "mine.toml", '[board]\ninclude = "generic"\n')
    loaded = load_config(path, boards_dirs=[])
    assert loaded.files == (SHIPPED["generic"], path)
    assert {c.name for c in loaded.config.critical} >= {"watchdog", "sshd", "dropbear"}


def test_diamond_include_is_not_a_cycle(tmp_path):
    write(tmp_path, "a.toml", '[thresholds]\nhysteresis_percent = 1\n')
    write(tmp_path, "b.toml", '[board]\ninclude = "a.toml"\n')
    write(tmp_path, "c.toml", '[board]\ninclude = "a.toml"\n')
    top = write(tmp_path, "top.toml", '[board]\ninclude = ["b.toml", "c.toml"]\n')
    assert load(top).config.thresholds.hysteresis_percent == 1.0


def test_include_cycle_is_named(tmp_path):
    write(tmp_path, "a.toml", '[board]\ninclude = "b.toml"\n')
    write(tmp_path, "b.toml", '[board]\ninclude = "c.toml"\n')
    write(tmp_path, "c.toml", '[board]\ninclude = "a.toml"\n')
    e = error_of(os.path.join(str(tmp_path), "a.toml"))
    assert "include cycle: a.toml -> b.toml -> c.toml -> a.toml" in str(e)
    assert e.file.endswith("c.toml") and e.line == 2 and e.key == "board.include"


def test_self_include_is_a_cycle(tmp_path):
    path = write(tmp_path, "a.toml", '[board]\ninclude = "a"\n')
    assert "include cycle: a.toml -> a.toml" in str(error_of(path))


def test_missing_include_is_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, "a.toml", '# top\n[board]\nname = "a"\ninclude = "gneric"\n')
    e = error_of(path)
    msg = str(e)
    assert msg.startswith(path + ":4: board.include = \"gneric\": no such board or file")
    assert "did you mean 'generic'?" in msg
    assert os.path.join(str(tmp_path), "gneric.toml") in msg


def test_missing_include_file_path(tmp_path):
    path = write(tmp_path, "a.toml", '[board]\ninclude = "sub/none.toml"\n')
    assert "no such board or file" in str(error_of(path))


def test_error_in_included_file_names_that_file(tmp_path):
    inc = write(tmp_path, "inc.toml", '[[critical]]\nname = "x"\nmatch = {comm = "x"}\noom_score_adj = 5000\n')
    top = write(tmp_path, "top.toml", '[board]\ninclude = "inc.toml"\n')
    e = error_of(top)
    assert e.file == inc and e.line == 4


# ----------------------------------------------------------------------------- --board

def test_unknown_board_suggests(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(board="rpi3", boards_dirs=[])
    assert "no such board" in str(info.value) and "did you mean 'rpi3b'?" in str(info.value)


def test_config_and_board_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        load_config("x.toml", "generic", boards_dirs=[])


def test_local_board_dir_overrides_and_extends_shipped(tmp_path):
    local = tmp_path / "boards"
    local.mkdir()
    write(local, "mybox.toml", '[board]\ninclude = "rpi3b"\n[[critical]]\nname = "app"\nmatch = {comm = "app"}\n')
    loaded = load_config(board="mybox", boards_dirs=[str(local)])
    assert loaded.files == (SHIPPED["generic"], SHIPPED["rpi3b"], str(local / "mybox.toml"))
    assert loaded.config.critical[-1].name == "app"


def test_every_table_of_config_is_a_section(tmp_path):
    """A table added to guardian/config.py is loadable without touching the loader."""
    from guardian.config import Config
    from guardian.record import fields, is_record

    tables = [name for name in fields(Config) if is_record(getattr(Config, name, None))
              and name != "board_info"]
    assert {"thresholds", "wait", "actions", "victims"} <= set(tables)
    for name in tables:
        path = write(tmp_path, name + ".toml", "[%s]\n" % name)
        assert getattr(load(path).config, name) == getattr(Config(), name)
