"""Fixtures shared by the board config tests."""
import os

import pytest


@pytest.fixture
def confdir(tmp_path):
    """A directory only its owner can write (as /etc is): tmp_path/etc."""
    d = tmp_path / "etc"
    d.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    return d
