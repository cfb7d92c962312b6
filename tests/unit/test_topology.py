"""Topology files: schema and semantic errors carry file:line:col; pods expand; model round-trips."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab import topology
from lab.datapath.registry import DATAPATHS
from lab.errors import EXIT_USAGE, InputError
from lab.topology import Topology

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
nodes:
  a: {role: client}
  b: {role: gateway, forwarding: true}
links:
  - ends:
      - {node: a, ifname: eth0, addresses: [192.0.2.2/24]}
      - {node: b, ifname: eth0, addresses: [192.0.2.1/24]}
"""


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        topology.parse(textwrap.dedent(text), file="t.yaml", datapaths=DATAPATHS)
    assert info.value.exit_code == EXIT_USAGE
    return info.value


def test_good_file_loads():
    topo = topology.parse(GOOD, datapaths=DATAPATHS)
    assert set(topo.nodes) == {"a", "b"}
    assert topo.node("b").sysctls["net.ipv4.ip_forward"] == "1"
    a, b = topo.links[0].a, topo.links[0].b
    assert (a.ifindex, b.ifindex) == (2, 2)
    assert (a.peer_node, a.peer_ifname) == ("b", "eth0")


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_reference_topologies_load(path):
    topo = topology.load(path, datapaths=DATAPATHS)
    assert topo.links


def test_unknown_key_points_at_the_key_and_suggests():
    err = error_of(GOOD.replace("  b: {role: gateway, forwarding: true}",
                                "  b:\n    role: gateway\n    fowarding: true"))
    assert (err.file, err.line, err.col) == ("t.yaml", 6, 5)
    assert "unknown key 'fowarding'" in err.message and "did you mean 'forwarding'" in err.message


def test_bad_address():
    err = error_of(GOOD.replace("192.0.2.2/24", "192.0.2.300/24"))
    assert err.line == 7 and "'192.0.2.300/24' is not an IPv4 or IPv6 address" in err.message


def test_address_without_prefix_length():
    err = error_of(GOOD.replace("192.0.2.2/24", "192.0.2.2"))
    assert err.line == 7 and "needs a prefix length" in err.message


def test_duplicate_node_name():
    err = error_of(GOOD.replace("  b: {role: gateway, forwarding: true}",
                                "  b: {role: gateway}\n  a: {role: server}"))
    assert err.line == 5 and "duplicate key 'a' (first defined at line 3)" in err.message


def test_link_to_unknown_node():
    err = error_of(GOOD.replace("{node: b,", "{node: c,"))
    assert err.line == 8 and "link to unknown node 'c'" in err.message


def test_ipv4_on_an_ipv6_only_role():
    err = error_of(GOOD.replace("{role: client}", "{role: pod}"))
    assert err.line == 7
    assert "role 'pod', which is IPv6-only, but is given an IPv4 address" in err.message


def test_ipv4_route_on_node_role():
    text = """\
    nodes:
      n:
        role: node
        routes: [{dst: 10.0.0.0/8, dev: eth0}]
      g: {role: gateway}
    links:
      - ends: [{node: n, ifname: eth0}, {node: g, ifname: eth0}]
    """
    err = error_of(text)
    assert err.line == 4 and "IPv4 route" in err.message


def test_duplicate_address():
    err = error_of(GOOD.replace("192.0.2.1/24", "192.0.2.2/25"))
    assert err.line == 8 and "address 192.0.2.2 is already used by a:eth0 (line 7)" in err.message


def test_route_to_unknown_device():
    err = error_of(GOOD.replace("  a: {role: client}",
                                "  a:\n    role: client\n    routes: [{dst: default, dev: eth9}]"))
    assert err.line == 5 and "node 'a' has no interface 'eth9'" in err.message


def test_wrong_type_and_enum():
    assert "expected integer" in error_of(GOOD.replace(
        "  - ends:", "  - mtu: big\n    ends:")).message
    err = error_of(GOOD.replace("role: client", "role: switch"))
    assert err.line == 3 and "'switch' is not one of" in err.message


def test_yaml_syntax_error_has_position():
    err = error_of("nodes:\n  a: {role: client\n")
    assert err.line is not None and "YAML syntax error" in err.message


def test_pods_expand_compactly():
    text = """\
    nodes:
      gw: {role: gateway, forwarding: true}
      node1:
        role: node
        pods: {count: 500, ipv6: "fd00:10:244::10"}
    links:
      - ends: [{node: gw, ifname: eth0, addresses: ["fd00::1/64"]},
               {node: node1, ifname: eth0, addresses: ["fd00::2/64"]}]
    """
    topo = topology.parse(textwrap.dedent(text), datapaths=DATAPATHS)
    pods = topo.pods("node1")
    assert len(pods) == 500 and len(topo.links) == 501
    last = topo.node("node1-pod499")
    assert [str(a) for a in last.addresses()] == ["fd00:10:244::203/128"]
    assert last.routes[0].dst == "::/0" and last.routes[0].via == "fe80::1"
    host = topo.interface("node1", "lxc499")
    assert host.peer_node == "node1-pod499" and str(host.addresses[0]) == "fe80::1/64"
    assert topo.node("node1").sysctls["net.ipv6.conf.all.forwarding"] == "1"


def test_pods_refuse_ipv4_and_non_node_roles():
    err = error_of("nodes:\n  n:\n    role: node\n    pods: {count: 2, ipv6: 10.0.0.1}\n")
    assert "pods are IPv6-only" in err.message and err.line == 4
    err = error_of("nodes:\n  n:\n    role: server\n    pods: {count: 2, ipv6: 'fd00::1'}\n")
    assert "only nodes of role 'node' run pods" in err.message


def test_lab_name_from_file_stem(tmp_path):
    path = tmp_path / "My_Lab.yaml"
    path.write_text(GOOD.replace("name: t\n", ""))
    assert topology.load(path, datapaths=DATAPATHS).name == "my-lab"
    assert topology.load(path, name="other", datapaths=DATAPATHS).name == "other"


def test_json_round_trip_is_lossless():
    topo = topology.load(ROOT / "topologies" / "nat46.yaml", datapaths=DATAPATHS)
    again = Topology.from_json(topo.to_json())
    assert again.to_json() == topo.to_json()
    assert again.interface("gw", "eth-node").addresses == topo.interface("gw", "eth-node").addresses
