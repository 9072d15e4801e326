"""The guardian's log lines: one logger, levels debug/info/warning/error, handlers.

Not the standard library's logging, which costs the resident daemon about 2 MiB with what it
imports (threading, traceback, string, re, weakref). The same calls (`log.info(fmt, *args)`,
`log.log(level, ...)`, `log.exception`), %-formatting only when the level is enabled, the
same line on stderr ("guardian: LEVEL: message", as cli.py configured logging before).
Here, not in guardian.core, as guardian.kernel logs too.
"""
import os
import sys

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}

__all__ = ["log", "Logger", "Record", "StderrHandler", "configure", "level_of", "format_exception",
           "journal_priority", "stderr_is_journal",
           "DEBUG", "INFO", "WARNING", "ERROR"]


def level_of(level):
    """A level from its number or its name ("info", "INFO")."""
    if isinstance(level, str):
        return LEVELS[level.lower()]
    return int(level)


class Record:
    """One log call, formatted only when a handler asks (getMessage)."""

    __slots__ = ("levelno", "msg", "args", "exc_info", "syslog_sent")

    def __init__(self, levelno, msg, args, exc_info=None, syslog_sent=False):
        self.levelno = levelno
        self.msg = msg
        self.args = args
        self.exc_info = exc_info
        self.syslog_sent = syslog_sent  # an event, already sent to syslog with its own severity

    @property
    def levelname(self):
        return _NAMES.get(self.levelno, "Level %d" % self.levelno)

    def getMessage(self):
        msg = str(self.msg)
        if self.args:
            msg = msg % self.args
        return msg

    def text(self):
        """The message, never raising: a bad format string spoils its line, not the caller."""
        try:
            return self.getMessage()
        except Exception:
            return "%s %% %r (bad log arguments)" % (self.msg, self.args)


def format_exception(exc_info):
    """What traceback.format_exception says, without the traceback module (and its
    linecache, tokenize, re): the chain, each frame's file, line and function, no source."""
    lines = []
    _format_chain(exc_info[1], lines, set())
    return "".join(lines).rstrip("\n")


def _format_chain(exc, lines, seen):
    seen.add(id(exc))
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        _format_chain(cause, lines, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        _format_chain(context, lines, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    tb = exc.__traceback__
    if tb is not None:
        lines.append("Traceback (most recent call last):\n")
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    if any(line is None for _code, _lasti, line in frames):
        try:  # the frozen build keeps its line tables in a file (guardian.lines)
            from guardian.lines import lines_of
            frames = lines_of(frames)
        except Exception:  # a traceback is printed all the same
            pass
    for code, _lasti, line in frames:
        lines.append('  File "%s", line %s, in %s\n' % (code.co_filename, "?" if line is None else line,
                                                           code.co_name))
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = "%s.%s" % (kind.__module__, name)
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    lines.append("%s: %s\n" % (name, text) if text else "%s\n" % name)


# syslog priorities (sd-daemon(3)'s "<N>" prefixes): what journald files a line under.
_PRIORITIES = {DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3}


def journal_priority(levelno):
    """The syslog priority of a level: a level between two takes the lower one's."""
    for level in (ERROR, WARNING, INFO):
        if levelno >= level:
            return _PRIORITIES[level]
    return _PRIORITIES[DEBUG]


def stderr_is_journal(stream=None, environ=None):
    """True when `stream` (stderr) is the journal's stream systemd connected: JOURNAL_STREAM
    ("DEVICE:INODE", systemd.exec(5)) names its file. A stderr redirected elsewhere by the
    service (or a child that inherited the variable) does not match, and keeps plain lines."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat((stream if stream is not None else sys.stderr).fileno())
        return bool(ino) and st.st_dev == int(dev) and st.st_ino == int(ino)
    except (AttributeError, OSError, ValueError):
        return False


class StderrHandler:
    """"guardian: LEVEL: message" lines (and a traceback after log.exception) on stderr, or
    on `stream`. `journal`: each line starts with its "<N>" priority, so that journald keeps
    it (`journalctl -p warning` shows the decisions); None: when stderr is the journal."""

    def __init__(self, level=DEBUG, stream=None, prefix="guardian: ", journal=None):
        self.level = level
        self.stream = stream
        self.prefix = prefix
        self.journal = stderr_is_journal(stream) if journal is None else journal

    def format(self, record):
        text = "%s%s: %s" % (self.prefix, record.levelname, record.text())
        if record.exc_info:
            text += "\n" + format_exception(record.exc_info)
        if self.journal:
            # Every line: journald reads a prefix per line, a traceback's included.
            mark = "<%d>" % journal_priority(record.levelno)
            text = mark + text.replace("\n", "\n" + mark)
        return text

    def emit(self, record):
        try:
            stream = self.stream if self.stream is not None else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a closed stderr must not stop the guardian
            pass


# Before configure(): warnings and errors, the bare message on stderr (what logging's
# lastResort did for a logger nobody configured: tests, a library use).
class _LastResort(StderrHandler):
    def format(self, record):
        text = record.text()
        return text + "\n" + format_exception(record.exc_info) if record.exc_info else text


_LAST_RESORT = _LastResort(WARNING)


class Logger:
    """The calls of logging.Logger the guardian makes. A handler: an object with a `level`
    and an `emit(record)` that does not raise."""

    def __init__(self, level=WARNING):
        self.level = level
        self.handlers = []

    def setLevel(self, level):
        self.level = level_of(level)

    def isEnabledFor(self, level):
        return level >= self.level

    def addHandler(self, handler):
        if handler not in self.handlers:
            self.handlers.append(handler)

    def removeHandler(self, handler):
        if handler in self.handlers:
            self.handlers.remove(handler)

    def debug(self, msg, *args):
        if DEBUG >= self.level:
            self._emit(Record(DEBUG, msg, args))

    def info(self, msg, *args):
        if INFO >= self.level:
            self._emit(Record(INFO, msg, args))

    def warning(self, msg, *args):
        if WARNING >= self.level:
            self._emit(Record(WARNING, msg, args))

    def error(self, msg, *args):
        if ERROR >= self.level:
            self._emit(Record(ERROR, msg, args))

    def exception(self, msg, *args):
        """An error line and the traceback of the exception being handled."""
        if ERROR >= self.level:
            self._emit(Record(ERROR, msg, args, sys.exc_info()))

    def log(self, level, msg, *args, syslog_sent=False):
        if level >= self.level:
            self._emit(Record(level, msg, args, syslog_sent=syslog_sent))

    def _emit(self, record):
        for handler in tuple(self.handlers) or (_LAST_RESORT,):
            if record.levelno >= handler.level:
                handler.emit(record)


log = Logger()
_stderr_handler = None


def configure(level):
    """The daemon's and the commands' setup: `level` (a name or number) and one stderr
    handler (called again: the level changes, still one handler)."""
    global _stderr_handler
    log.setLevel(level)
    if _stderr_handler is None:
        _stderr_handler = StderrHandler()
        log.addHandler(_stderr_handler)
