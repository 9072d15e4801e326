"""Memory cgroup readers against fake v1 and v2 directories built in tmp_path."""
import errno
import os

import pytest

from guardian.kernel import ParseError, cgroup, psi


MiB = 1024 * 1024

V2_STAT = """\
anon 104857600
file 52428800
kernel 3145728
kernel_stack 327680
pagetables 1048576
sock 0
shmem 4096
file_mapped 8388608
file_dirty 12288
file_writeback 0
anon_thp 0
inactive_anon 94371840
active_anon 10485760
inactive_file 31457280
active_file 20971520
unevictable 0
slab_reclaimable 1048576
slab_unreclaimable 786432
pgfault 123456
pgmajfault 12
workingset_refault_file 345
"""

V2_EVENTS = "low 0\nhigh 12\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n"

V2_PRESSURE = ("some avg10=4.20 avg60=1.10 avg300=0.30 total=9876543\n"
               "full avg10=2.00 avg60=0.50 avg300=0.10 total=1234567\n")

V1_STAT = """\
cache 41943040
rss 62914560
rss_huge 0
shmem 0
mapped_file 4194304
dirty 0
writeback 0
swap 0
pgpgin 100000
pgpgout 90000
pgfault 200000
pgmajfault 30
inactive_anon 0
active_anon 62914560
inactive_file 20971520
active_file 20971520
unevictable 0
hierarchical_memory_limit 268435456
hierarchical_memsw_limit 9223372036854771712
total_cache 83886080
total_rss 125829120
total_rss_huge 0
total_shmem 0
total_mapped_file 8388608
total_inactive_anon 0
total_active_anon 125829120
total_inactive_file 41943040
total_active_file 41943040
total_unevictable 0
"""

V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"


def put(d, files):
    os.makedirs(str(d), exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(str(d), name), "w") as f:
            f.write(text)
    return str(d)


def v2_files(**over):
    files = {
        "cgroup.procs": "", "memory.current": "163577856\n", "memory.max": "268435456\n",
        "memory.stat": V2_STAT, "memory.events": V2_EVENTS, "memory.pressure": V2_PRESSURE,
    }
    files.update(over)
    return {k: v for k, v in files.items() if v is not None}


def v1_files(**over):
    files = {
        "cgroup.procs": "", "memory.usage_in_bytes": "209715200\n", "memory.limit_in_bytes": "268435456\n",
        "memory.stat": V1_STAT, "memory.oom_control": V1_OOM_CONTROL,
    }
    files.update(over)
    return {k: v for k, v in files.items() if v is not None}


# ---------------------------------------------------------------- v2


def test_v2_cgroup(tmp_path):
    d = put(tmp_path / "app", v2_files())
    m = cgroup.read_cgroup_memory(d)
    assert m == cgroup.CgroupMemory(
        version=2, path=d, usage=163577856, limit=256 * MiB, reclaimable=31457280 + 20971520,
        anon=104857600, oom_kill=1,
        psi=psi.Psi(psi.PsiLine(4.2, 1.1, 0.3, 9876543), psi.PsiLine(2.0, 0.5, 0.1, 1234567)))


def test_v2_unlimited(tmp_path):
    d = put(tmp_path / "app", v2_files(**{"memory.max": "max\n"}))
    assert cgroup.read_cgroup_memory(d).limit is None


def test_v2_old_kernel_without_oom_kill_and_psi(tmp_path):
    # 4.5..4.12: memory.events without oom_kill; before 4.20: no memory.pressure
    d = put(tmp_path / "app", v2_files(**{"memory.events": "low 0\nhigh 0\nmax 0\noom 0\n", "memory.pressure": None}))
    m = cgroup.read_cgroup_memory(d)
    assert m.oom_kill == 0 and m.psi is None and m.version == 2
    d = put(tmp_path / "app2", v2_files(**{"memory.events": None}))
    assert cgroup.read_cgroup_memory(d).oom_kill == 0


def test_v2_psi_disabled(tmp_path, monkeypatch):
    d = put(tmp_path / "app", v2_files())
    real = psi.read_text

    def refuse(path, bufsize=8192):
        if path.endswith("pressure"):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported", path)
        return real(path, bufsize)

    monkeypatch.setattr(psi, "read_text", refuse)
    m = cgroup.read_cgroup_memory(d)
    assert m.psi is None and m.usage == 163577856


@pytest.mark.parametrize("name,text,field", [
    ("memory.current", "", "memory.current"),
    ("memory.current", "12ab\n", "memory.current"),
    ("memory.max", "unlimited\n", "memory.max"),
    ("memory.stat", V2_STAT.replace("anon 104857600\n", ""), "anon"),
    ("memory.stat", V2_STAT[:V2_STAT.index("inactive_file")], "inactive_file"),
    ("memory.stat", V2_STAT.replace("active_file 20971520", "active_file"), "active_file"),
    ("memory.events", "oom_kill one\n", "oom_kill"),
    ("memory.pressure", "some avg10=\n", "some"),
])
def test_v2_garbled(tmp_path, name, text, field):
    d = put(tmp_path / "app", v2_files(**{name: text}))
    with pytest.raises(ParseError) as e:
        cgroup.read_cgroup_memory(d)
    assert e.value.path == os.path.join(d, name)
    assert field in str(e.value)


# ---------------------------------------------------------------- v1


def test_v1_cgroup_prefers_hierarchical_totals(tmp_path):
    d = put(tmp_path / "app", v1_files())
    m = cgroup.read_cgroup_memory(d)
    assert m == cgroup.CgroupMemory(
        version=1, path=d, usage=200 * MiB, limit=256 * MiB, reclaimable=41943040 * 2, anon=125829120,
        oom_kill=3, psi=None)


def test_v1_without_totals_uses_local_counters(tmp_path):
    local = "".join(line + "\n" for line in V1_STAT.splitlines() if not line.startswith("total_"))
    d = put(tmp_path / "app", v1_files(**{"memory.stat": local}))
    m = cgroup.read_cgroup_memory(d)
    assert m.reclaimable == 20971520 * 2 and m.anon == 62914560


@pytest.mark.parametrize("value", [
    9223372036854771712,  # LONG_MAX rounded down to 4 KiB pages (64-bit, >= 3.19)
    9223372036854710272,  # ... to 64 KiB pages
    9223372036854775807,  # LLONG_MAX (res_counter, old kernels)
    18446744073709551615,  # ULLONG_MAX (res_counter, 3.x)
    0x7FFFFFFF * 4096,  # 32-bit kernel: LONG_MAX pages of 4 KiB
])
def test_v1_unlimited_spellings(tmp_path, value):
    d = put(tmp_path / "app", v1_files(**{"memory.limit_in_bytes": "%d\n" % value}))
    assert cgroup.read_cgroup_memory(d).limit is None


def test_v1_real_limits_are_kept():
    assert cgroup.v1_limit(268435456) == 268435456
    assert cgroup.v1_limit(0x7FFFFFFF * 4096 - 4096) == 0x7FFFFFFF * 4096 - 4096
    assert cgroup.v1_limit(2 ** 62 - 4096) == 2 ** 62 - 4096


def test_v1_oom_control_without_oom_kill(tmp_path):
    # before 4.13 memory.oom_control has no oom_kill line
    d = put(tmp_path / "app", v1_files(**{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"}))
    assert cgroup.read_cgroup_memory(d).oom_kill == 0
    d = put(tmp_path / "app2", v1_files(**{"memory.oom_control": None}))
    assert cgroup.read_cgroup_memory(d).oom_kill == 0


@pytest.mark.parametrize("name,text,field", [
    ("memory.usage_in_bytes", "\n", "memory.usage_in_bytes"),
    ("memory.limit_in_bytes", "-1\n" + "x", "memory.limit_in_bytes"),
    ("memory.stat", "cache 1\nrss\n", "rss"),
    ("memory.stat", "cache 1\n", "total_inactive_file"),
    ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill -\n", "oom_kill"),
])
def test_v1_garbled(tmp_path, name, text, field):
    d = put(tmp_path / "app", v1_files(**{name: text}))
    with pytest.raises(ParseError) as e:
        cgroup.read_cgroup_memory(d)
    assert e.value.path == os.path.join(d, name)
    assert field in str(e.value)


# ---------------------------------------------------------------- gone / not a memory cgroup


def test_gone_cgroup(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone"):
        cgroup.read_cgroup_memory(str(tmp_path / "nope"))


def test_directory_without_memory_controller(tmp_path):
    d = put(tmp_path / "cpuonly", {"cgroup.procs": "", "cpu.stat": "usage_usec 1\n"})
    with pytest.raises(FileNotFoundError, match="not a memory cgroup"):
        cgroup.read_cgroup_memory(d)


def test_file_vanishing_mid_read_is_gone(tmp_path):
    d = put(tmp_path / "app", v2_files(**{"memory.stat": None}))
    with pytest.raises(FileNotFoundError):
        cgroup.read_cgroup_memory(d)


def test_enodev_reads_as_gone(tmp_path, monkeypatch):
    d = put(tmp_path / "app", v2_files())

    def removed(path, bufsize=8192):
        raise OSError(errno.ENODEV, "No such device", path)

    monkeypatch.setattr(cgroup, "read_text", removed)
    with pytest.raises(FileNotFoundError):
        cgroup.read_cgroup_memory(d)


# ---------------------------------------------------------------- resolve_cgroup


def fake_sys(tmp_path, layout):
    """layout: 'v2' (unified at /sys/fs/cgroup) or 'hybrid' (v1 memory + unified)."""
    sys_root = tmp_path / "sys"
    base = sys_root / "fs" / "cgroup"
    if layout == "v2":
        put(base, v2_files(**{"memory.current": None, "memory.max": None}))  # the root has neither
        put(base / "system.slice" / "app.service", v2_files())
    else:
        put(base / "memory", v1_files())
        put(base / "memory" / "box", v1_files())
        put(base / "unified" / "box", {"cgroup.procs": ""})  # same name, no memory controller
        put(base / "unified" / "only2", v2_files())
    return str(sys_root)


def test_resolve_absolute_directory_as_is(tmp_path):
    d = put(tmp_path / "anywhere", v2_files())
    assert cgroup.resolve_cgroup(d, sys_root=str(tmp_path / "nosys")) == d


def test_resolve_v2_relative_and_slash_prefixed(tmp_path):
    sys_root = fake_sys(tmp_path, "v2")
    want = os.path.join(sys_root, "fs", "cgroup", "system.slice", "app.service")
    assert cgroup.resolve_cgroup("system.slice/app.service", sys_root) == want
    assert cgroup.resolve_cgroup("/system.slice/app.service", sys_root) == want  # as /proc/PID/cgroup shows it
    assert cgroup.read_cgroup_memory(want).version == 2


def test_resolve_hybrid_prefers_the_directory_with_memory_files(tmp_path):
    sys_root = fake_sys(tmp_path, "hybrid")
    base = os.path.join(sys_root, "fs", "cgroup")
    assert cgroup.resolve_cgroup("box", sys_root) == os.path.join(base, "memory", "box")
    assert cgroup.resolve_cgroup("only2", sys_root) == os.path.join(base, "unified", "only2")
    assert cgroup.resolve_cgroup("", sys_root) == os.path.join(base, "memory")


def test_resolve_missing_names_every_place_tried(tmp_path):
    sys_root = fake_sys(tmp_path, "hybrid")
    base = os.path.join(sys_root, "fs", "cgroup")
    with pytest.raises(FileNotFoundError) as e:
        cgroup.resolve_cgroup("/ghost/svc", sys_root)
    msg = str(e.value)
    for place in ("/ghost/svc", os.path.join(base, "ghost/svc"), os.path.join(base, "unified", "ghost/svc"),
                  os.path.join(base, "memory", "ghost/svc")):
        assert place in msg


# ---------------------------------------------------------------- cgroup_pids


def test_cgroup_pids_walks_descendants(tmp_path):
    top = put(tmp_path / "top", {"cgroup.procs": "10\n11\n"})
    put(tmp_path / "top" / "a", {"cgroup.procs": "20\n10\n"})  # v1 may repeat pids
    put(tmp_path / "top" / "a" / "deep", {"cgroup.procs": "30\n"})
    put(tmp_path / "top" / "b", {"cgroup.procs": ""})
    os.makedirs(str(tmp_path / "top" / "vanished"))  # removed between listing and reading
    assert cgroup.cgroup_pids(top) == (10, 11, 20, 30)


def test_cgroup_pids_gone_and_garbled(tmp_path):
    with pytest.raises(FileNotFoundError):
        cgroup.cgroup_pids(str(tmp_path / "nope"))
    d = put(tmp_path / "bad", {"cgroup.procs": "10\neleven\n"})
    with pytest.raises(ParseError, match="cgroup.procs"):
        cgroup.cgroup_pids(d)
