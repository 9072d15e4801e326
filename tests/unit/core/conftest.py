"""Fixtures shared by the tests of the resident core and its parts."""
import socket

import pytest

from tests.support import fakeproc


@pytest.fixture
def basic_tree(tmp_path):
    """A fake /proc of a small board (fakeproc.basic_tree): its root."""
    root = str(tmp_path / "proc")
    fakeproc.basic_tree(root)
    return root


@pytest.fixture
def fake_devlog(tmp_path):
    """A /dev/log stand-in: (its path, the bound datagram socket that receives what is sent)."""
    path = str(tmp_path / "devlog")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2.0)
    yield path, server
    server.close()
