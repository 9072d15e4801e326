"""Fixtures of the act layer's integration tests: python children that all die at teardown,
and pidfd handles that are all closed."""
import os
import signal
import subprocess
import sys

import pytest

from tests.support.processes import read_line


@pytest.fixture
def spawn():
    """Start python children; every one (and, for new sessions, its group) dies at teardown."""
    started = []

    def _spawn(code, new_session=False, wait_ready=True):
        p = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            start_new_session=new_session,
        )
        started.append((p, new_session))
        if wait_ready:  # the child prints 'ready' once its signal handlers are in place
            assert read_line(p) == "ready"
        return p

    try:
        yield _spawn
    finally:
        for p, new_session in started:
            # While we have not reaped it, p.pid (= its PGID with a new session) cannot be reused.
            if new_session and p.returncode is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            finally:
                p.stdout.close()


@pytest.fixture
def handles():
    opened = []

    def _track(h):
        if h is not None:
            opened.append(h)
        return h

    try:
        yield _track
    finally:
        for h in opened:
            h.close()
