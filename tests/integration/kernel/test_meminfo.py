"""/proc/meminfo of this machine, against what the kernel says elsewhere."""
import os

import pytest

from guardian.kernel import meminfo

pytestmark = pytest.mark.integration

PAGE = os.sysconf("SC_PAGE_SIZE")


def test_real_meminfo():
    m = meminfo.read_meminfo()
    assert m.total == os.sysconf("SC_PHYS_PAGES") * PAGE
    assert 0 < m.free <= m.total
    assert 0 < m.available <= m.total
    assert m.cached >= 0 and m.anon is not None and m.anon > 0
    assert m.swap_free <= m.swap_total
