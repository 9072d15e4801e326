"""What every command takes from its options: the config (--config, --board or the detected
board, --state-dir over the file's leak state directory)."""
import argparse
from dataclasses import replace
from typing import Callable, Tuple

from guardian.board.load import load_config
from guardian.config import Config


def load_config_for(args: argparse.Namespace) -> Tuple[Config, str, Callable[[], Config]]:
    """The config for --config/--board (or the detected board), why it was chosen, and how to
    load it again on SIGHUP."""
    proc_root, sys_root = getattr(args, "proc_root", "/proc"), getattr(args, "sys_root", "/sys")

    def again() -> Config:
        return _overrides(load_config(args.config, args.board, proc_root, sys_root).config, args)

    loaded = load_config(args.config, args.board, proc_root, sys_root)
    return _overrides(loaded.config, args), loaded.why, again


def _overrides(config: Config, args: argparse.Namespace) -> Config:
    """What the command line says over the config file (kept across reloads)."""
    state_dir = getattr(args, "state_dir", None)
    if state_dir:
        config = replace(config, leaks=replace(config.leaks, state_dir=state_dir))
    return config
