"""The legacy node's `kube_proxy:` section: defaults, and every refusal at its line and column
before anything is built (services beyond what the Service CIDR or the machine can hold,
IPv4 networks on IPv6-only nodes, exposed Services that name no pod of the node)."""

from __future__ import annotations

import pytest

from lab.datapath.kubeproxy import config

from pod_node import error_of, topo_of


def test_defaults():
    topo = topo_of("routing: legacy\n")
    setup = config.setup_for(topo, "node1")
    c = setup.config
    assert (c.mode, c.backend, c.services, c.endpoints) == ("iptables", "nft", 0, 1)
    assert c.service_cidr == "fd00:10:96::/108" and c.cluster_cidr == "fd00:10:244::/56"
    assert setup.exposed == () and setup.node_ips == ("fd00:0:0:1::2",)
    assert config.legacy_nodes(topo) == ["node1"]


def test_exposed_services_resolve_their_pods():
    topo = topo_of("""\
        routing: legacy
        kube_proxy:
          mode: nftables
          services: 100
          expose:
            - {name: web, cluster_ip: "fd00:10:96::a", ports: [80, 443],
               endpoints: [node1-pod0, node1-pod1]}
        """)
    (web,) = config.setup_for(topo, "node1").exposed
    assert web.endpoints == ("fd00:10:244:1::10", "fd00:10:244:1::11")
    assert [p.name_string for p in web.ports_of()] == ["lab/web:p80", "lab/web:p443"]


@pytest.mark.parametrize("pods, line, col, message", [
    ("routing: host\nkube_proxy: {mode: iptables}\n", 10, 7, "set `routing: legacy`"),
    ("routing: legacy\nkube_proxy: {mode: ipvs}\n", 10, 26, "ipvs"),
    ("routing: legacy\nkube_proxy: {service_cidr: 10.96.0.0/16}\n", 10, 34, "IPv4"),
    ("routing: legacy\nkube_proxy: {cluster_cidr: fd00:10:96::/64}\n", 10, 34,
     "overlaps the cluster CIDR"),
    ("routing: legacy\nkube_proxy: {service_cidr: 'fd00:10:96::/120', services: 300}\n",
     10, 64, "do not fit the Service CIDR fd00:10:96::/120 (255 ClusterIPs)"),
    ("routing: legacy\nkube_proxy: {endpoint_cidr: 'fd00::/120', services: 100, "
     "endpoints: 3}\n", 10, 75, "100 x 3 endpoints do not fit"),
    ("routing: legacy\nkube_proxy:\n  expose: [{name: a, cluster_ip: 'fd00:99::1', "
     "ports: [80], endpoints: [node1-pod0]}]\n", 11, 40, "outside the Service CIDR"),
    ("routing: legacy\nkube_proxy:\n  expose: [{name: a, cluster_ip: 'fd00:10:96::1', "
     "ports: [80], endpoints: [gw]}]\n", 11, 82, "'gw' is not a pod of node node1"),
    ("routing: legacy\nkube_proxy:\n  expose: [{name: a, cluster_ip: 'fd00:10:96::1', "
     "ports: [80, 80], endpoints: [node1-pod0]}]\n", 11, 64, "listed twice"),
    ("routing: legacy\nkube_proxy:\n  expose:\n    - {name: a, cluster_ip: 'fd00:10:96::1', "
     "ports: [80], endpoints: [node1-pod0]}\n    - {name: b, cluster_ip: 'fd00:10:96::1', "
     "ports: [81], endpoints: [node1-pod0]}\n", 13, 35, "already the ClusterIP of expose[0]"),
])
def test_refusals_at_their_place(pods, line, col, message):
    e = error_of(pods)
    assert message in e.message
    assert (e.line, e.col) == (line, col), e


def test_more_services_than_the_machine_can_hold_are_refused():
    # no machine holds a million services of a thousand endpoints: refused as the file loads
    e = error_of("routing: legacy\nkube_proxy: {services: 1000000, endpoints: 1000}\n")
    assert "GiB available, so at most about" in e.message and (e.line, e.col) == (10, 30)
    # what fits depends on the machine's available memory
    topo = topo_of("routing: legacy\nkube_proxy: {services: 10000, endpoints: 4}\n")
    with pytest.raises(config.ConfigError, match=r"at most about \d+ services fit") as info:
        config.setup_for(topo, "node1", memory=256 << 20)
    assert info.value.path == ("services",)
    config.setup_for(topo, "node1", memory=64 << 30)


def test_memory_estimate_grows_with_rules():
    assert config.memory_needed("iptables", 10000, 2) > config.memory_needed("iptables", 1000, 2)
    assert config.memory_needed("nftables", 100, 1) > config.memory_needed("iptables", 100, 1)
