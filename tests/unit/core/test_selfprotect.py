"""selfprotect without touching a process: mlockall's failures described, capabilities
parsed from a fake status file, the report of missing ones. Locking memory and setting
oom_score_adj for real: tests/integration/core/test_selfprotect.py."""
import os

from guardian.core.capabilities import CAPABILITIES, capabilities, missing_capability_report
from guardian.core.selfprotect import lock_memory


def test_lock_memory_never_raises_and_describes(monkeypatch):
    from guardian.core import selfprotect

    onfault = selfprotect._mcl_flags()[2]
    calls = []

    class FakeLibc:
        def mlockall(self, flags):
            calls.append(flags)
            err = 22 if flags & onfault else 1  # EINVAL for ONFAULT, then EPERM
            raise OSError(err, os.strerror(err))

    monkeypatch.setattr(selfprotect, "libc", lambda: FakeLibc())  # not the shared handle: others use it
    assert lock_memory() == "mlockall refused: %s" % os.strerror(1)
    assert len(calls) == 2 and calls[0] & onfault and not calls[1] & onfault


def fake_status(tmp_path, capeff):
    (tmp_path / "self").mkdir(exist_ok=True)
    (tmp_path / "self" / "status").write_text(
        "Name:\tguardian\nCapInh:\t0000000000000000\nCapPrm:\t%s\nCapEff:\t%s\nCapBnd:\t000001ffffffffff\n"
        % (capeff, capeff))
    return str(tmp_path)


def test_capabilities_parse_capeff(tmp_path):
    assert all(capabilities(fake_status(tmp_path, "000001ffffffffff")).values())
    assert not any(capabilities(fake_status(tmp_path, "0000000000000000")).values())
    only_kill = capabilities(fake_status(tmp_path, "%016x" % (1 << 5)))
    assert only_kill == {name: name == "CAP_KILL" for name in CAPABILITIES}
    no_resource = capabilities(fake_status(tmp_path, "000001fffeffffff"))  # bit 24 cleared
    assert [n for n, has in no_resource.items() if not has] == ["CAP_SYS_RESOURCE"]


def test_capabilities_unreadable_means_none(tmp_path):
    assert not any(capabilities(str(tmp_path / "nowhere")).values())
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("CapEff:\tzzzz\n")
    assert not any(capabilities(str(tmp_path)).values())


def test_missing_capability_report():
    lines = missing_capability_report({})
    assert [line.split()[0] for line in lines] == list(CAPABILITIES)
    text = "\n".join(lines)
    for needle in ("other users' processes", "paged out", "2 s", "oom_score_adj", "drop_caches", "smaps_rollup"):
        assert needle in text
    assert missing_capability_report({name: True for name in CAPABILITIES}) == []
    assert missing_capability_report({name: name != "CAP_KILL" for name in CAPABILITIES}) == [lines[1]]
