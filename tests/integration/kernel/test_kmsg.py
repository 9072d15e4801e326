"""The kmsg reader against this machine's /dev/kmsg."""
import uuid

import pytest

from guardian.kernel.kmsg import KmsgReader

pytestmark = pytest.mark.integration


def test_real_dev_kmsg_starts_at_the_end_and_reads_new_records():
    try:
        reader = KmsgReader("/dev/kmsg")
    except Exception:  # pragma: no cover
        pytest.skip("no /dev/kmsg")
    if reader.fileno() is None:
        pytest.skip("cannot read /dev/kmsg: %s" % reader.error)
    marker = "guardian-test marker %s" % uuid.uuid4()
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(marker + "\n")
    except OSError as exc:
        reader.close()
        pytest.skip("cannot write /dev/kmsg: %s" % exc)
    try:
        messages = [r.message for r in reader.records()]
    finally:
        reader.close()
    assert any(marker in m for m in messages)
    assert len(messages) < 50  # it began at the end, not at the oldest record
