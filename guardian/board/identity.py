"""What the machine says it is (device tree, then DMI), and whether a board's [board.match]
fits it: how the board is detected when neither --board nor --config is given.
"""
from __future__ import annotations

import os
import re

from guardian.board.errors import show_value
from guardian.config import Board, BoardMatch
from guardian.record import fields, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence, Tuple


@record
class Identity:
    """What the board says it is."""

    device_tree_model: Optional[str] = None
    device_tree_compatible: Tuple[str, ...] = ()
    dmi_product_name: Optional[str] = None
    dmi_sys_vendor: Optional[str] = None
    dmi_board_name: Optional[str] = None
    sources: Tuple[Tuple[str, str], ...] = ()  # (field, file read)

    def describe(self) -> str:
        parts = []
        if self.device_tree_model is not None:
            parts.append("device-tree model %s" % show_value(self.device_tree_model))
        if self.dmi_product_name is not None:
            parts.append("DMI product %s" % show_value(self.dmi_product_name))
        if self.dmi_sys_vendor is not None:
            parts.append("DMI vendor %s" % show_value(self.dmi_sys_vendor))
        return ", ".join(parts) if parts else "no device-tree model and no DMI data"


def _read_first(paths: Sequence[str]) -> Tuple[Optional[bytes], Optional[str]]:
    for p in paths:
        try:
            with open(p, "rb") as f:
                return f.read(4096), p
        except OSError:
            continue
    return None, None


def read_identity(proc_root: str = "/proc", sys_root: str = "/sys") -> Identity:
    sources = []
    dt = [os.path.join(proc_root, "device-tree"), os.path.join(sys_root, "firmware", "devicetree", "base")]
    model_raw, p = _read_first([os.path.join(d, "model") for d in dt])
    model = model_raw.split(b"\0")[0].decode("utf-8", "replace").strip() if model_raw is not None else None
    if p:
        sources.append(("device_tree_model", p))
    compat_raw, p = _read_first([os.path.join(d, "compatible") for d in dt])
    compat = tuple(c.decode("utf-8", "replace") for c in (compat_raw or b"").split(b"\0") if c)
    if p:
        sources.append(("device_tree_compatible", p))
    dmi = {}
    for key, fname in (("dmi_product_name", "product_name"), ("dmi_sys_vendor", "sys_vendor"),
                       ("dmi_board_name", "board_name")):
        raw, p = _read_first([os.path.join(sys_root, "class", "dmi", "id", fname)])
        dmi[key] = raw.decode("utf-8", "replace").strip() if raw is not None else None
        if p:
            sources.append((key, p))
    return Identity(model, compat, sources=tuple(sources), **dmi)


def board_match(board: Board, ident: Identity) -> Optional[Tuple[int, str]]:
    """(specificity, reason) when one of the board's match tables fits, else None."""
    best: Optional[Tuple[int, str]] = None
    src = dict(ident.sources)
    for m in board.match:
        reasons = []
        ok = True
        for name in fields(BoardMatch):
            want = getattr(m, name)
            if want is None:
                continue
            if name == "device_tree_compatible":
                if want not in ident.device_tree_compatible:
                    ok = False
                    break
                reasons.append("device-tree compatible %s (%s)" % (show_value(want), src.get(name, "?")))
                continue
            have = getattr(ident, name)
            if have is None or not re.search(want, have):
                ok = False
                break
            label = {"device_tree_model": "device-tree model", "dmi_product_name": "DMI product",
                     "dmi_sys_vendor": "DMI vendor", "dmi_board_name": "DMI board"}[name]
            reasons.append("%s %s matched '%s' (%s)" % (label, show_value(have), want, src.get(name, "?")))
        if ok and reasons and (best is None or len(reasons) > best[0]):
            best = (len(reasons), " and ".join(reasons))
    return best
