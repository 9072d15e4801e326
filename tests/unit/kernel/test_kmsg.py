"""/dev/kmsg: records parsed, and the reader against a fake ring buffer (the `ring` fixture)."""
from guardian.kernel.kmsg import KmsgReader, parse_record


def test_parse_record_with_metadata_and_escapes():
    rec = parse_record(b"4,1234,5678901,-,caller=T12;usb 1-1: new device \\x5cok\\x0asecond\n"
                       b" SUBSYSTEM=usb\n DEVICE=c189:4\n")
    assert (rec.level, rec.seq, rec.ts, rec.flags) == (4, 1234, 5.678901, "-")
    assert rec.message == "usb 1-1: new device \\ok\nsecond"
    assert parse_record(b"30,7,100,c;x\n").level == 6  # facility 3 (daemon), level 6
    assert parse_record(b"no header here\n") is None
    assert parse_record(b"a,b,c;x\n") is None


def test_reader_records_epipe_and_big_records(ring):
    reader = KmsgReader(ring.path)
    ring.add("one")
    ring.overwritten()
    ring.add("two", "x" * 9000)
    got = [r.message for r in reader.records()]
    assert got == ["one", "two", "x" * 9000]
    assert reader.lost == 1
    assert list(reader.records()) == []  # EAGAIN: nothing new


def test_reader_joins_pre_4_9_continuation_pieces(ring):
    reader = KmsgReader(ring.path)
    ring.add("Node 0 Normal: ", flags="c")
    ring.add("12*4kB ", flags="+")
    ring.add("0*8kB = 48kB", flags="+")
    ring.add("next line")
    assert [r.message for r in reader.records()] == ["Node 0 Normal: 12*4kB 0*8kB = 48kB", "next line"]


def test_reader_unavailable_says_why(tmp_path):
    reader = KmsgReader(str(tmp_path / "absent"))
    assert reader.fileno() is None and "absent" in reader.error and list(reader.records()) == []
