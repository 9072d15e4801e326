# _signal, the C module behind signal.py: the same functions and constants (plain ints at run
# time, not signal.py's enums). The guardian imports it so as not to import enum.
from signal import *  # noqa: F403
