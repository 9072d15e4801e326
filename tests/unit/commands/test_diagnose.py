"""`guardian diagnose`: the OOM reports of a saved log (a file or standard input) or of the
kernel log, as text or JSON, with this system's red flags."""
import io
import json
from types import SimpleNamespace

from guardian.commands.diagnose import cli_main
from tests.support import oom_samples as S
from tests.support.fakeproc import red_flag_system


def run(capsys, **kw):
    args = SimpleNamespace(**{"log": None, "json": False, "proc_root": "/nonexistent", "sys_root": "/nonexistent",
                              **kw})
    code = cli_main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_diagnose_a_saved_log_as_json(tmp_path, capsys):
    log = tmp_path / "dmesg.txt"
    log.write_text(S.HOST_SHORT + S.INTERLEAVED + S.FRAGMENTED)
    proc, sys_ = red_flag_system(str(tmp_path), thp="[always] madvise never")
    code, out, _ = run(capsys, log=str(log), json=True, proc_root=proc, sys_root=sys_)
    assert code == 0
    data = json.loads(out)
    assert [r["cause"] for r in data["reports"]] == ["host_memory", "parent_cgroup_limit", "cgroup_limit",
                                                      "fragmentation"]
    assert {f["flag"] for f in data["red_flags"]} == {"no_swap", "thp_always"}
    assert data["log"] == str(log)


def test_diagnose_text(tmp_path, capsys):
    log = tmp_path / "journal.txt"
    log.write_text(S.NUMA_CPUSET + S.ONLY_VICTIM)
    code, out, _ = run(capsys, log=str(log))
    assert code == 0
    assert "kernel OOM reports in %s: 3" % log in out
    assert "#1: the allowed NUMA node(s) short of memory" in out and "#2 at 9000.000 s after boot" in out
    assert "killed solver[7781]" in out and "(partial report: missing header" in out
    assert "red flags of this system: none" in out


def test_diagnose_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(S.CGROUP_OWN_LIMIT))
    code, out, _ = run(capsys, log="-", json=True)
    assert code == 0 and json.loads(out)["reports"][0]["cause"] == "cgroup_limit"


def test_diagnose_missing_log_file(tmp_path, capsys):
    code, out, err = run(capsys, log=str(tmp_path / "nope.txt"))
    assert code == 1 and "nope.txt" in err


def test_diagnose_without_a_readable_kernel_log(tmp_path, capsys):
    code, out, err = run(capsys, kmsg=str(tmp_path / "no-kmsg"))
    assert code == 1 and "--log FILE" in err and "no-kmsg" in out


def test_diagnose_reads_the_kernel_log_when_no_file_is_given(tmp_path, capsys, monkeypatch):
    from guardian.kernel.kmsg import KmsgReader
    records = [("4,%d,1000,-;%s\n" % (i, line)).encode() for i, line in enumerate(S.CGROUP_OWN_LIMIT.splitlines())]

    def fake_read(fd, size):
        if not records:
            raise BlockingIOError()
        return records.pop(0)

    monkeypatch.setattr(KmsgReader, "_read", staticmethod(fake_read))
    kmsg = tmp_path / "kmsg"
    kmsg.write_bytes(b"")
    code, out, _ = run(capsys, kmsg=str(kmsg), json=True)
    assert code == 0
    (report,) = json.loads(out)["reports"]
    assert report["cause"] == "cgroup_limit" and report["kernel_time_s"] == 0.001
