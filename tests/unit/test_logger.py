"""guardian.logger: the line format cli.py configured stdlib logging with, %-formatting only
when the level is on, tracebacks without the traceback module."""
import io
import os
import traceback

from guardian import logger
from guardian.logger import DEBUG, INFO, Logger, StderrHandler, format_exception


class Loud:
    def __init__(self):
        self.formatted = 0

    def __str__(self):
        self.formatted += 1
        return "loud"


def test_the_stderr_line_is_as_before():
    out = io.StringIO()
    log = Logger(INFO)
    log.addHandler(StderrHandler(stream=out))
    log.info("config: %s (%s)", "generic.toml", "why")
    log.warning("plain %d%%", 5)
    log.error("no args: %s stays")
    log.log(logger.WARNING, "%s", "via log")
    assert out.getvalue().splitlines() == [
        "guardian: INFO: config: generic.toml (why)", "guardian: WARNING: plain 5%",
        "guardian: ERROR: no args: %s stays", "guardian: WARNING: via log"]


def test_formatting_happens_only_when_the_level_is_on():
    out = io.StringIO()
    log = Logger(INFO)
    log.addHandler(StderrHandler(stream=out))
    loud = Loud()
    log.debug("%s", loud)
    assert loud.formatted == 0 and out.getvalue() == ""
    log.setLevel("debug")
    log.debug("%s", loud)
    assert loud.formatted == 1 and out.getvalue() == "guardian: DEBUG: loud\n"


def test_a_bad_format_spoils_the_line_not_the_caller():
    out = io.StringIO()
    log = Logger(DEBUG)
    log.addHandler(StderrHandler(stream=out))
    log.info("%d items", "many")
    assert "bad log arguments" in out.getvalue()


def test_exception_prints_the_frames_like_traceback():
    out = io.StringIO()
    log = Logger(INFO)
    log.addHandler(StderrHandler(stream=out))

    def inner():
        raise ValueError("deep")

    def outer():
        try:
            inner()
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc

    try:
        outer()
    except RuntimeError as exc:
        log.exception("tick failed: %s", exc)
        stdlib = traceback.format_exc()
        info = (type(exc), exc, exc.__traceback__)
    lines = out.getvalue().splitlines()
    assert lines[0] == "guardian: ERROR: tick failed: wrapped"
    # The same frames and exception lines, without the source lines
    def frames(text):
        return [line for line in text.splitlines() if not line.startswith("    ") and line.strip("^~ ")]

    assert frames(format_exception(info)) == frames(stdlib) and "The above exception" in stdlib
    assert frames("\n".join(lines[1:])) == frames(stdlib)


def test_configure_keeps_one_stderr_handler(monkeypatch):
    monkeypatch.setattr(logger.log, "handlers", [])
    monkeypatch.setattr(logger.log, "level", logger.WARNING)
    monkeypatch.setattr(logger, "_stderr_handler", None)
    logger.configure("info")
    logger.configure("debug")
    assert len(logger.log.handlers) == 1 and logger.log.level == DEBUG


def test_unconfigured_warnings_reach_stderr_bare(capsys, monkeypatch):
    monkeypatch.setattr(logger.log, "handlers", [])
    monkeypatch.setattr(logger.log, "level", logger.WARNING)
    logger.log.info("not shown")
    logger.log.warning("shown %d", 1)
    assert capsys.readouterr().err == "shown 1\n"


def _journal_env(f):
    st = os.fstat(f.fileno())
    return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}


def test_under_systemd_each_line_carries_its_priority_for_the_journal(tmp_path, monkeypatch):
    # stderr is the file JOURNAL_STREAM names, as systemd connects it: journald reads "<N>"
    # per line, so `journalctl -p warning` shows the decisions and a traceback stays an error.
    with open(tmp_path / "stream", "w+") as f:
        monkeypatch.setattr(os, "environ", dict(os.environ, **_journal_env(f)))
        log = Logger(DEBUG)
        log.addHandler(StderrHandler(stream=f))
        log.debug("d")
        log.info("i")
        log.warning("kill: hog[5]")
        try:
            raise ValueError("deep")
        except ValueError:
            log.exception("failed")
        f.seek(0)
        lines = f.read().splitlines()
    assert lines[:4] == ["<7>guardian: DEBUG: d", "<6>guardian: INFO: i", "<4>guardian: WARNING: kill: hog[5]",
                         "<3>guardian: ERROR: failed"]
    assert len(lines) > 4 and all(line.startswith("<3>") for line in lines[4:])


def test_a_stderr_that_is_not_the_journal_stream_keeps_plain_lines(tmp_path):
    with open(tmp_path / "journal", "w") as journal, open(tmp_path / "elsewhere", "w") as other:
        env = _journal_env(journal)
        assert logger.stderr_is_journal(journal, env)
        assert not logger.stderr_is_journal(other, env)  # redirected by the service: plain
        assert not logger.stderr_is_journal(journal, {})
        assert not logger.stderr_is_journal(journal, {"JOURNAL_STREAM": "garbage"})
        assert not logger.stderr_is_journal(io.StringIO(), env)  # no file descriptor


def test_levels_map_to_syslog_priorities():
    levels = (DEBUG, INFO, logger.WARNING, logger.ERROR, 50, 25)
    assert [logger.journal_priority(x) for x in levels] == [7, 6, 4, 3, 3, 6]
