"""DNS64 from the translator section: the `dns64:` mapping checked at file:line:col, the two
unbound configurations it makes, and the DNS answer parser the lab waits with."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lab import topology
from lab.datapath.registry import DATAPATHS
from lab.datapath.translator import dns64
from lab.datapath.translator import topology as tt
from lab.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def nat46(extra: str = "", dns: str | None = None):
    text = (ROOT / "topologies/nat46.yaml").read_text()
    head, _, _ = text.partition("    dns64:")
    block = dns if dns is not None else \
        "    dns64:\n      zone: {name: ipv4only.lab, A: 198.51.100.10}\n"
    return topology.parse(head + extra + block, file="t.yaml", datapaths=DATAPATHS)


def test_defaults():
    cfg = tt.placement(nat46()).dns64
    assert (cfg.node, cfg.listen, cfg.zone_node, cfg.zone_address) == (
        "gw", "fd00:0:0:1::1", "server4", "198.51.100.10")
    assert cfg.clients == ("node1-pod0", "node1-pod1", "node1-pod2", "node1-pod3")
    assert cfg.synthesized() == ["64:ff9b:1::c633:640a"]


def test_configurations():
    cfg = tt.placement(nat46()).dns64
    resolver = dns64.resolver_conf(cfg, Path("/run/lab/x/dns64"))
    assert 'module-config: "dns64 iterator"' in resolver
    assert "dns64-prefix: 64:ff9b:1::/96" in resolver
    assert "interface: fd00:0:0:1::1" in resolver and 'chroot: ""' in resolver
    assert 'name: "ipv4only.lab."' in resolver and "stub-addr: 198.51.100.10" in resolver
    zone = dns64.zone_conf(cfg, Path("/run/lab/x/dns64"))
    assert 'local-data: "ipv4only.lab. 60 IN A 198.51.100.10"' in zone
    assert "AAAA" not in zone and "interface: 198.51.100.10" in zone


def error_of(dns: str) -> InputError:
    with pytest.raises(InputError) as info:
        nat46(dns=dns)
    return info.value


@pytest.mark.parametrize("dns,words", [
    ("    dns64: {zone: {name: ipv4only.lab, A: 198.51.100.10}, colour: 1}\n",
     "unknown setting 'colour'"),
    ("    dns64: {zone: {name: ipv4only.lab, A: 198.51.100.300}}\n",
     "'198.51.100.300' is not an IPv4 address"),
    ("    dns64: {zone: {name: 'bad name', A: 198.51.100.10}}\n", "is not a domain name"),
    ("    dns64: {zone: {name: ipv4only.lab}}\n", "give the name's IPv4 address"),
    ("    dns64: {zone: {name: x.lab, A: 203.0.113.99}}\n", "say which node serves the zone"),
    ("    dns64: {zone: {name: x.lab, A: 198.51.100.10, node: gw}}\n",
     "needs a server of its own"),
    ("    dns64: {listen: 192.0.2.99, zone: {name: x.lab, A: 198.51.100.10}}\n",
     "not an address of node 'gw'"),
    ("    dns64: {clients: [nobody], zone: {name: x.lab, A: 198.51.100.10}}\n",
     "no node 'nobody'"),
    ("    dns64: {}\n", "give a `zone:`"),
])
def test_errors(dns, words):
    err = error_of(dns)
    assert err.file == "t.yaml" and err.line > 60 and words in err.message, err


def test_a_prefix_is_needed():
    text = (ROOT / "topologies/nat46.yaml").read_text()
    text = text.replace('    prefix: "64:ff9b:1::/96"', "    exclude: []")
    with pytest.raises(InputError) as info:
        topology.parse(text, file="t.yaml", datapaths=DATAPATHS)
    assert "set `prefix`" in info.value.message


def test_answer_parser():
    question = b"\x08ipv4only\x03lab\x00" + struct.pack("!HH", 28, 1)
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 2, 0, 0)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 60, 16)
    from ipaddress import IPv6Address
    answer = header + question + rr + IPv6Address("64:ff9b:1::c633:640a").packed
    # a second record of another type (a CNAME) is skipped
    answer += b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x0c"
    assert dns64._answers(answer, 12 + len(question), 28) == ["64:ff9b:1::c633:640a"]
    refused = struct.pack("!HHHHHH", 7, 0x8185, 1, 0, 0, 0) + question
    with pytest.raises(OSError):
        dns64._answers(refused, 12 + len(question), 28)
