"""CHECKSUM_COMPLETE: a NIC with full receive checksums hands the stack skb->csum, the sum of
the packet from the network header on, and a program that rewrites headers at tc ingress
must keep it summing the packet it leaves (docs/translator.md, Checksums): the translator
writes headers in place and tells skb->csum of the difference, bpf_skb_change_proto() and
bpf_skb_adjust_room() account for what they add or remove.

BPF_PROG_TEST_RUN with BPF_F_TEST_SKB_CHECKSUM_COMPLETE (kernel 6.11+) starts the skb that
way and fails the run with EBADMSG when skb->csum no longer sums the packet. Every tc packet
test of the translator runs each packet once more that way (xlate_helpers.Translator), and
the gateway's run that way at tc (gw_helpers); here, the check itself is shown to catch a
stale skb->csum, and the translator's kinds of rewrite are gone through one by one.
"""

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoRequest, ICMPv6TimeExceeded, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)

from lab.bpf import testrun
from lab.bpf.features import probe_test_run_checksum_complete
from lab.datapath.translator.config import bench_mix

from xlate_helpers import CLIENT4, CLIENT6, ETH, ROUTER4, ROUTER6, SERVER4, SERVER6, \
    Translator, assert_valid, check_checksum_complete

pytestmark = pytest.mark.root


@pytest.fixture(scope="module", autouse=True)
def kernel_checks_skb_csum():
    cap = probe_test_run_checksum_complete()
    if not cap.ok:
        pytest.skip(cap.detail)


def test_the_kernel_refuses_a_stale_skb_csum(load_bpf):
    obj = load_bpf("tests/csum_complete")
    frame = bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / UDP() / b"payload")
    with pytest.raises(OSError, match="EBADMSG"):
        testrun.run(obj.program("bump_stale"), frame, checksum_complete=True)
    told = testrun.run(obj.program("bump_told"), frame, checksum_complete=True)
    assert told.data != frame                    # the byte did change
    testrun.run(obj.program("bump_stale"), frame)   # and only the check refuses it


@pytest.fixture
def tc(xlate_object):
    return Translator(xlate_object, "tc")


@pytest.mark.parametrize("label", [label for label, _ in bench_mix()])
def test_the_benchmark_mix_keeps_skb_csum(tc, label):
    """TCP, UDP, ICMP echo each way, an ICMP error each way: lab bench prog's packets."""
    frame = dict(bench_mix())[label]
    out = tc(frame)
    assert out.outcome in ("done46", "done64")
    check_checksum_complete(tc.prog, frame, out.code, out.raw)


REWRITES = {
    # header size changes beyond the base headers: IPv4 options go, a Fragment header comes
    "4to6-options": ETH / IP(src=CLIENT4, dst=SERVER4, options=[IPOption_NOP()] * 4) /
    TCP(flags="S"),
    "4to6-fragment": ETH / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=77) / UDP() / bytes(64),
    "6to4-dest-options": ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrDestOpt() /
    UDP() / bytes(32),
    "6to4-fragment": ETH / IPv6(src=SERVER6, dst=CLIENT6) / IPv6ExtHdrFragment(id=9, m=1) /
    UDP() / bytes(64),
    # a checksum computed afresh: IPv4 UDP without one
    "4to6-udp-zero": ETH / IP(src=CLIENT4, dst=SERVER4) / UDP(chksum=0) / bytes(20),
    # ICMP errors: rebuilt, their quoted packet translated too
    "4to6-error": ETH / IP(src=ROUTER4, dst=SERVER4) / ICMP(type=11) /
    IP(src=SERVER4, dst=CLIENT4, ttl=1) / UDP(sport=4000, dport=33434) / bytes(40),
    "6to4-error": ETH / IPv6(src=ROUTER6, dst=SERVER6) / ICMPv6DestUnreach(code=4) /
    IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=4000, dport=53) / bytes(40),
    "6to4-echo": ETH / IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6EchoRequest(id=5) / bytes(24),
    "6to4-time-exceeded-quoting-echo": ETH / IPv6(src=ROUTER6, dst=SERVER6) /
    ICMPv6TimeExceeded() / IPv6(src=SERVER6, dst=CLIENT6, hlim=1) /
    ICMPv6EchoRequest(id=5) / bytes(24),
}


@pytest.mark.parametrize("name", sorted(REWRITES))
def test_each_kind_of_rewrite_keeps_skb_csum(tc, name):
    frame = bytes(REWRITES[name])
    out = tc(frame)
    assert out.outcome in ("done46", "done64"), out.outcome
    assert_valid(out.raw)
    check_checksum_complete(tc.prog, frame, out.code, out.raw)


def test_an_error_the_translator_sends_keeps_skb_csum(tc):
    """The packet wrapped into the translator's own ICMP error (RFC 7915 4.4), which leaves
    by the device it came in on: headers pushed in front of it."""
    tc.configure(allow=["203.0.113.0/24"], icmp_errors=True, icmp_source4="192.0.2.1",
                 icmp_source6="2001:db8:6::1")
    frame = bytes(ETH / IP(src=CLIENT4, dst=SERVER4) / TCP(flags="S") / bytes(10))
    out = tc(frame)
    assert out.outcome == "bounce" and out.code == "TC_ACT_REDIRECT"
    assert_valid(out.raw)
    check_checksum_complete(tc.prog, frame, out.code, out.raw)
