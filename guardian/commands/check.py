"""`guardian check`: validate a board config and audit the running system against it.

One line per finding, `LEVEL topic: message`, levels ok / info / warn / error; the findings
about the running system come from guardian.commands.audit (which `guardian diagnose` shares
for its red flags). Exit status: 0 all well, 1 warnings, 2 the config is invalid.

Offline (`--root DIR`, a target rootfs at image build time): the config alone is checked,
plus the programs its commands name (they must exist in DIR). File ownership is not
checked offline (a build tree belongs to the build user; the image's owner is set later),
only that no file is group- or world-writable.
"""
from __future__ import annotations

import json
import os
import sys

from guardian.commands.audit import Finding, audit, audit_commands
from guardian.board.boards import LOCAL_BOARDS_DIRS, available_boards
from guardian.board.errors import ConfigError
from guardian.board.load import LoadedConfig, load_config, load_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, List, Optional, Sequence, Tuple


def _loaded(loaded: LoadedConfig) -> List[Finding]:
    """Which config is in force, and why."""
    config = loaded.config
    out = [Finding("ok", "config", "%s; files: %s" % (loaded.why, ", ".join(loaded.files) or "(none)"),
                   {"board": config.board, "files": list(loaded.files)})]
    return out + [Finding("info", "config", note) for note in loaded.notes]


# ------------------------------------------------------------------------------ offline

def _in_root(root: str, path: str) -> str:
    """An absolute --config path names a file of the target root when it exists there."""
    if os.path.isabs(path):
        inside = os.path.join(root, path.lstrip("/"))
        if os.path.exists(inside):
            return inside
    return path


def audit_offline(config_path: Optional[str], board: Optional[str], root: str) -> Tuple[List[Finding], bool]:
    """(findings, config valid) for a target rootfs."""
    local = [os.path.join(root, d.lstrip("/")) for d in LOCAL_BOARDS_DIRS]
    boards = available_boards(local)
    targets: List[Tuple[str, str]] = []
    if config_path is not None and board is not None:
        return [Finding("error", "config", "give --config PATH or --board NAME, not both")], False
    if config_path is not None:
        targets.append((_in_root(root, config_path), "given by --config"))
    elif board is not None:
        if board not in boards:
            import difflib

            close = difflib.get_close_matches(board, list(boards), n=1)
            hint = "did you mean '%s'?" % close[0] if close else "known boards: " + ", ".join(sorted(boards))
            return [Finding("error", "config", "--board %s: no such board; %s" % (board, hint))], False
        targets.append((boards[board], "given by --board"))
    else:
        targets += [(p, "board file") for _, p in sorted(boards.items())]
    findings: List[Finding] = []
    valid = True
    for path, how in targets:
        try:
            config, files, notes = load_file(path, boards, check_owner=False)
        except ConfigError as e:
            findings.append(Finding("error", "config", str(e), {"file": e.file, "key": e.key, "line": e.line}))
            valid = False
            continue
        findings.append(Finding("ok", "config", "%s (%s): board %r, %d critical, %d low-priority, %d sysctl; files: %s"
                                % (path, how, config.board, len(config.critical), len(config.low_priority),
                                   len(config.sysctl), ", ".join(files)), {"board": config.board}))
        findings += [Finding("info", "config", n) for n in notes]
        findings += audit_commands(config, root)
    findings.append(Finding("info", "offline", "checked against %s: file ownership, processes and kernel settings "
                            "are checked on the running board" % root))
    return findings, valid


# ------------------------------------------------------------------------------ entry point

def run(config_path: Optional[str], board: Optional[str], root: Optional[str], as_json: bool,
        proc_root: str = "/proc", sys_root: str = "/sys", out: Optional[IO[str]] = None,
        boards_dirs: Optional[Sequence[str]] = None, fs_root: str = "/") -> int:
    out = out or sys.stdout
    loaded: Optional[LoadedConfig] = None
    if root is not None:
        findings, valid = audit_offline(config_path, board, root)
    else:
        try:
            loaded = load_config(config_path, board, proc_root, sys_root, boards_dirs=boards_dirs)
        except ConfigError as e:
            findings = [Finding("error", "config", str(e), {"file": e.file, "key": e.key, "line": e.line})]
            valid = False
        else:
            findings = _loaded(loaded) + audit(loaded.config, proc_root, sys_root, fs_root)
            valid = True
    code = 2 if not valid else 1 if any(f.level == "warn" for f in findings) else 0
    if as_json:
        doc = {
            "exit": code,
            "board": loaded.config.board if loaded else None,
            "why": loaded.why if loaded else None,
            "files": list(loaded.files) if loaded else [],
            "findings": [dict(level=f.level, topic=f.topic, message=f.message, **f.data) for f in findings],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        for f in findings:
            out.write(f.line() + "\n")
        summary = {0: "all well", 1: "warnings", 2: "invalid config"}[code]
        out.write("%d findings: %s\n" % (len(findings), summary))
    return code
