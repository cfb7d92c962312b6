"""The offline runner's file handling: what it reads, refuses, wraps and writes."""

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, rdpcap, wrpcap

from lab.bpf import pcap
from lab.errors import InputError


def test_reads_ethernet_and_raw_ip(tmp_path):
    eth = tmp_path / "eth.pcap"
    wrpcap(str(eth), [Ether() / IP() / UDP(), Ether() / IPv6() / UDP()])
    cap = pcap.read(str(eth))
    assert cap.linktype == 1 and len(cap.records) == 2
    raw = tmp_path / "raw.pcap"
    wrpcap(str(raw), [IP() / UDP()], linktype=101)
    assert pcap.read(str(raw)).linktype == 101


def test_reads_pcapng(tmp_path):
    f = tmp_path / "x.pcapng"
    with PcapNgWriter(str(f)) as w:
        w.write(Ether() / IP() / UDP())
    cap = pcap.read(str(f))
    assert cap.linktype == 1 and bytes(cap.records[0].data) == bytes(Ether() / IP() / UDP())


@pytest.mark.parametrize("content, message", [
    (b"hello, this is not a capture", "not a pcap or pcapng file"),
    (b"", "not a pcap or pcapng file"),
])
def test_refuses_non_captures(tmp_path, content, message):
    f = tmp_path / "bad.pcap"
    f.write_bytes(content)
    with pytest.raises(InputError) as e:
        pcap.read(str(f))
    assert str(e.value).startswith(f"{f}: ") and message in str(e.value)
    assert e.value.exit_code == 2


def test_refuses_truncated_record(tmp_path):
    f = tmp_path / "trunc.pcap"
    wrpcap(str(f), [Ether() / IP() / UDP() / (b"x" * 100)])
    f.write_bytes(f.read_bytes()[:-30])
    with pytest.raises(InputError, match=r"packet 1: truncated record \(112 of 142 bytes\)"):
        pcap.read(str(f))


def test_refuses_unsupported_link_type(tmp_path):
    f = tmp_path / "usb.pcap"
    pcap.write(str(f), 189, False, [pcap.Record(b"\x00" * 20, 0, 0, 20)])
    with pytest.raises(InputError, match="link type 189 is not supported"):
        pcap.read(str(f))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        pcap.read(str(tmp_path / "nope.pcap"))


def test_wrap_follows_ip_version():
    v4, v6 = bytes(IP() / UDP()), bytes(IPv6() / UDP())
    assert pcap.wrap_ip(v4)[12:14] == b"\x08\x00"
    assert pcap.wrap_ip(v6)[12:14] == b"\x86\xdd"
    assert pcap.wrap_ip(b"\x00garbage", pcap.LINKTYPE_IPV4)[12:14] == b"\x08\x00"
    assert pcap.unwrap_ip(pcap.wrap_ip(v6)) == v6
    with pytest.raises(ValueError, match="IP version 0"):
        pcap.wrap_ip(b"\x00garbage")


def test_output_link_type_follows_ip_version_for_per_version_files():
    v4 = pcap.Record(bytes(IP()), 0, 0, 20)
    v6 = pcap.Record(bytes(IPv6()), 0, 0, 40)
    assert pcap._output_linktype(pcap.LINKTYPE_IPV4, [v6]) == pcap.LINKTYPE_IPV6
    assert pcap._output_linktype(pcap.LINKTYPE_IPV4, [v4, v6]) == pcap.LINKTYPE_RAW
    assert pcap._output_linktype(pcap.LINKTYPE_RAW, [v6]) == pcap.LINKTYPE_RAW
    assert pcap._output_linktype(pcap.LINKTYPE_ETHERNET, [v4]) == pcap.LINKTYPE_ETHERNET


def test_written_pcap_is_what_scapy_writes(tmp_path):
    pkts = [Ether() / IP() / UDP() / b"a", Ether() / IPv6() / UDP() / b"bb"]
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    for i, p in enumerate(pkts):
        p.time = 1700000000 + i + 0.25
    wrpcap(str(theirs), pkts)
    cap = pcap.read(str(theirs))
    pcap.write(str(ours), cap.linktype, cap.nano, cap.records, cap.snaplen)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [bytes(p) for p in rdpcap(str(ours))] == [bytes(p) for p in pkts]
    magic, = struct.unpack("=I", ours.read_bytes()[:4])
    assert magic == 0xA1B2C3D4
