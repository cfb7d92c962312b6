"""A topology file's `datapath.gateway` section: checked when the file loads, each error at
the line and column of the bad value; defaults from the gateway node's own addresses."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from lab import topology
from lab.datapath.gateway.topology import config_for, gateway_nodes
from lab.datapath.registry import DATAPATHS
from lab.errors import InputError

BASE = """\
nodes:
  client: {role: client}
  gw: {role: gateway}
  node1: {role: node}
links:
  - ends:
      - {node: client, ifname: eth0, addresses: [192.0.2.10/24]}
      - node: gw
        ifname: eth-client
        addresses: [192.0.2.1/24]
        bpf: [{object: gateway, program: gw_ingress, hook: ingress}]
  - ends:
      - {node: gw, ifname: eth-node, addresses: ["fd00:0:0:1::1/64"]}
      - {node: node1, ifname: eth0, addresses: ["fd00:0:0:1::2/64"]}
datapath:
  gateway:
"""

SERVICE = """\
    services:
      - frontend: {address: 203.0.113.80, port: 80}
        backends:
          - {address: "fd00:10:244:1::10", port: 8080}
"""


def load(text):
    return topology.parse(text, file="t.yaml", datapaths=DATAPATHS)


def test_defaults_come_from_the_gateway_node():
    topo = load(BASE + SERVICE)
    assert gateway_nodes(topo) == ["gw"]
    cfg = config_for(topo, "gw")
    assert cfg.settings.snat4 == IPv4Address("192.0.2.1")
    assert cfg.settings.snat6 == IPv6Address("fd00:0:0:1::1")
    assert cfg.services[0].type == "NAT46" and cfg.conntrack_entries is None
    assert cfg.max_services is None
    assert config_for(load(BASE + "    max_services: 10240\n" + SERVICE), "gw").max_services \
        == 10240


@pytest.mark.parametrize("section, line, col, words", [
    ("    services:\n      - frontend: {address: 203.0.113.80, port: 80}\n"
     "        backends:\n          - {address: \"fd00::1\", port: 8080, weight: 0}\n",
     20, 54, "out of range (1..65535)"),
    ("    services:\n      - frontend: {address: 203.0.113.999, port: 80}\n",
     18, 29, "not an IPv4 or IPv6 address"),
    ("    settings: {table_size: 1000}\n", 17, 28, "not a prime"),
    ("    settings: {snat6: 192.0.2.1}\n", 17, 23, "not an IPv6 address"),
    ("    conntrack_entries: 10\n", 17, 24, "out of range"),
    ("    max_services: 1\n", 17, 19, "out of range"),
    ("    max_services: 2\n" + SERVICE + "      - frontend: {address: 203.0.113.81, port: 80}\n",
     17, 19, "2 services do not fit max_services 2"),
    ("    colour: red\n", 17, 5, "unknown field 'colour'"),
    (SERVICE + "      - frontend: {address: 203.0.113.80, port: 80}\n", 21, 19,
     "already services[0]"),
    (SERVICE.replace("203.0.113.80", "192.0.2.1"), 18, 29, "SNAT address"),
])
def test_errors_point_at_the_bad_value(section, line, col, words):
    with pytest.raises(InputError) as e:
        load(BASE + section)
    assert (e.value.file, e.value.line, e.value.col) == ("t.yaml", line, col), e.value
    assert words in e.value.message


def test_backend_family_needs_a_snat_address_of_it():
    text = BASE.replace('addresses: ["fd00:0:0:1::1/64"]', 'addresses: ["fe80::1/64"]') + SERVICE
    with pytest.raises(InputError, match="no IPv6 SNAT address") as e:
        load(text)
    assert e.value.line == 20


def test_a_section_without_a_gateway_is_refused():
    text = BASE.replace("        bpf: [{object: gateway, program: gw_ingress, hook: ingress}]\n",
                        "") + SERVICE
    with pytest.raises(InputError, match="no interface attaches the 'gateway' object") as e:
        load(text)
    assert e.value.line == 15   # the section's key


def test_reference_topology_loads():
    from pathlib import Path
    topo = topology.load(Path(__file__).parents[2] / "topologies/gateway.yaml", datapaths=DATAPATHS)
    cfg = config_for(topo, "gw")
    assert [b.weight for b in cfg.services[0].backends] == [1, 1, 2, 4]
