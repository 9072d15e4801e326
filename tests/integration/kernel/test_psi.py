"""/proc/pressure/memory of this machine, where the kernel has PSI."""
import os

import pytest

from guardian.kernel import psi

pytestmark = pytest.mark.integration


def test_real_psi():
    if not os.path.exists("/proc/pressure/memory"):
        pytest.skip("no /proc/pressure/memory on this kernel (CONFIG_PSI off or kernel < 4.20)")
    p = psi.read_psi()
    if p is None:
        pytest.skip("PSI is disabled on this kernel (psi=0)")
    assert p.full is not None
    assert p.some.total >= p.full.total >= 0
    assert 0 <= p.some.avg10 <= 100
