"""/proc/sys: the kernel's settings (sysctls), read one at a time."""
from __future__ import annotations

import os

from guardian.kernel import read_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def read_sysctl(name: str, proc_root: str = "/proc") -> Optional[str]:
    """read_sysctl("vm.overcommit_memory") -> "0": the value with its whitespace collapsed (a
    multi-value setting such as vm.lowmem_reserve_ratio reads "256 256 32 0"); None when this
    kernel has no such setting or it cannot be read. The name may be dotted or slashed
    ("vm/overcommit_memory")."""
    path = os.path.join(proc_root, "sys", *name.replace(".", "/").split("/"))
    try:
        text = read_text(path)
    except OSError:
        return None
    return " ".join(text.split())
