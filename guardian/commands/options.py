"""What every command takes from its options: the config (--config, --board or the detected
board, --state-dir over the file's leak state directory) and the scope (--scope)."""
from __future__ import annotations

import argparse

from guardian.board.load import load_config
from guardian.config import Config
from guardian.kernel.cgroup import resolve_cgroup
from guardian.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple


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


def scope_dir_for(spec: str, sys_root: str) -> Optional[str]:
    """The cgroup directory --scope names, or None for the whole system."""
    if spec == "system":
        return None
    if not spec.startswith("cgroup:"):
        raise SystemExit("guardian: --scope takes 'system' or 'cgroup:PATH', not %r" % spec)
    try:
        return resolve_cgroup(spec[len("cgroup:"):], sys_root)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit("guardian: --scope %s: %s" % (spec, exc)) from None
