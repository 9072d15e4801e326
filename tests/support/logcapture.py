"""The guardian logger's records in a test, as pytest's caplog gave them for stdlib logging:
`records`, `text`, `messages`, `set_level` (undone after the test) and `at_level`."""
import contextlib

from guardian.logger import format_exception, level_of, log


class LogCapture:
    level = 0  # the handler takes every record the logger lets through

    def __init__(self):
        self.records = []
        self._initial_level = log.level

    def emit(self, record):
        self.records.append(record)

    @property
    def messages(self):
        return [r.getMessage() for r in self.records]

    @property
    def text(self):
        lines = []
        for r in self.records:
            lines.append("%-8s %s" % (r.levelname, r.getMessage()))
            if r.exc_info:
                lines.append(format_exception(r.exc_info))
        return "".join(line + "\n" for line in lines)

    def clear(self):
        del self.records[:]

    def set_level(self, level):
        log.setLevel(level_of(level))

    @contextlib.contextmanager
    def at_level(self, level):
        before = log.level
        log.setLevel(level_of(level))
        try:
            yield self
        finally:
            log.level = before

    def close(self):
        log.removeHandler(self)
        log.level = self._initial_level


@contextlib.contextmanager
def capture():
    got = LogCapture()
    log.addHandler(got)
    try:
        yield got
    finally:
        got.close()
