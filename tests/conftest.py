"""Fixtures for every suite."""
import pytest

from tests.support.logcapture import capture


@pytest.fixture
def guardian_log():
    """What the guardian logged during the test (guardian.logger; see tests/support/logcapture)."""
    with capture() as got:
        yield got
