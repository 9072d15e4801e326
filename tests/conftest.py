"""Fixtures for every suite."""
import os

import pytest

from tests.support.logcapture import capture


@pytest.fixture
def guardian_log():
    """What the guardian logged during the test (guardian.logger; see tests/support/logcapture)."""
    with capture() as got:
        yield got


@pytest.fixture
def pipe():
    """A pipe: (read end, write end), both closed after the test."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)
