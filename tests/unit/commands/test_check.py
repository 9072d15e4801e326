"""`guardian check` against fake /proc and /sys trees, and offline against a fake rootfs."""
import errno
import io
import json
import os
import textwrap

import pytest

from guardian.commands import audit
from guardian.commands import check
from guardian.board.boards import shipped_boards
from tests.support import fakeproc


BOARD = """
[board]
name = "testboard"
ram_mib = 256

[wait]
psi_window_us = 2000000

[[critical]]
name = "connman"
match = {comm = "connmand"}
oom_score_adj = -900
leak = {on_leak = "restart", command = ["/etc/init.d/S45connman", "restart"]}

[[critical]]
name = "app"
match = {comm = "app"}
optional = true

[[low_priority]]
name = "webui"
match = {comm = "lighttpd"}
stop = ["/etc/init.d/S50lighttpd", "stop"]
oom_score_adj = 500

[sysctl]
"vm.min_free_kbytes" = 4096
"vm.overcommit_memory" = 0
"""


def write_config(tmp_path, text=BOARD, name="board.toml", mode=0o644):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    os.chmod(path, mode)
    return path


@pytest.fixture
def system(tmp_path, monkeypatch):
    """A healthy 256 MiB board: everything as the config wants it."""
    proc_root, sys_root = str(tmp_path / "proc"), str(tmp_path / "sys")
    fakeproc.meminfo(proc_root, total_mib=240, avail_mib=150)
    fakeproc.write(os.path.join(proc_root, "pressure", "memory"),
                   "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    for k, v in {"overcommit_memory": "0", "overcommit_ratio": "50", "panic_on_oom": "0", "min_free_kbytes": "4096",
                 "watermark_scale_factor": "10", "oom_kill_allocating_task": "0", "swappiness": "60"}.items():
        fakeproc.write(os.path.join(proc_root, "sys", "vm", k), v + "\n")
    fakeproc.write(os.path.join(proc_root, "swaps"), "Filename\tType\tSize\tUsed\tPriority\n")
    fakeproc.write(os.path.join(proc_root, "vmstat"), "nr_free_pages 1000\noom_kill 0\n")
    fakeproc.write(os.path.join(proc_root, "self", "status"), "Name:\tguardian\nCapEff:\t000001ffffffffff\n")
    fakeproc.process(proc_root, 1, "init", 1)
    fakeproc.process(proc_root, 300, "connmand", 3, adj=-900)
    fakeproc.process(proc_root, 320, "lighttpd", 3, adj=500)
    fakeproc.write(os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"),
                   "always [madvise] never\n")
    fakeproc.write(os.path.join(sys_root, "block", "zram0", "disksize"), "0\n")
    for script in ("S45connman", "S50lighttpd"):
        fakeproc.write(str(tmp_path / "fs" / "etc" / "init.d" / script), "#!/bin/sh\n")
    monkeypatch.setattr(audit, "_is_procfs", lambda path: True)
    monkeypatch.setattr(audit, "try_trigger", lambda path, text: None)
    return proc_root, sys_root


def run(config, proc_root, sys_root, board=None, root=None, as_json=False):
    out = io.StringIO()
    if proc_root is None:  # offline: no running system
        code = check.run(config, board, root, as_json, out=out, boards_dirs=[])
    else:
        fs_root = os.path.join(os.path.dirname(proc_root), "fs")
        code = check.run(config, board, root, as_json, proc_root=proc_root, sys_root=sys_root, out=out,
                         boards_dirs=[], fs_root=fs_root)
    return code, out.getvalue()


def lines(text, level=None, topic=None):
    out = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in audit.LEVELS and (level is None or parts[0] == level):
            if topic is None or parts[1].startswith(topic + ":"):
                out.append(line)
    return out


def test_all_well_is_exit_0(system, tmp_path):
    code, text = run(write_config(tmp_path), *system)
    assert code == 0, text
    assert lines(text, "warn") == []
    assert text.rstrip().endswith("findings: all well")
    assert any("config: config %s given by --config (board \"testboard\")" % (tmp_path / "board.toml") in line
               for line in lines(text, "ok"))
    assert "ok    psi: present and enabled (some avg10=0.00 avg60=0.00 avg300=0.00 total=0)" in text
    assert "ok    psi-trigger: privileged triggers allowed" in text
    assert "ok    critical: connman: pid 300, oom_score_adj -900, wanted -900" in text
    assert "info  critical: app: not running (optional)" in text
    assert "ok    low-priority: webui: pid 320, oom_score_adj 500, wanted 500" in text
    assert lines(text, "ok", "sysctl")[0].startswith("ok    sysctl: vm.min_free_kbytes = 4096 as wanted -- memory")
    assert "info  sysctl: vm.swappiness = 60 (the board leaves it)" in text
    assert "info  swap: no swap; zram devices zram0 exist but are not used as swap" in text
    assert "info  thp: transparent huge pages: madvise" in text
    assert "info  oom-kills: the kernel's OOM killer has fired 0 times since boot" in text
    assert "info  overcommit: overcommit_memory 0: Committed_AS 10 MiB of CommitLimit 977 MiB (1%)" in text


def test_warnings_are_exit_1(system, tmp_path, monkeypatch):
    proc_root, sys_root = system
    fakeproc.process(proc_root, 300, "connmand", 3, adj=0)
    fakeproc.write(os.path.join(proc_root, "sys", "vm", "min_free_kbytes"), "2048\n")
    fakeproc.write(os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"),
                   "[always] madvise never\n")
    fakeproc.write(os.path.join(proc_root, "vmstat"), "oom_kill 3\n")
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert code == 1
    warns = lines(text, "warn")
    assert "warn  critical: connman: pid 300, oom_score_adj 0, wanted -900 (guardian run sets it at start and on " \
           "every restart)" in warns
    assert any(w.startswith("warn  sysctl: vm.min_free_kbytes = 2048, wanted 4096 (guardian run sets it at start)")
               for w in warns)
    assert any(w.startswith("warn  thp: transparent huge pages: always") for w in warns)
    assert "warn  oom-kills: the kernel's OOM killer has fired 3 times since boot" in warns
    assert text.rstrip().endswith("findings: warnings")


def test_a_required_daemon_not_running_is_reported_as_a_warning(system, tmp_path):
    proc_root, sys_root = system
    import shutil

    shutil.rmtree(os.path.join(proc_root, "300"))
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert code == 1
    assert "warn  critical: connman: not running (reported, not an error: it is protected as soon as it starts)" in text


def test_lower_than_wanted_is_fine(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.process(proc_root, 300, "connmand", 3, adj=-1000)
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert code == 0
    assert "connman: pid 300, oom_score_adj -1000, wanted -900 (lower already" in text


def test_missing_capability_is_a_warning(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.write(os.path.join(proc_root, "self", "status"), "CapEff:\t000001fffeffffff\n")  # no CAP_SYS_RESOURCE
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert code == 1
    assert lines(text, "warn", "capabilities")[0].endswith("no critical daemon's oom_score_adj can be lowered below 0")


@pytest.mark.parametrize("first, second, level, expected", [
    (errno.EINVAL, None, "info", "unprivileged triggers only: windows must be multiples of 2 s"),
    (errno.EINVAL, errno.EPERM, "warn", "triggers refused (Operation not permitted)"),
    (errno.EPERM, errno.EPERM, "warn", "triggers refused (Operation not permitted): Linux 5.2-6.4"),
])
def test_psi_trigger_forms(system, tmp_path, monkeypatch, first, second, level, expected):
    answers = {b"some 150000 1000000\0": first, b"some 500000 2000000\0": second}
    monkeypatch.setattr(audit, "try_trigger", lambda path, text: answers[text])
    code, text = run(write_config(tmp_path), *system)
    found = lines(text, None, "psi-trigger")
    assert len(found) == 1 and found[0].startswith("%-5s psi-trigger: %s" % (level, expected)), found


def test_sub_second_window_that_will_be_widened_is_a_warning(system, tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "try_trigger", lambda path, text: errno.EINVAL if b"150000" in text else None)
    config = write_config(tmp_path, BOARD.replace("psi_window_us = 2000000", "psi_window_us = 500000"))
    code, text = run(config, *system)
    assert code == 1
    assert "so the configured 500 ms window is widened to 2000 ms" in lines(text, "warn", "psi-trigger")[0]


def test_psi_absent_and_disabled(system, tmp_path, monkeypatch):
    proc_root, sys_root = system
    def disabled(path):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(audit, "_read_psi_text", disabled)
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert "warn  psi: present but disabled (the kernel is built with CONFIG_PSI_DEFAULT_DISABLED): add psi=1" in text
    fakeproc.write(os.path.join(proc_root, "cmdline"), "console=ttyS0 psi=0\n")
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert "(psi=0 is on the kernel command line)" in text
    os.remove(os.path.join(proc_root, "pressure", "memory"))
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert lines(text, "warn", "psi")[0].endswith("polls memory instead of being woken by the kernel")


def test_swap_and_panic_findings(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.write(os.path.join(proc_root, "swaps"), "Filename\tType\tSize\tUsed\tPriority\n"
                   "/dev/zram0  partition\t131068\t1024\t100\n")
    fakeproc.write(os.path.join(proc_root, "sys", "vm", "panic_on_oom"), "1\n")
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert "info  swap: swap on /dev/zram0 (zram, 128 MiB, 1 MiB used); the guardian's swap lines are active" in text
    assert "warn  panic: vm.panic_on_oom = 1 with kernel.panic = None: an OOM hangs the board" in text


def test_the_red_flags_of_diagnose_are_check_findings_too(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.write(os.path.join(proc_root, "sys", "vm", "oom_kill_allocating_task"), "1\n")
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert code == 1
    assert lines(text, "warn", "oom-killer")[0].startswith(
        "warn  oom-killer: vm.oom_kill_allocating_task is set: the kernel kills whoever asked last -- ")


def test_thp_always_is_only_a_warning_under_2_gib(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.meminfo(proc_root, total_mib=4096, avail_mib=3000)
    fakeproc.write(os.path.join(sys_root, "kernel", "mm", "transparent_hugepage", "enabled"),
                   "[always] madvise never\n")
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert "info  thp: transparent huge pages: always" in text


def test_wrong_board_for_this_much_ram(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.meminfo(proc_root, total_mib=1000, avail_mib=900)
    code, text = run(write_config(tmp_path), proc_root, sys_root)
    assert "warn  memory: MemTotal 1000 MiB is more than board 'testboard''s 256 MiB" in text


def test_invalid_config_is_exit_2_with_file_line_and_key(system, tmp_path):
    path = write_config(tmp_path, BOARD.replace("oom_score_adj = -900", "oom_score_adj = -9000"))
    code, text = run(path, *system)
    assert code == 2
    assert text.splitlines()[0] == ("error config: %s:11: critical[0].oom_score_adj = -9000: expected an integer "
                                    "from -1000 to 1000" % path)
    assert text.rstrip().endswith("1 findings: invalid config")


def test_writable_config_is_exit_2(system, tmp_path):
    code, text = run(write_config(tmp_path, mode=0o666), *system)
    assert code == 2 and "refused: writable by group and others" in text


def test_json(system, tmp_path):
    code, text = run(write_config(tmp_path), *system, as_json=True)
    doc = json.loads(text)
    assert doc["exit"] == code == 0
    assert doc["board"] == "testboard" and doc["files"] == [str(tmp_path / "board.toml")]
    connman = [f for f in doc["findings"] if f["topic"] == "critical" and f.get("name") == "connman"][0]
    assert connman["pids"] == [300] and connman["oom_score_adj"] == [-900] and connman["wanted"] == -900
    code, text = run(write_config(tmp_path, "[bord]\n", name="bad.toml"), *system, as_json=True)
    doc = json.loads(text)
    assert doc["exit"] == 2 and doc["findings"][0]["level"] == "error" and doc["findings"][0]["line"] == 1


def test_shipped_board_by_name(system):
    code, text = run(None, *system, board="colibri-imx6ull")
    assert code in (0, 1)
    assert 'board "colibri-imx6ull" given by --board' in text


# ------------------------------------------------------------------------------ offline

@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "target"
    for d in ("etc/init.d", "etc/guardian/boards", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "etc/init.d/S45connman").write_text("#!/bin/sh\n")
    return root


def test_offline_checks_the_config_and_its_commands_in_the_root(rootfs, tmp_path):
    config = write_config(rootfs / "etc" / "guardian", name="guardian.toml")
    code, text = run("/etc/guardian/guardian.toml", None, None, root=str(rootfs))
    assert code == 1, text
    assert lines(text, "ok", "config")[0].startswith("ok    config: %s (given by --config): board 'testboard'" % config)
    assert lines(text, "warn") == ["warn  low-priority: webui stop: /etc/init.d/S50lighttpd not found in %s" % rootfs]
    (rootfs / "etc/init.d/S50lighttpd").write_text("#!/bin/sh\n")
    code, text = run("/etc/guardian/guardian.toml", None, None, root=str(rootfs))
    assert code == 0, text
    topics = {line.split()[1] for line in lines(text)}
    assert topics == {"config:", "offline:"}  # nothing about the build machine


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_offline_ignores_the_build_users_ownership_but_not_the_mode(rootfs):
    path = write_config(rootfs / "etc" / "guardian", name="guardian.toml")
    os.chown(path, 1234, 1234)
    code, text = run(path, None, None, root=str(rootfs))
    assert code in (0, 1), text
    os.chmod(path, 0o664)
    code, text = run(path, None, None, root=str(rootfs))
    assert code == 2 and "writable by group" in text


def test_offline_without_a_config_checks_every_board_file(rootfs):
    (rootfs / "etc/guardian/boards/mybox.toml").write_text('[board]\ninclude = "colibri-imx6ull"\n')
    os.chmod(str(rootfs / "etc/guardian/boards/mybox.toml"), 0o644)
    code, text = run(None, None, None, root=str(rootfs))
    oks = lines(text, "ok", "config")
    assert len(oks) == len(shipped_boards()) + 1
    assert any("mybox.toml (board file): board 'mybox'" in line for line in oks)
    (rootfs / "etc/guardian/boards/broken.toml").write_text('[[critical]]\nname = "x"\n')
    os.chmod(str(rootfs / "etc/guardian/boards/broken.toml"), 0o644)
    code, text = run(None, None, None, root=str(rootfs))
    assert code == 2
    assert lines(text, "error")[0].startswith("error config: %s:1: critical[0].match: missing" %
                                              (rootfs / "etc/guardian/boards/broken.toml"))


def test_offline_unknown_board(rootfs):
    code, text = run(None, None, None, board="beaglebone", root=str(rootfs))
    assert code == 2 and "did you mean 'beaglebone-black'?" in text


def test_strict_overcommit_is_explained_with_the_commit_lines(system, tmp_path):
    proc_root, sys_root = system
    fakeproc.write(os.path.join(proc_root, "sys", "vm", "overcommit_memory"), "2\n")
    code, text = run(write_config(tmp_path, BOARD.replace('"vm.overcommit_memory" = 0', '"vm.overcommit_memory" = 2')),
                     proc_root, sys_root)
    assert ("info  overcommit: overcommit_memory 2: Committed_AS 10 MiB of CommitLimit 977 MiB (1%): allocations fail "
            "once it reaches 100%; the guardian's commit lines act at 95% and 98%") in text
