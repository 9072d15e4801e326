"""kernel/mounts: /proc/self/mountinfo parsed, and the mount that holds a path."""
import os

import pytest

from guardian.kernel import ParseError
from guardian.kernel.mounts import existing_realpath, fstype_of, mount_of, parse_mountinfo, read_mounts

# As on a Buildroot board: / on ext4 (read-only squashfs elsewhere), /tmp tmpfs, a data partition.
MOUNTINFO = """\
22 1 179:2 / / ro,relatime shared:1 - ext4 /dev/root ro
23 22 0:5 / /dev rw,relatime shared:2 - devtmpfs devtmpfs rw,size=61440k
24 22 0:21 / /tmp rw,relatime shared:3 - tmpfs tmpfs rw
25 22 179:3 / /data rw,noatime shared:4 - ext4 /dev/mmcblk0p3 rw
26 22 0:22 / /run rw,nosuid - tmpfs tmpfs rw,mode=755
27 22 179:4 / /media/my\\040card rw - vfat /dev/sda1 rw
28 24 0:23 / /tmp rw - ramfs none rw
"""


def test_parse():
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in mounts] == ["/", "/dev", "/tmp", "/data", "/run", "/media/my card", "/tmp"]
    assert mounts[3].fstype == "ext4" and mounts[3].source == "/dev/mmcblk0p3" and not mounts[3].in_ram
    assert mounts[2].in_ram and mounts[6].in_ram and mounts[6].fstype == "ramfs"


def test_optional_fields_vary_in_number():
    line = "30 22 0:40 / /srv rw shared:9 master:2 propagate_from:1 - xfs /dev/sdb1 rw\n"
    (m,) = parse_mountinfo(line)
    assert (m.mount_point, m.fstype, m.source) == ("/srv", "xfs", "/dev/sdb1")


def test_garbled_line_names_file_and_line():
    with pytest.raises(ParseError) as e:
        parse_mountinfo(MOUNTINFO + "29 22 0:1 / /x rw\n", "/fake/mountinfo")
    assert "/fake/mountinfo" in str(e.value) and "line 8" in str(e.value)


def test_mount_of_takes_the_longest_point_and_the_last_listed():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mount_of("/tmp/log/guardian", mounts).fstype == "ramfs"  # mounted over the tmpfs
    assert mount_of("/data/guardian", mounts).source == "/dev/mmcblk0p3"
    assert mount_of("/datastore", mounts).mount_point == "/"  # a prefix of the name is not a parent
    assert mount_of("/media/my card/x", mounts).fstype == "vfat"
    assert mount_of("/", mounts).fstype == "ext4"


def test_existing_realpath_follows_links_from_the_nearest_existing_ancestor(tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("../tmp", str(tmp_path / "var" / "log"))  # Buildroot's skeleton
    real = existing_realpath(str(tmp_path / "var" / "log" / "guardian" / "events.jsonl"))
    assert real == os.path.realpath(str(tmp_path / "tmp"))


def test_fstype_of_unknown_without_mounts():
    assert fstype_of("/var/log", None) is None and fstype_of("/var/log", ()) is None


def test_read_mounts_from_a_root(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(MOUNTINFO)
    assert len(read_mounts(str(tmp_path))) == 7
    assert read_mounts(str(tmp_path / "none")) is None
