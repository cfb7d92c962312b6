"""Thousands of random and malformed packets through the translator at tc and at XDP: every
packet is dropped, passed untouched, or comes out with consistent lengths and checksums;
checksums come out wrong only where they went in wrong (they are adjusted, never
recomputed into validity). tc and XDP do exactly the same to every packet."""

import os

import pytest
from scapy.layers.l2 import Ether

from lab.bpf.testing import run_packet
from lab.datapath.translator import INGRESS_TC, INGRESS_XDP, TranslatorConfig

from xlate_corpus import Corpus
from xlate_helpers import BASE_CONFIG, SERVER4, SERVER6, problems

pytestmark = [pytest.mark.root, pytest.mark.heavy]

PACKETS = int(os.environ.get("XLATE_FUZZ_PACKETS", "1500"))  # per configuration
CONFIGS = {
    "prefix+eam": BASE_CONFIG,
    "errors+allow+pool": {**BASE_CONFIG, "allow": ["192.0.2.0/24", "203.0.113.0/24"],
                          "icmp_errors": True, "icmp_source4": "192.0.2.1",
                          "icmp_source6": "2001:db8:6::1", "pool4": "192.0.2.254"},
    "well-known-prefix": {**BASE_CONFIG, "prefix": "64:ff9b::/96"},
}
# With the well-known prefix, IPv4 hosts need global addresses (RFC 6052 3.1).
WKP_ADDR4 = ["8.8.8.8", SERVER4, "1.1.1.1", "192.0.2.10", "10.1.1.1", "224.0.0.5"]
WKP_ADDR6 = ["64:ff9b::808:808", SERVER6, "64:ff9b::101:101", "64:ff9b::c000:20a",
             "64:ff9b::a01:101", "2001:db8:ff::1", "ff02::1"]

CHECKSUMS = {"TCP checksum", "UDP checksum", "ICMP checksum", "ICMPv6 checksum"}


def _check(label: str, frame: bytes, out) -> None:
    if out.verdict == "dropped" or out.raw == frame:
        return
    found = problems(out.raw)
    assert not [p for p in found if p not in CHECKSUMS], (label, found)
    if found:
        came_bad = [p for p in problems(frame) if p in CHECKSUMS]
        assert came_bad, (label, f"translation broke a checksum: {found}")


def _without_ident(frame: bytes) -> bytes:
    """FRAME with the Identification (and header checksum) of an unfragmented IPv4 packet
    zeroed: the translator generates it per packet (RFC 6864), so two runs differ there."""
    if frame[12:14] != b"\x08\x00" or len(frame) < 34 or frame[20:22] not in \
            (b"\x00\x00", b"\x40\x00"):
        return frame
    return frame[:18] + bytes(2) + frame[20:24] + bytes(2) + frame[26:]


def _too_short_for_skb_test_run(frame: bytes) -> bool:
    """BPF_PROG_TEST_RUN refuses an skb whose ethertype says IPv4 or IPv6 without a whole
    base header (the kernel sets the skb up from it); XDP runs take such frames, and the
    real tc hook sees them too."""
    ethertype = frame[12:14]
    return (ethertype == b"\x08\x00" and len(frame) < 34) or \
        (ethertype == b"\x86\xdd" and len(frame) < 54)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_and_malformed_packets(xlate_object, config):
    TranslatorConfig.from_dict(CONFIGS[config]).apply(xlate_object)
    tc, xdp = xlate_object.program(INGRESS_TC), xlate_object.program(INGRESS_XDP)
    corpus = Corpus(sum(map(ord, config))) if config != "well-known-prefix" else \
        Corpus(sum(map(ord, config)), WKP_ADDR4, WKP_ADDR6)
    outcomes = {"dropped": 0, "untouched": 0, "translated": 0, "redirected": 0}
    for label, frame in corpus.frames(PACKETS):
        b = run_packet(xdp, frame)
        _check(label, frame, b)
        if _too_short_for_skb_test_run(frame):
            a = b
        else:
            a = run_packet(tc, frame)
            assert (a.verdict, _without_ident(a.raw)) == (b.verdict, _without_ident(b.raw)), \
                f"tc and XDP differ on {label}"
        key = ("dropped" if a.dropped else "untouched" if a.raw == frame else
               "redirected" if a.redirected else "translated")
        outcomes[key] += 1
    # the corpus exercises every way out, or it tests less than it claims
    if not CONFIGS[config].get("icmp_errors"):
        assert outcomes.pop("redirected") == 0
    assert all(n > PACKETS // 50 for n in outcomes.values()), outcomes


def test_corpus_is_reproducible():
    assert Corpus(7).frames(50) == Corpus(7).frames(50)
