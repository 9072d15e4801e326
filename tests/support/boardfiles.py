"""Board config files written for a test, and loading them alone (no shipped or local boards)."""
import os
import textwrap

from guardian.board.errors import ConfigError
from guardian.board.load import load_config

# A board with one [[low_priority]] entry and its stop command: what a hostile file would change.
LOW_PRIORITY_BOARD = ('[board]\nname = "b"\n\n[[low_priority]]\nname = "web"\nmatch = { comm = "web" }\n'
                      'stop = ["/bin/true"]\n')


def write(directory, name, text, mode=0o644):
    """directory/name holding text (dedented), with mode; returns the path."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    os.chmod(path, mode)
    return path


def load(path, **kw):
    return load_config(path, boards_dirs=[], **kw)


def error_of(path, **kw):
    """The ConfigError loading path raises; loading without one fails the test."""
    try:
        load(path, **kw)
    except ConfigError as e:
        return e
    raise AssertionError("%s loaded without a ConfigError" % path)
