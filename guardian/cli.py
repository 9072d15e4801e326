"""guardian's entry point (also the frozen binary's). `run` starts lean (guardian.boot): its
parser and the board config loader run in a short-lived child and never stay in the daemon's
memory. Every other command goes to the full command line (guardian.commands.cli)."""
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: the daemon keeps what it imports
    from typing import List, Optional

# The options the parser takes before a subcommand, other than those that end the command
# line (--help, --version): each takes a value. Prefixes count, as argparse allows them.
_GLOBAL_WITH_VALUE = ("--log-level",)


def main(argv: "Optional[List[str]]" = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    _restore_tmpdir()
    if is_run(args):
        from guardian.boot import run
        return run(args)
    from guardian.commands.cli import main as full
    return full(args)


def is_run(argv: "List[str]") -> bool:
    """Whether the parser would take this command line as `run`, told without it. A wrong yes
    costs nothing (the child parses it all and runs whatever it is); a wrong no runs `run`
    in-process, as before, only heavier."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "run":
            return True
        name, eq, _value = arg.partition("=")
        if not any(len(name) > 2 and option.startswith(name) for option in _GLOBAL_WITH_VALUE):
            return False  # the command, another option (--help, --version) or an error
        i += 1 if eq else 2
    return False


def _restore_tmpdir() -> None:
    """The init scripts point TMPDIR at flash for a onefile build's unpacker and keep the
    caller's in GUARDIAN_TMPDIR (empty: it had none); the commands we run get it back. (The
    frozen build's runtime hook does the same before this runs.)"""
    saved = os.environ.pop("GUARDIAN_TMPDIR", None)
    if saved is None:
        return
    if saved:
        os.environ["TMPDIR"] = saved
    else:
        os.environ.pop("TMPDIR", None)
