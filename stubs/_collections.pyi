# _collections, the C module behind collections: deque itself, without collections/__init__.py
# (keyword, operator, reprlib), which the daemon does not import.
from collections import deque as deque
