"""The capability lines `guardian run` logs at start (guardian.commands.cli._warn_capabilities)."""
import io

from guardian import logger
from guardian.commands import cli
from guardian.core import capabilities as caps_mod


def _start_lines(monkeypatch, tmp_path, writable):
    knob = tmp_path / "drop_caches"  # root may write any file: "read-only" is one that cannot be opened
    knob.write_text("")
    # All but CAP_SYS_ADMIN and CAP_SYSLOG, as under init/guardian.service without CAP_SYSLOG.
    have = {n: n not in ("CAP_SYS_ADMIN", "CAP_SYSLOG") for n in caps_mod.CAPABILITIES}
    monkeypatch.setattr(caps_mod, "capabilities", lambda proc_root="/proc": have)
    out = io.StringIO()
    handler = logger.StderrHandler(stream=out, journal=False)
    logger.log.addHandler(handler)
    try:
        cli._warn_capabilities(str(knob) if writable else str(tmp_path / "absent"))
    finally:
        logger.log.removeHandler(handler)
    return out.getvalue()


def test_a_writable_proc_sys_vm_means_cap_sys_admin_is_not_missed(monkeypatch, tmp_path):
    # systemd's unit leaves CAP_SYS_ADMIN out on purpose: no warning about it on every start
    text = _start_lines(monkeypatch, tmp_path, writable=True)
    assert "CAP_SYS_ADMIN" not in text
    assert "CAP_SYSLOG missing: /dev/kmsg unreadable" in text


def test_a_read_only_proc_sys_vm_keeps_the_cap_sys_admin_hint(monkeypatch, tmp_path):
    text = _start_lines(monkeypatch, tmp_path, writable=False)
    assert "CAP_SYS_ADMIN missing" in text
