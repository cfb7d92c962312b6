"""The rule the fuzz tests hold the BPF programs to (tests/malformed.py): it catches a
program that breaks a length or a checksum, and lets a wrong checksum through only when the
packet brought it."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from malformed import ETH, check_output

FRAME = bytes(ETH / IP(src="192.0.2.10", dst="198.51.100.5") / TCP(sport=1, dport=2)
              / (b"x" * 10))
REWRITTEN = bytes(ETH / IPv6(src="64:ff9b::c000:20a", dst="2001:db8::5") / TCP(sport=1, dport=2)
                  / (b"x" * 10))


def spoil_tcp_sum(frame: bytes, l3: int) -> bytes:
    b = bytearray(frame)
    b[14 + l3 + 16] ^= 0xFF
    return bytes(b)


def test_untouched_and_dropped_packets_are_not_judged():
    assert check_output(FRAME, "passed", FRAME) is False
    assert check_output(FRAME, "dropped", b"anything") is False


def test_a_sound_rewrite_passes():
    assert check_output(FRAME, "passed", REWRITTEN) is True


def test_a_wrong_length_is_caught():
    b = bytearray(REWRITTEN)
    b[14 + 5] += 4                                          # payload length beyond the bytes
    with pytest.raises(AssertionError, match="lengths wrong"):
        check_output(FRAME, "passed", bytes(b))


def test_a_checksum_the_program_broke_is_caught():
    with pytest.raises(AssertionError, match="made a checksum wrong"):
        check_output(FRAME, "passed", spoil_tcp_sum(REWRITTEN, 40))


def test_a_checksum_that_came_in_wrong_may_go_out_wrong():
    assert check_output(spoil_tcp_sum(FRAME, 20), "passed", spoil_tcp_sum(REWRITTEN, 40))
