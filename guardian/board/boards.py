"""Where the board files are: shipped with the guardian, and local ones that override them.

A board file is NAME.toml. The shipped ones are the package data guardian.board_configs (the
board-configs/ directory of a source checkout, or inside a PyInstaller bundle); local ones in
/etc/guardian/boards win over a shipped file of the same name.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence

LOCAL_BOARDS_DIRS = ("/etc/guardian/boards",)
GENERIC = "generic"


def shipped_dir() -> Optional[str]:
    """Where the shipped board files are: the installed package data guardian.board_configs,
    a PyInstaller bundle, or board-configs/ of a source checkout."""
    candidates: List[str] = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # PyInstaller: datas=[("board-configs/*.toml", "guardian/board_configs")]
        candidates += [os.path.join(meipass, "guardian", "board_configs"), os.path.join(meipass, "board-configs")]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the guardian package
    # Installed: package data guardian.board_configs; source checkout: ../board-configs.
    candidates += [os.path.join(here, "board_configs"), os.path.join(os.path.dirname(here), "board-configs")]
    for d in candidates:
        if os.path.isfile(os.path.join(d, GENERIC + ".toml")):
            return d
    return None


def _boards_in(directory: Optional[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if not directory:
        return out
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for n in names:
        if n.endswith(".toml") and not n.startswith("."):
            out[n[:-5]] = os.path.join(directory, n)
    return out


def shipped_boards() -> Dict[str, str]:
    """name -> path of every board file shipped with the guardian."""
    return _boards_in(shipped_dir())


def available_boards(boards_dirs: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Shipped boards, overlaid by the local ones (/etc/guardian/boards/NAME.toml), which win."""
    out = shipped_boards()
    for d in (LOCAL_BOARDS_DIRS if boards_dirs is None else boards_dirs):
        out.update(_boards_in(d))
    return out
