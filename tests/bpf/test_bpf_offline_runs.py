"""Offline runs through BPF_PROG_TEST_RUN: scapy packets through programs, pcaps through
`lab bpf run`, byte for byte, with verdicts per packet."""

import json

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from lab.bpf import pcap, pktcount
from lab.commands import main

pytestmark = pytest.mark.root

ETH = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")


def _mixed_packets():
    return [ETH / IP(src="192.0.2.1", dst="198.51.100.2") / UDP(dport=53) / b"q",
            ETH / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(dport=80, flags="S"),
            ETH / IP(src="192.0.2.1", dst="198.51.100.2") / ICMP() / bytes(56)]


def test_counter_counts_what_it_is_shown(bpf_runner, load_bpf):
    obj = load_bpf("pktcount")
    from lab.bpf.testing import PacketRunner
    run = PacketRunner(obj.program("pktcount_tc"))
    sizes = {63: 5, 64: 6, 127: 6, 128: 7, 1514: 10, 2048: 11}
    for length in sizes:
        out = run(ETH / IP() / UDP() / bytes(length - 42))
        assert out.code == "TC_ACT_UNSPEC" and out.passed
        assert bytes(out.packet) == bytes(ETH / IP() / UDP() / bytes(length - 42))
    run(IPv6() / TCP())                                  # raw IPv6 gets an Ethernet header
    run(ETH / IP() / TCP(), gso_segs=4, gso_size=1000)   # a GSO skb stands for 4 segments
    rows = pktcount.read(obj.map(pktcount.MAP))
    udp4 = {r.bucket: r.packets for r in rows if (r.family, r.l4proto) == (4, 17)}
    assert udp4 == {5: 1, 6: 2, 7: 1, 10: 1, 11: 1}  # bucket N: lengths 2^N .. 2^(N+1)-1
    tcp6 = [r for r in rows if (r.family, r.l4proto) == (6, 6)]
    assert [(t.bucket, t.packets, t.bytes) for t in tcp6] == [(6, 1, 14 + 40 + 20)]
    tcp4 = [r for r in rows if (r.family, r.l4proto) == (4, 6)]
    assert (tcp4[0].packets, tcp4[0].segments) == (1, 4)
    assert {r.hook for r in rows} == {"tc"}
    assert pktcount.big_packets(rows) == 0


def test_counter_looks_past_a_hop_by_hop_header(load_bpf):
    """IPv6 BIG TCP packets carry a jumbo hop-by-hop option in front of TCP."""
    from scapy.layers.inet6 import IPv6ExtHdrHopByHop
    from lab.bpf.testing import run_packet
    obj = load_bpf("pktcount")
    run_packet(obj.program("pktcount_tc"), IPv6() / IPv6ExtHdrHopByHop() / TCP())
    rows = pktcount.read(obj.map(pktcount.MAP))
    assert [(r.family, r.l4proto) for r in rows] == [(6, 6)]


def test_xdp_runs_with_an_ingress_device(load_bpf):
    from lab.bpf.testing import run_packet
    obj = load_bpf("pktcount")
    out = run_packet(obj.program("pktcount_xdp"), ETH / IP() / UDP(), ctx={"ingress_ifindex": 1})
    assert (out.code, out.verdict, out.ctx["ingress_ifindex"]) == ("XDP_PASS", "passed", 1)
    rows = pktcount.read(obj.map(pktcount.MAP))
    assert [(r.ifindex, r.hook, r.family) for r in rows] == [(1, "xdp", 4)]


def test_ethernet_pcap_through_counter_is_identical_byte_for_byte(tmp_path):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), _mixed_packets())
    assert main(["bpf", "run", "pktcount:pktcount_tc", "--in", str(src), "--out", str(dst)]) == 0
    assert dst.read_bytes() == src.read_bytes()
    assert main(["bpf", "run", "pktcount", "--xdp", "--in", str(src), "--out", str(dst)]) == 0
    assert dst.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("linktype", [101, 228])
def test_raw_ip_pcap_round_trips(tmp_path, linktype):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), [IP(dst="192.0.2.9") / UDP() / b"x", IP(dst="192.0.2.9") / ICMP()],
           linktype=linktype)
    assert main(["bpf", "run", "pktcount", "--in", str(src), "--out", str(dst)]) == 0
    assert dst.read_bytes() == src.read_bytes()


def test_version_changing_program_gets_ipv6_ethertype_and_link_type(tmp_path, bpf_build):
    src, dst = tmp_path / "v4.pcap", tmp_path / "v6.pcap"
    wrpcap(str(src), [IP(src="192.0.2.1", dst="198.51.100.2", ttl=9) / UDP(dport=7) / b"hi"],
           linktype=228)
    obj = str(bpf_build / "tests" / "v4tov6.o")
    assert main(["bpf", "run", obj, "--in", str(src), "--out", str(dst)]) == 0
    cap = pcap.read(str(dst))
    assert cap.linktype == pcap.LINKTYPE_IPV6
    out = IPv6(cap.records[0].data)
    assert (out.src, out.dst, out.hlim, out.nh) == ("64:ff9b::c000:201", "64:ff9b::c633:6402",
                                                    9, 17)
    assert bytes(out[UDP].payload) == b"hi"


def test_verdicts_per_packet_as_json(tmp_path, bpf_build, capsys):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    # The verdict program drops everything once default_action is TC_ACT_SHOT; without the
    # global it passes. Use the compiled default (pass) plus a packet too short to run.
    pkts = _mixed_packets()
    wrpcap(str(src), pkts)
    with open(src, "ab") as f:  # append a 10-byte record: shorter than an Ethernet header
        import struct
        f.write(struct.pack("=IIII", 0, 0, 10, 10) + bytes(10))
    obj = str(bpf_build / "tests" / "verdict.o")
    assert main(["bpf", "run", obj, "--in", str(src), "--out", str(dst), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"passed": 3, "dropped": 0, "redirected": 0, "error": 1}
    assert [p["verdict"] for p in report["packets"]] == ["passed"] * 3 + ["error"]
    assert report["packets"][0]["code"] == "TC_ACT_OK"
    assert "EINVAL" in report["packets"][3]["error"]
    assert len(rdpcap(str(dst))) == 3


def test_dropped_packets_stay_out_of_the_output(tmp_path, load_bpf):
    obj = load_bpf("tests/verdict", default_action=2)   # TC_ACT_SHOT
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), _mixed_packets())
    result = pcap.run(obj.program(), str(src), str(dst))
    assert result.counts()["dropped"] == 3
    assert [p.code for p in result.packets] == ["TC_ACT_SHOT"] * 3
    assert pcap.read(str(dst)).records == []


def test_bad_input_is_exit_code_2_with_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    assert main(["bpf", "run", "pktcount", "--in", str(bad), "--out",
                 str(tmp_path / "o.pcap")]) == 2
    assert f"{bad}: not a pcap or pcapng file" in capsys.readouterr().err


def test_xdp_flag_against_a_tc_program_is_refused(tmp_path, capsys):
    src = tmp_path / "in.pcap"
    wrpcap(str(src), _mixed_packets())
    assert main(["bpf", "run", "pktcount:pktcount_tc", "--xdp", "--in", str(src), "--out",
                 str(tmp_path / "o.pcap")]) == 2
    assert "pktcount_tc is a sched_cls program" in capsys.readouterr().err
