# _sre, the regex engine behind re: guardian.core.match builds compiled patterns with it from
# what re compiled in a loader child, so that the daemon does not import re.
from typing import Any, Callable

compile: Callable[..., Any]
MAGIC: int
