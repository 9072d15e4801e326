"""The netlink proc connector's BPF filter and its event parsing, on a synthetic datagram."""
import struct

from guardian.kernel import connector


def test_bpf_program_and_event_parsing():
    prog = connector._bpf_program()
    assert len(prog) == 11 * 8
    # a synthetic exec event datagram
    payload = struct.pack("=IIQii", connector.PROC_EVENT_EXEC, 0, 123, 4242, 4242)
    cn = struct.pack("=IIIIHH", connector.CN_IDX_PROC, connector.CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    msg = struct.pack("=IHHII", 16 + len(cn), connector.NLMSG_DONE, 0, 0, 0) + cn
    assert connector.parse_events(msg) == [(connector.PROC_EVENT_EXEC, 4242, 4242)]
    assert connector.parse_events(b"") == []
