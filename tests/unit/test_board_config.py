"""Board config loading and validation: every shipped board, and a corpus of broken files
whose messages must name the file, the line, the key and what was expected."""
import os
import re
import textwrap

import pytest

from guardian.board.boards import shipped_boards, shipped_dir
from guardian.board.errors import ConfigError
from guardian.board.load import LoadedConfig, load_config, load_file
from guardian.board.toml import locate
from guardian.config import Config, Critical, LowPriority

SHIPPED = shipped_boards()
EXPECTED_BOARDS = {"generic", "rpi3b", "rpi-zero2w", "beaglebone-black", "colibri-imx6ull", "stm32mp157c-dk2",
                   "x86-gateway"}


def write(directory, name, text, mode=0o644):
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    os.chmod(path, mode)
    return path


def load(path, **kw):
    return load_config(path, boards_dirs=[], **kw)


def error_of(path, **kw):
    with pytest.raises(ConfigError) as info:
        load(path, **kw)
    return info.value


# ----------------------------------------------------------------------------- shipped boards

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
    here = os.path.dirname(os.path.abspath(__file__))
    text = open(os.path.join(here, "..", "..", "pyproject.toml")).read()
    assert '"guardian.board_configs" = "board-configs"' in text
    assert re.search(r'"guardian\.board_configs" = \["\*\.toml"\]', text)


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


def test_unit_gets_its_service_suffix_and_restart_defaults_to_systemctl(tmp_path):
    path = write(tmp_path, "b.toml", """
        [[critical]]
        name = "mosquitto"
        match = { unit = "mosquitto" }
        leak = { on_leak = "restart" }
        """)
    (c,) = load(path).config.critical
    assert c.match.unit == "mosquitto.service"
    assert c.leak.command == ("systemctl", "restart", "mosquitto.service")


def test_long_comm_is_noted_not_refused(tmp_path):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "j"\nmatch = {comm = "systemd-journald"}\n')
    loaded = load(path)
    assert any("15 characters" in n and '"systemd-journal"' in n for n in loaded.notes)


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


# ----------------------------------------------------------------------------- broken corpus

def test_unknown_top_level_key_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "b.toml", '[board]\nname = "b"\n\n[[critcal]]\nname = "x"\n')
    e = error_of(path)
    assert str(e) == "%s:4: critcal: unknown key; did you mean 'critical'?" % path
    assert e.line == 4 and e.key == "critcal"


def test_unknown_nested_key_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "b.toml", """
        [thresholds]
        kill = {percent = 5, min_mb = 16}
        """)
    e = error_of(path)
    assert str(e) == "%s:2: thresholds.kill.min_mb: unknown key; did you mean 'min_mib'?" % path


def test_unknown_key_in_an_entry(tmp_path):
    path = write(tmp_path, "b.toml", """
        [[critical]]
        name = "a"
        match = {comm = "a"}

        [[critical]]
        name = "b"
        match = {comm = "b"}
        oom_adj = -17
        """)
    e = error_of(path)
    assert str(e).startswith("%s:8: critical[1].oom_adj: unknown key; did you mean 'oom_score_adj'?" % path)


def test_unknown_key_in_match_table(tmp_path):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "a"\n[critical.match]\ncommand = "a"\n')
    e = error_of(path)
    assert e.key == "critical[0].match.command" and e.line == 4 and "did you mean 'comm'?" in str(e)


def test_misplaced_keys_say_where_they_belong(tmp_path):
    assert "belongs in the [board] table" in str(error_of(write(tmp_path, "a.toml", 'include = "generic"\n')))
    assert "[sysctl] table" in str(error_of(write(tmp_path, "b.toml", '"vm.swappiness" = 1\n')))


def test_unknown_key_without_a_near_one_lists_the_valid_ones(tmp_path):
    e = error_of(write(tmp_path, "b.toml", "[wait]\nzzz = 1\n"))
    assert "valid keys:" in str(e) and "psi_window_us" in str(e)


@pytest.mark.parametrize("body, key, expected", [
    ('[thresholds]\nkill = {percent = "5", min_mib = 16}\n', "thresholds.kill.percent", "expected a number"),
    ('[thresholds]\nkill = 5\n', "thresholds.kill", "expected a table"),
    ('[wait]\nuse_psi = "yes"\n', "wait.use_psi", "expected true or false"),
    ('[wait]\npsi_window_us = 1.5\n', "wait.psi_window_us", "expected an integer"),
    ('[actions]\ngrace_s = true\n', "actions.grace_s", "expected a number"),
    ('[victims]\nignore_names = "busybox"\n', "victims.ignore_names", "expected a list of strings"),
    ('[[critical]]\nname = "a"\nmatch = {comm = 5}\n', "critical[0].match.comm", "expected a string"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\noom_score_adj = "-900"\n', "critical[0].oom_score_adj",
     "expected an integer"),
    ('[[low_priority]]\nname = "w"\nmatch = {comm = "w"}\nstop = "/etc/init.d/S60webui stop"\n',
     "low_priority[0].stop", "expected a list of strings"),
    ('[thresholds]\npsi_some_reclaim = true\n', "thresholds.psi_some_reclaim", "or false to switch it off"),
    ('[critical]\nname = "a"\n', "critical", "write [[critical]], not [critical]"),
    ('[sysctl]\n"vm.swappiness" = true\n', "sysctl.\"vm.swappiness\"", "expected an integer or a string"),
])
def test_wrong_types(tmp_path, body, key, expected):
    e = error_of(write(tmp_path, "b.toml", body))
    assert e.key == key, str(e)
    assert expected in str(e)
    assert e.line is not None and str(e).startswith("%s:%d: " % (e.file, e.line))


@pytest.mark.parametrize("adj", [-1001, 1001, -2000, 5000])
def test_out_of_range_adj(tmp_path, adj):
    path = write(tmp_path, "b.toml", """
        [[critical]]
        name = "sshd"
        match = {comm = "sshd"}
        oom_score_adj = %d
        """ % adj)
    e = error_of(path)
    assert str(e) == "%s:4: critical[0].oom_score_adj = %d: expected an integer from -1000 to 1000" % (path, adj)
    assert e.value == adj


@pytest.mark.parametrize("adj", [-1000, 0, 1000])
def test_adj_bounds_are_accepted(tmp_path, adj):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "a"\nmatch = {comm = "a"}\noom_score_adj = %d\n' % adj)
    assert load(path).config.critical[0].oom_score_adj == adj


@pytest.mark.parametrize("body, key, expected", [
    ('[thresholds]\nkill = {percent = 150, min_mib = 16}\n', "thresholds.kill.percent", "from 0 to 100"),
    ('[thresholds]\nreaction_time_s = -1\n', "thresholds.reaction_time_s", "from 0 to 60"),
    ('[wait]\npsi_window_us = 100\n', "wait.psi_window_us", "from 500000 to 10000000"),
    ('[wait]\nmin_timeout_s = 0\n', "wait.min_timeout_s", "from 0.01 to 60"),
    # Issue 12: intervals that made a busy loop, a floor that overflowed the lines.
    ('[wait]\nmin_timeout_s = 1e-300\n', "wait.min_timeout_s", "from 0.01 to 60"),
    ('[wait]\nproc_sample_interval_s = 0.001\n', "wait.proc_sample_interval_s", "from 1 to 86400"),
    ('[leaks]\nwatch_interval_s = 0\n', "leaks.watch_interval_s", "from 1 to 86400"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\nleak = {interval_s = 1e-300}\n', "critical[0].leak.interval_s",
     "from 0.5 to 86400"),
    ('[actions]\nreclaim_interval_s = 0\n', "actions.reclaim_interval_s", "from 1 to 86400"),
    ('[thresholds]\nkill = {percent = 5, min_mib = 9223372036854775808}\n', "thresholds.kill.min_mib",
     "from 0 to 1048576"),
    ('[[critical]]\nname = "a"\nmatch = {user = "root"}\n', "critical[0].match", "user and uid only narrow"),
    ('[thresholds]\nreclaim = {percent = 0, min_mib = 0}\nterminate = {percent = 0, min_mib = 0}\n'
     'kill = {percent = 0, min_mib = 0}\n', "thresholds.kill", "never fires"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a", uid = -1}\n', "critical[0].match.uid", "from 0 to"),
    ('[actions]\ndrop_caches_level = 4\n', "actions.drop_caches_level", "one of 0, 1, 2, 3"),
    ('[victims]\nculprit_share = 1.5\n', "victims.culprit_share", "from 0 to 1"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\nleak = {on_leak = "reboot"}\n',
     "critical[0].leak.on_leak", 'one of "restart", "notify", "command"'),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\nleak = {on_leak = "restart"}\n',
     "critical[0].leak.on_leak", "needs leak.command"),
    ('[[low_priority]]\nname = "a"\nmatch = {comm = "a"}\noom_score_adj = -1001\n', "low_priority[0].oom_score_adj",
     "from -1000 to 1000"),
    ('[board]\nram_mib = 4\n', "board.ram_mib", ">= 16"),
    ('[board]\nname = "my board"\n', "board.name", "letters, digits"),
    ('[sysctl]\n"vm.overcommit_memory" = 3\n', 'sysctl."vm.overcommit_memory"', "one of 0, 1, 2"),
    ('[sysctl]\n"vm.swappiness" = 250\n', 'sysctl."vm.swappiness"', "from 0 to 200"),
])
def test_out_of_range_values(tmp_path, body, key, expected):
    e = error_of(write(tmp_path, "b.toml", body))
    assert e.key == key, str(e)
    assert expected in str(e), str(e)


def test_unknown_sysctl_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "b.toml", '[sysctl]\n"vm.overcomit_memory" = 2\n')
    e = error_of(path)
    assert str(e) == ("%s:2: sysctl.vm.overcomit_memory: unknown kernel memory setting; "
                      "did you mean 'vm.overcommit_memory'?" % path)


def test_bad_regex_is_refused_at_load_naming_the_key(tmp_path):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "a"\nmatch = {cmdline = "node-red(["}\n')
    e = error_of(path)
    assert e.key == "critical[0].match.cmdline" and e.line == 3
    assert "not a valid regular expression" in str(e)


def test_bad_board_regex(tmp_path):
    path = write(tmp_path, "b.toml", "[board]\n[[board.match]]\ndevice_tree_model = '*Pi'\n")
    e = error_of(path)
    assert e.key == "board.match[0].device_tree_model" and "regular expression" in str(e)


@pytest.mark.parametrize("body, key, expected", [
    ('[[critical]]\nmatch = {comm = "a"}\n', "critical[0].name", "missing: every [[critical]] needs a name"),
    ('[[critical]]\nname = "a"\n', "critical[0].match", "missing: how to recognise"),
    ('[[critical]]\nname = "a"\nmatch = {}\n', "critical[0].match", "expected at least one of"),
    ('[[critical]]\nname = "a"\nmatch = {exe = "sshd"}\n', "critical[0].match.exe", "absolute path"),
    ('[[critical]]\nname = "a"\nmatch = {cgroup = "system.slice"}\n', "critical[0].match.cgroup", "starting with /"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\n[[critical]]\nname = "a"\nmatch = {comm = "b"}\n',
     "critical[1].name", "duplicate"),
    ('[[critical]]\nname = "a"\nremove = true\nmatch = {comm = "a"}\n', "critical[0].match", "takes only its name"),
    ('[[low_priority]]\nname = "a"\nmatch = {comm = "a"}\nleak = {max_rss_mib = 5}\n', "low_priority[0].leak",
     "leak watching is for [[critical]]"),
    ('[thresholds]\nkill = {percent = 20}\n', "thresholds", "reclaim >= terminate >= kill"),
    ('[wait]\npsi_stall_us = 900000\n', "wait.psi_stall_us", "expected <= psi_window_us"),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a"}\n[[low_priority]]\nname = "a"\nmatch = {comm = "a"}\n',
     "low_priority", "both [[critical]] and [[low_priority]]"),
])
def test_structural_errors(tmp_path, body, key, expected):
    e = error_of(write(tmp_path, "b.toml", body))
    assert e.key == key, str(e)
    assert expected in str(e), str(e)


@pytest.mark.parametrize("body, line, column", [
    ('[board]\nname = "a"\n\n[thresholds\n', 4, 12),
    ('[[critical]]\nname = "a"\nmatch = {comm = "a",}\n', 3, 21),
    ('[wait]\nuse_psi = yes\n', 2, 11),
    ('[wait]\nuse_psi = true\nuse_psi = false\n', 3, 16),
])
def test_syntax_errors_keep_line_and_column(tmp_path, body, line, column):
    path = write(tmp_path, "b.toml", body)
    e = error_of(path)
    assert (e.line, e.column) == (line, column), str(e)
    assert str(e).startswith("%s:%d:%d: TOML syntax error: " % (path, line, column))
    assert "(at line" not in str(e)


def test_not_utf8(tmp_path):
    path = os.path.join(str(tmp_path), "b.toml")
    with open(path, "wb") as f:
        f.write(b'[board]\nname = "\xff"\n')
    os.chmod(path, 0o644)
    e = error_of(path)
    assert "not UTF-8" in str(e) and e.line == 2


def test_missing_config_file(tmp_path):
    e = error_of(os.path.join(str(tmp_path), "none.toml"))
    assert "cannot read" in str(e)


# ----------------------------------------------------------------------------- trust

@pytest.mark.parametrize("mode, who", [(0o666, "group and others"), (0o646, "others"), (0o664, "group")])
def test_group_or_world_writable_file_is_refused(tmp_path, mode, who):
    path = write(tmp_path, "b.toml", "[wait]\nuse_psi = true\n", mode=mode)
    e = error_of(path)
    assert "refused: writable by %s (mode %04o)" % (who, mode) in str(e)
    assert "run commands as root" in str(e) and "chmod go-w" in str(e)


def test_writable_included_file_is_refused(tmp_path):
    inc = write(tmp_path, "inc.toml", "[wait]\nuse_psi = true\n", mode=0o666)
    top = write(tmp_path, "top.toml", '[board]\ninclude = "inc.toml"\n')
    e = error_of(top)
    assert e.file == inc and "writable by group and others" in str(e)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_file_owned_by_another_user_is_refused(tmp_path):
    path = write(tmp_path, "b.toml", "[wait]\nuse_psi = true\n")
    os.chown(path, 4321, 4321)
    e = error_of(path)
    assert "refused: owned by uid 4321" in str(e) and "chown root" in str(e)
    # offline (image build trees belong to the build user), only the mode counts
    config, _, _ = load_file(path, {}, check_owner=False)
    assert config.board == "b"


def test_world_writable_directory_is_refused(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(str(d), 0o777)
    path = write(d, "b.toml", "[wait]\nuse_psi = true\n")
    e = error_of(path)
    assert "directory %s is writable by others" % d in str(e)


def test_sticky_world_writable_directory_is_accepted(tmp_path):
    d = tmp_path / "sticky"
    d.mkdir()
    os.chmod(str(d), 0o1777)
    path = write(d, "b.toml", "[wait]\nuse_psi = true\n")
    assert load(path).config.wait.use_psi


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


def test_error_is_a_value_error_with_parts(tmp_path):
    path = write(tmp_path, "b.toml", '[[critical]]\nname = "a"\nmatch = {comm = "a"}\noom_score_adj = 2000\n')
    e = error_of(path)
    assert isinstance(e, ValueError)
    assert (e.file, e.key, e.value, e.line) == (path, "critical[0].oom_score_adj", 2000, 4)
    assert e.expected == "expected an integer from -1000 to 1000"


def test_locate_handles_multiline_arrays_and_quoted_keys():
    text = textwrap.dedent('''
        [board]
        include = [
          "a",   # x = 1
          "b",
        ]
        [sysctl]
        "vm.swappiness" = 1
        [[critical]]
        name = "a"
        [[critical]]
        name = "b"
        [critical.match]
        comm = "b"
        ''').lstrip("\n")
    assert locate(text, ("board", "include")) == 2
    assert locate(text, ("sysctl", "vm.swappiness")) == 7
    assert locate(text, ("critical", 1, "name")) == 11
    assert locate(text, ("critical", 1, "match", "comm")) == 13
    assert locate(text, ("critical", 0, "oom_score_adj")) == 8


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_entries_name_a_comm_or_cmdline(name):
    """So that the adj keeper rejects an unrelated exec after reading comm (and cmdline)
    instead of the whole process: that is the cost of every exec on the board."""
    config = load_config(board=name, boards_dirs=[]).config
    for entry in config.critical + config.low_priority:
        assert entry.match.comm or entry.match.cmdline, entry.name


def test_every_table_of_config_is_a_section(tmp_path):
    """A table added to guardian/config.py is loadable without touching the loader."""
    import dataclasses

    from guardian.config import Config

    tables = [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default)
              and f.name != "board_info"]
    assert {"thresholds", "wait", "actions", "victims"} <= set(tables)
    for name in tables:
        path = write(tmp_path, name + ".toml", "[%s]\n" % name)
        assert getattr(load(path).config, name) == getattr(Config(), name)


def test_run_state_dir_overrides_the_board_and_survives_a_reload(tmp_path):
    from guardian import cli
    from guardian.commands import options
    board = tmp_path / "b.toml"
    board.write_text('[board]\nname = "b"\n[leaks]\nstate_dir = "/data/guardian"\n')
    args = cli.build_parser().parse_args(["run", "--config", str(board), "--state-dir", str(tmp_path / "lib")])
    config, _why, again = options.load_config_for(args)
    assert config.leaks.state_dir == str(tmp_path / "lib")
    assert again().leaks.state_dir == str(tmp_path / "lib")
    args.state_dir = None
    assert options.load_config_for(args)[0].leaks.state_dir == "/data/guardian"
