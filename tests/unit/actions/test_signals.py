"""Signalling without a process: a None handle does nothing, no pid 0 or -1 is opened."""
import signal

from guardian.actions import signals
from guardian.actions.signals import (
    exited,
    kill,
    open_process,
    release_memory,
    send_signal,
    wait_exit,
)


def test_none_handle_means_nothing_is_done():
    assert send_signal(None, signal.SIGKILL) is False
    assert kill(None, process_group=True) == signals.KillResult(False, False, False, None)
    assert exited(None) and wait_exit(None, 1)
    assert release_memory(None) == (False, None)
    assert open_process(0, 0) is None and open_process(-1, 0) is None
