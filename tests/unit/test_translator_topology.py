"""A topology file's `datapath.translator` section: checked when the file loads, each error at
the line and column of the bad value; what it derives into the model (programs, routes,
permanent neighbours, offloads) and the configuration it writes into the maps. Also the core
model's generic permanent `neighbours` and `onlink` routes it uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import topology
from lab.datapath.registry import DATAPATHS
from lab.datapath.translator import topology as tt
from lab.errors import InputError
from lab.topology import Topology

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
nodes:
  client: {role: client, routes: [{dst: default, via: 192.0.2.1}]}
  gw:
    role: gateway
    forwarding: true
    routes: [{dst: "fd00:10:244:1::/64", via: "fd00:0:0:1::2"}]
  node1: {role: node, forwarding: true, routes: [{dst: default6, via: "fd00:0:0:1::1"}],
          pods: {count: 2, ipv6: "fd00:10:244:1::10"}}
links:
  - ends:
      - {node: client, ifname: eth0, addresses: [192.0.2.10/24]}
      - {node: gw, ifname: eth-client, addresses: [192.0.2.1/24]}
  - ends:
      - {node: gw, ifname: eth-node, addresses: ["fd00:0:0:1::1/64"]}
      - {node: node1, ifname: eth0, addresses: ["fd00:0:0:1::2/64"]}
datapath:
  translator:
"""

SECTION = """\
    prefix: "64:ff9b:1::/96"
    eam: [{ipv4: 203.0.113.16/28, ipv6: "fd00:10:244:1::10/124"}]
    own: [{ipv4: 192.0.2.1, ipv6: "fd00:0:0:1::1"}]
"""


def load(text: str) -> Topology:
    return topology.parse(text, file="t.yaml", datapaths=DATAPATHS)


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        load(text)
    return info.value


def test_defaults_find_the_gateway_and_its_devices():
    p = tt.placement(load(BASE + SECTION))
    assert (p.node, p.hook, p.engine, p.dev4, p.dev6) == ("gw", "tc", "bpf", ["eth-client"],
                                                          ["eth-node"])


def test_derived_programs_routes_and_neighbours():
    topo = load(BASE + SECTION)
    gw = topo.nodes["gw"]
    assert [(b.program, b.hook) for b in gw.interfaces["eth-client"].bpf] == [
        ("xlate_ingress", "tc-ingress"), ("xlate64_egress", "tc-egress")]
    assert [(b.program, b.hook) for b in gw.interfaces["eth-node"].bpf] == [
        ("xlate_ingress", "tc-ingress"), ("xlate46_egress", "tc-egress")]
    routes = {r.dst: r for r in gw.routes}
    # the prefix toward the IPv6->IPv4 egress translator, the pods' EAM IPv4 range toward
    # the IPv4->IPv6 one; the kernel's own packets take the own pair's source
    assert (routes["64:ff9b:1::/96"].dev, routes["64:ff9b:1::/96"].via,
            routes["64:ff9b:1::/96"].src) == ("eth-client", tt.NEXT_HOP6, "fd00:0:0:1::1")
    r4 = routes["203.0.113.16/28"]
    assert (r4.dev, r4.via, r4.onlink, r4.src) == ("eth-node", tt.NEXT_HOP4, True, "192.0.2.1")
    assert {(n.address, n.dev) for n in gw.neighbours} == {(tt.NEXT_HOP6, "eth-client"),
                                                           (tt.NEXT_HOP4, "eth-node")}
    assert not topo.nodes["client"].interfaces["eth0"].offloads


def test_derived_model_round_trips_through_the_state_record():
    topo = load(BASE + SECTION)
    again = Topology.from_json(topo.to_json())
    assert again.nodes["gw"].neighbours == topo.nodes["gw"].neighbours
    assert again.nodes["gw"].routes == topo.nodes["gw"].routes
    # and the section still resolves against the derived model (lab status, statistics)
    assert tt.placement(again).routes == tt.placement(topo).routes


@pytest.mark.parametrize("hook,ingress,egress", [
    ("tcx", ("xlate_ingress", "tcx-ingress"), "tcx-egress"),
    ("xdp", ("xlate_xdp", "xdp"), "tc-egress")])
def test_hooks(hook, ingress, egress):
    topo = load(BASE + f"    hook: {hook}\n" + SECTION)
    gw = topo.nodes["gw"]
    assert (gw.interfaces["eth-node"].bpf[0].program,
            gw.interfaces["eth-node"].bpf[0].hook) == ingress
    assert gw.interfaces["eth-node"].bpf[1].hook == egress
    client_end = topo.nodes["client"].interfaces["eth0"]
    if hook == "xdp":  # XDP cannot tell partial checksums: the feeding devices finish them
        assert client_end.offloads == {"tx": False}
        assert topo.nodes["node1"].interfaces["eth0"].offloads == {"tx": False}
        assert not client_end.bpf          # no icmp_errors: no XDP_TX to deliver
    else:
        assert client_end.offloads == {}


def test_xdp_with_icmp_errors_gives_the_peers_an_xdp_program():
    topo = load(BASE + "    hook: xdp\n    icmp_errors: true\n" + SECTION)
    assert [(b.object, b.hook) for b in topo.nodes["client"].interfaces["eth0"].bpf] == [
        ("pktcount", "xdp")]


def test_engine_none_derives_nothing():
    topo = load(BASE + "    engine: none\n" + SECTION)
    assert not any(i.bpf for i in topo.nodes["gw"].interfaces.values())
    assert not topo.nodes["gw"].neighbours


def test_effective_config_adds_what_the_topology_implies():
    text = BASE.replace("addresses: [192.0.2.1/24]", "addresses: [192.0.2.1/24, 192.0.2.2/24]")
    topo = load(text + SECTION + "    allow: [192.0.2.10/32]\n    icmp_errors: true\n")
    cfg = tt.effective_config(topo)
    assert [str(n) for n in cfg.exclude] == ["192.0.2.2/32"]   # the gateway's, not own
    assert [str(n) for n in cfg.allow] == ["192.0.2.10/32", "192.0.2.1/32"]
    assert (str(cfg.icmp_source4), str(cfg.icmp_source6)) == ("192.0.2.1", "fd00:0:0:1::1")


def test_addresses_across_the_translator():
    topo = load(BASE + SECTION)
    assert tt.address_of(topo, "192.0.2.10") == "64:ff9b:1::c000:20a"
    assert tt.address_of(topo, "fd00:10:244:1::11") == "203.0.113.17"


def test_eam_of_ipv4_hosts_routes_their_ipv6_range_to_dev4():
    topo = load(BASE + SECTION.replace(
        "eam: [", "eam: [{ipv4: 192.0.2.0/28, ipv6: \"2001:db8:4::/124\"}, "))
    routes = {r.dst: r for r in topo.nodes["gw"].routes}
    assert routes["2001:db8:4::/124"].dev == "eth-client"


@pytest.mark.parametrize("extra,line,col,words", [
    ("    node: nope\n", 18, 11, "no node 'nope'"),
    ("    node: client\n", 18, 11, "does not have addresses of both families"),
    ("    hook: tcxx\n", 18, 11, "unknown hook 'tcxx'"),
    ("    engine: vpp\n", 18, 13, "unknown engine 'vpp'"),
    ("    dev4: eth9\n", 18, 11, "no interface 'eth9'"),
    ("    dev4: [eth-client, eth9]\n", 18, 24, "no interface 'eth9'"),
    ("    dev6: eth-client\n", 18, 11, "cannot be on both sides"),
    ("    mtu6: 100\n", 18, 11, "not an MTU"),
    ("    colour: blue\n", 18, 5, "unknown setting"),
])
def test_errors_point_at_the_bad_value(extra, line, col, words):
    err = error_of(BASE + extra + SECTION)
    assert (err.file, err.line, err.col) == ("t.yaml", line, col), err
    assert words in err.message


def test_bad_prefix_is_reported_at_the_prefix():
    err = error_of(BASE + SECTION.replace("64:ff9b:1::/96", "64:ff9b:1::/95"))
    assert (err.line, err.col) == (18, 13) and "prefix" in err.message


def test_own_pair_must_be_the_gateways():
    err = error_of(BASE + SECTION.replace("ipv4: 192.0.2.1,", "ipv4: 192.0.2.99,"))
    assert err.line == 20 and "192.0.2.99 is not an address of node 'gw'" in err.message


def test_eam_whose_real_side_is_unknown():
    err = error_of(BASE + SECTION.replace("203.0.113.16/28", "192.0.2.0/28"))
    assert err.line == 19 and "cannot tell which side" in err.message


def test_section_refuses_the_object_attached_by_hand():
    text = BASE.replace("{node: gw, ifname: eth-client, addresses: [192.0.2.1/24]}",
                        "{node: gw, ifname: eth-client, addresses: [192.0.2.1/24], bpf: "
                        "[{object: xlate, program: xlate_ingress, hook: ingress}]}")
    err = error_of(text + SECTION)
    assert "the translator section attaches it" in err.message


def test_section_without_a_single_gateway():
    err = error_of(BASE.replace("role: gateway", "role: router") + SECTION)
    assert "say which node translates" in err.message


def test_reference_topology():
    topo = topology.load(ROOT / "topologies/nat46.yaml", datapaths=DATAPATHS)
    p = tt.placement(topo)
    assert p.dev4 == ["eth-client", "eth-server"] and p.dev6 == ["eth-node"]
    assert [b.program for b in topo.nodes["gw"].interfaces["eth-server"].bpf] == [
        "xlate_ingress"]


# --- the generic pieces of the model ----------------------------------------------------------

NEIGH = """\
nodes:
  a:
    role: router
    neighbours:
      - {address: "fe80::ff", lladdr: "02:00:00:00:00:FF", dev: eth0}
    routes:
      - {dst: 203.0.113.0/24, via: 169.254.0.1, dev: eth0, onlink: true}
  b: {role: router}
links:
  - ends:
      - {node: a, ifname: eth0, addresses: [192.0.2.1/24]}
      - {node: b, ifname: eth0, addresses: [192.0.2.2/24]}
"""


def test_neighbours_and_onlink_routes_in_the_model():
    topo = load(NEIGH)
    n = topo.nodes["a"].neighbours[0]
    assert (n.address, n.lladdr, n.dev, n.family) == ("fe80::ff", "02:00:00:00:00:ff", "eth0", 6)
    assert topo.nodes["a"].routes[0].onlink


@pytest.mark.parametrize("old,new,line,words", [
    ("dev: eth0}\n    routes", "dev: eth7}\n    routes", 5, "no interface 'eth7'"),
    ('"fe80::ff"', '"ff02::1"', 5, "cannot be a neighbour"),
    ('"fe80::ff"', '"fe80::zz"', 5, "not an address"),
    ("via: 169.254.0.1, dev: eth0, onlink", "dev: eth0, onlink", 7, "needs `via` and `dev`"),
])
def test_neighbour_and_onlink_errors(old, new, line, words):
    err = error_of(NEIGH.replace(old, new))
    assert err.line == line and words in err.message, err


# --- engine tayga -------------------------------------------------------------------------------

def test_tayga_configuration():
    from lab.datapath.translator import tayga
    topo = topology.load(ROOT / "topologies/nat46-bench.yaml", datapaths=DATAPATHS)
    p = tt.placement(topo)
    text = tayga.conf(p.config, Path("/run/lab/x/tayga"))
    assert "prefix 2001:db8:64::/96\n" in text
    assert "map 203.0.113.16/28 fd00:10:244:1::10/124\n" in text
    assert "192.0.2.1" not in text          # own pairs are our translator's notion
    assert tayga.check_prefix(p.config.prefix) is None


@pytest.mark.parametrize("prefix,refused", [("64:ff9b:1::/96", True), ("64:ff9b:1::/48", True),
                                            ("64:ff9b::/96", False), ("2001:db8:64::/96", False)])
def test_tayga_refuses_prefixes_inside_the_reserved_range(prefix, refused):
    from lab.datapath.translator import tayga
    from lab.datapath.translator.addrmap import Rfc6052Prefix
    assert (tayga.check_prefix(Rfc6052Prefix.parse(prefix)) is not None) == refused


def test_engine_tayga_refuses_what_tayga_lacks():
    err = error_of(BASE + "    engine: tayga\n" + SECTION + "    allow: [192.0.2.10/32]\n")
    assert (err.line, err.col) == (22, 5) and "engine tayga has no 'allow'" in err.message
    err = error_of(BASE + "    engine: tayga\n" + SECTION)     # 64:ff9b:1::/96
    assert err.line == 19 and "TAYGA refuses 64:ff9b:1::/96" in err.message


def test_engine_tayga_derives_nothing_into_the_model():
    text = BASE + "    engine: tayga\n" + SECTION.replace("64:ff9b:1::/96", "2001:db8:64::/96")
    topo = load(text)
    assert not any(i.bpf for i in topo.nodes["gw"].interfaces.values())
    assert [r.dst for r in tt.placement(topo).routes] == ["2001:db8:64::/96", "203.0.113.16/28"]


def test_hosts_of_a_node():
    topo = topology.load(ROOT / "topologies/nat46-bench.yaml", datapaths=DATAPATHS)
    assert topo.nodes["client"].hosts == {"pod0.bench": "203.0.113.16"}
    err = error_of(NEIGH.replace("role: router\n    neighbours",
                                 "role: router\n    hosts: {x: nope}\n    neighbours"))
    assert err.line == 4 and "'nope' is not an address" in err.message
