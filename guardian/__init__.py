"""guardian: a userspace out-of-memory guardian for embedded and edge Linux."""

__version__ = "0.1.0"
