"""`lab xlate`: a pcap through the translator, configured from the command line."""

import json

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from lab.commands import main

from xlate_helpers import CLIENT4, CLIENT6, EAM4, EAM6, ETH, PREFIX, SERVER4, SERVER6

pytestmark = pytest.mark.root

ARGS = ["--prefix", PREFIX, "--eam", f"{EAM6}={EAM4}"]


@pytest.mark.parametrize("xdp", [False, True], ids=["tc", "xdp"])
def test_translates_a_capture(tmp_path, capsys, xdp):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), [ETH / IP(src=CLIENT4, dst=SERVER4) / TCP(dport=80, flags="S"),
                      ETH / IPv6(src=SERVER6, dst=CLIENT6) / UDP(sport=53) / b"answer",
                      ETH / IP(src="192.0.2.16", dst=SERVER4) / UDP(),   # refused below
                      ETH / IP(src=CLIENT4, dst="203.0.113.1", proto=44) / (b"x" * 8)])
    rc = main(["xlate", *ARGS, "--allow", "192.0.2.0/28", "--in", str(src), "--out", str(dst),
               *(["--xdp"] if xdp else []), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["verdict"] for p in report["packets"]] == ["passed", "passed", "dropped",
                                                         "dropped"]
    assert report["outcomes"] == {"done46": 1, "done64": 1, "drop_allow4": 1, "drop_proto": 1}
    assert report["config"]["allow"] == ["192.0.2.0/28"]
    out = rdpcap(str(dst))
    assert out[0][IPv6].src == CLIENT6 and out[0][IPv6].dst == SERVER6
    assert out[1][IP].src == SERVER4 and bytes(out[1][UDP].payload) == b"answer"


def test_raw_ip_capture_and_text_summary(tmp_path, capsys):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.pcap"
    wrpcap(str(src), [IP(src=CLIENT4, dst=SERVER4) / UDP() / b"raw"], linktype=101)
    assert main(["xlate", *ARGS, "--in", str(src), "--out", str(dst)]) == 0
    text = capsys.readouterr().out
    assert "1 passed" in text and "translator: 1 done46" in text
    (pkt,) = rdpcap(str(dst))
    assert IPv6(bytes(pkt)).dst == SERVER6


@pytest.mark.parametrize("args,message", [
    (["--prefix", "2001:db8::/33"], "--prefix: "),
    (["--eam", "2001:db8::/120"], "--eam: "),
    (["--eam", "2001:db8::/112=10.0.0.0/24"], "same length"),
    (["--allow", "10.0.0.1/8"], "--allow: "),
    ([], "nothing to translate"),
])
def test_bad_options_exit_2_with_the_reason(tmp_path, capsys, args, message):
    src = tmp_path / "in.pcap"
    wrpcap(str(src), [Ether() / IP()])
    rc = main(["xlate", *args, "--in", str(src), "--out", str(tmp_path / "out.pcap")])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.pcap").exists()


def test_bad_capture_exits_2(tmp_path, capsys):
    src = tmp_path / "in.pcap"
    src.write_bytes(b"not a pcap at all")
    assert main(["xlate", *ARGS, "--in", str(src), "--out", str(tmp_path / "o.pcap")]) == 2
    assert str(src) in capsys.readouterr().err
