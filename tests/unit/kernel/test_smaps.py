"""/proc/PID/smaps_rollup and smaps parsed, and what grew between two smaps reads."""
from guardian.kernel.smaps import Rollup, parse_rollup, parse_smaps, smaps_growth

KIB = 1024


def test_rollup_and_smaps_parsing():
    roll = parse_rollup(b"55d-7ff ---p 00000000 00:00 0 [rollup]\nRss:   1756 kB\nPss:  264 kB\n"
                        b"Pss_Anon: 112 kB\nAnonymous:  112 kB\nSwap:  8 kB\n")
    assert roll == Rollup(1756 * KIB, 264 * KIB, 112 * KIB, 8 * KIB)
    assert parse_rollup(b"") is None
    smaps = (b"00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/svc\nRss: 100 kB\nSwap: 0 kB\n"
             b"7f00-7f10 rw-p 00001000 08:02 999 /usr/lib/libleak.so.1\nRss: 8 kB\nSwap: 4 kB\n"
             b"7f10-7f20 rw-p 00000000 00:00 0 \nRss: 16 kB\n"
             b"01000000-02000000 rw-p 00000000 00:00 0                          [heap]\nRss: 4096 kB\n"
             b"VmFlags: rd wr mr mw me ac\n"
             b"7e000000-7e100000 rw-p 00000000 00:00 0\nRss: 512 kB\nAnonymous: 512 kB\n"
             b"7ffd0000-7ffd2000 rw-p 00000000 00:00 0 [stack]\nRss: 12 kB\n"
             b"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\nRss: 0 kB\n")
    maps = parse_smaps(smaps)
    assert maps == {"/usr/lib/libleak.so.1 (rw)": 12 * KIB, "anon@7f10": 16 * KIB,
                    "[heap]": 4096 * KIB, "anon@7e000000": 512 * KIB, "[stack]": 12 * KIB}
    after = dict(maps, **{"[heap]": 9000 * KIB, "anon@7e200000": 1024 * KIB, "/usr/lib/libleak.so.1 (rw)": 20 * KIB})
    grew = smaps_growth(maps, after)
    assert grew[0] == ("[heap]", (9000 - 4096) * KIB, 9000 * KIB)
    assert grew[1] == ("all anonymous regions (3, were 2)", 1024 * KIB, 1552 * KIB)
    assert ("anon@7e200000", 1024 * KIB, 1024 * KIB) in grew
    assert ("/usr/lib/libleak.so.1 (rw)", 8 * KIB, 20 * KIB) in grew
    assert parse_smaps(b"garbage\n\nRss: 5 kB\n") == {}
