"""A board file's contents checked against the config dataclasses (schema.py), through
loading: unknown keys with the nearest valid one, wrong types, values out of range, structural
mistakes, regexes that do not compile or could backtrack catastrophically; each message names
the file, the line, the key and what was expected."""
import pytest

from guardian.board.errors import ConfigError
from guardian.board.load import load_file
from tests.support.boardfiles import LOW_PRIORITY_BOARD, error_of, load, write


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


@pytest.mark.parametrize("pattern", [r"^(\w+\s?)+$", r"(a+)+b", r"(x|xy)*z", r"((ab)*c)+", r".*a.*b.*c"])
def test_a_regex_that_can_backtrack_catastrophically_is_refused(confdir, pattern):
    text = LOW_PRIORITY_BOARD.replace('match = { comm = "web" }', "match = { cmdline = '%s' }" % pattern)
    path = write(confdir, "board.toml", text)
    with pytest.raises(ConfigError) as err:
        load_file(path, boards={})
    assert "backtrack catastrophically" in str(err.value) and "cmdline" in str(err.value)


@pytest.mark.parametrize("pattern", [r"^/usr/sbin/dropbear( |$)", r"python3? .*webui\.py", r"^(foo|bar) --x",
                                     r"(ab){2}"])
def test_ordinary_patterns_are_accepted(confdir, pattern):
    text = LOW_PRIORITY_BOARD.replace('match = { comm = "web" }', "match = { cmdline = '%s' }" % pattern)
    load_file(write(confdir, "board.toml", text), boards={})
