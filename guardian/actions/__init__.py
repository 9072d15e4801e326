"""The act layer: signalling processes race-free, stopping them gracefully, giving memory back.

Everything here is a thin, synchronous wrapper around one kernel interface. Nothing here
decides *whom* to act on; nothing here raises because a process vanished under it.
"""
