"""kube-proxy's rules as lab.datapath.kubeproxy writes them, against kube-proxy's own output.

The expected chain names and lines are those kube-proxy prints for the same services (its
proxier tests and the nftables announcement use ns1/svc1:p80 at 172.30.0.41 with endpoints
10.180.0.1:80 and 10.180.0.2:80): a user comparing `iptables-save` of a lab node with a real
node must see the same thing.
"""

import re

import pytest

from lab.datapath.kubeproxy import iptables, nftables
from lab.datapath.kubeproxy.services import (ClusterConfig, Endpoint, ServiceError,
                                             ServicePort, Sweep, capacity, synthesize)

EP1, EP2 = Endpoint("10.180.0.1", 80), Endpoint("10.180.0.2", 80)
SVC1 = ServicePort("ns1", "svc1", "p80", "tcp", "172.30.0.41", 80, (EP1, EP2))
V4 = ClusterConfig(4, cluster_cidr="10.0.0.0/8", service_cidr="172.30.0.0/16")
V6 = ClusterConfig(6, cluster_cidr="fd00:10:244::/56", service_cidr="fd00:10:96::/108",
                   node_ips=("fd00:0:0:1::2",))


def v6_service(endpoints=2, node_port=None):
    eps = tuple(Endpoint(f"fd00:10:244:1::{10 + i}", 8080) for i in range(endpoints))
    return ServicePort("lab", "web", "http", "tcp", "fd00:10:96::a", 80, eps, node_port)


# -- names --------------------------------------------------------------------------------------

def test_iptables_chain_names_are_kube_proxys():
    assert SVC1.svc_chain == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert SVC1.sep_chain(EP1) == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert SVC1.sep_chain(EP2) == "KUBE-SEP-LXVODXWDISEETFEF"
    assert SVC1.ext_chain == "KUBE-EXT-XPGD46QRK7WJZT7O"


def test_nftables_chain_names_are_kube_proxys():
    assert SVC1.nft_service_chain == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert SVC1.nft_endpoint_chain(EP1) == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_ipv6_endpoints_are_bracketed_and_dotted_in_nft_names():
    ep = Endpoint("fd00:10:244:1::10", 8080)
    assert str(ep) == "[fd00:10:244:1::10]:8080"
    svc = v6_service()
    assert "__fd00.10.244.1..10/8080" in svc.nft_endpoint_chain(svc.endpoints[0])
    # the hash covers the bracketed form, so it differs from the bare one's
    bare = ServicePort("lab", "web", "http", "tcp", "fd00:10:96::a", 80)
    assert svc.sep_chain(ep) != bare._iptables_hash("fd00:10:244:1::10:8080")


def test_masquerade_mark_is_formatted_as_kube_proxy_does():
    assert V4.masquerade_mark == "0x004000"
    assert ClusterConfig(4, masquerade_bit=0).masquerade_mark == "0x000001"


# -- iptables -----------------------------------------------------------------------------------

def test_iptables_sync_of_one_service():
    text = iptables.Ruleset([SVC1], V4).sync()
    nat = text.split("*nat\n")[1]
    assert nat.splitlines()[:7] == [
        ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]", ":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]",
        ":KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]", ":KUBE-SEP-LXVODXWDISEETFEF - [0:0]"]
    for line in [
        '-A KUBE-POSTROUTING -m mark ! --mark 0x004000/0x004000 -j RETURN',
        '-A KUBE-POSTROUTING -j MARK --xor-mark 0x004000',
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        '-j MASQUERADE --random-fully',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x004000',
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
        '-d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp '
        '-p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" '
        '-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ',
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" '
        '-j KUBE-SEP-LXVODXWDISEETFEF',
        '-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 '
        '-j KUBE-MARK-MASQ',
        '-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT '
        '--to-destination 10.180.0.1:80',
    ]:
        assert line in nat.splitlines(), line
    # the NodePorts jump is the last rule of KUBE-SERVICES, after every service
    services = [ln for ln in nat.splitlines() if ln.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 "
                                 "-j KUBE-NODEPORTS")
    assert text.rstrip().endswith("COMMIT") and text.count("COMMIT") == 2


def test_probabilities_spread_evenly():
    assert iptables.probability(3) == "0.3333333333"
    svc = v6_service(endpoints=4)
    rules = [ln for ln in iptables.Ruleset([svc], V6).sync().splitlines()
             if ln.startswith(f"-A {svc.svc_chain}") and "KUBE-SEP" in ln]
    probs = [re.search(r"--probability (\S+)", r) for r in rules]
    assert [p.group(1) if p else None for p in probs] == \
        ["0.2500000000", "0.3333333333", "0.5000000000", None]


def test_ipv6_rules_and_no_localhost_nodeports():
    svc = v6_service(node_port=30080)
    text = iptables.Ruleset([svc], V6).sync()
    assert f"--to-destination [fd00:10:244:1::10]:8080" in text
    assert "! -s fd00:10:244::/56 -j KUBE-MARK-MASQ" in text
    assert "-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS" in text
    assert (f"-A KUBE-NODEPORTS -m comment --comment lab/web:http -m tcp -p tcp --dport 30080 "
            f"-j {svc.ext_chain}") in text
    assert f"-A {svc.ext_chain} -j {svc.svc_chain}" in text
    assert iptables.restore_command(6)[0] == "ip6tables-nft-restore"
    assert iptables.restore_command(4, "legacy")[0] == "iptables-legacy-restore"
    assert "--noflush" in iptables.restore_command(4)


def test_initial_batch_jumps_from_the_builtin_chains():
    text = iptables.Ruleset([SVC1], V4).initial()
    assert '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' \
        in text
    assert '-I POSTROUTING -m comment --comment "kubernetes postrouting rules" ' \
           '-j KUBE-POSTROUTING' in text
    assert "-I FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD" \
        in text
    assert "-I PREROUTING" not in iptables.Ruleset([SVC1], V4).sync()


def test_service_without_endpoints_is_rejected_in_filter():
    empty = ServicePort("ns1", "svc2", "p80", "tcp", "172.30.0.42", 80)
    text = iptables.Ruleset([empty], V4).sync()
    filt = text.split("*nat")[0]
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc2:p80 has no endpoints" -m tcp '
            '-p tcp -d 172.30.0.42 --dport 80 -j REJECT') in filt
    assert empty.svc_chain not in text


def test_large_cluster_mode_drops_endpoint_comments():
    few = Sweep(10, 2, "fd00:10:96::/108", "fd00:10:244:ff00::/64").services()
    many = Sweep(501, 2, "fd00:10:96::/108", "fd00:10:244:ff00::/64").services()
    small, large = iptables.Ruleset(few, V6), iptables.Ruleset(many, V6)
    assert not small.large_cluster and large.large_cluster
    sep = many[0].sep_chain(many[0].endpoints[0])
    lines = [ln for ln in large.sync().splitlines() if ln.startswith(f"-A {sep}")]
    assert lines and all("--comment" not in ln for ln in lines)
    assert '"lab/svc-00000:p80 cluster IP"' in large.sync()  # KUBE-SERVICES keeps its own


def test_rule_count_grows_with_services_and_endpoints():
    for n, m in ((1, 1), (10, 2), (100, 3)):
        svcs = Sweep(n, m, "fd00:10:96::/108", "fd00:10:244:ff00::/64").services()
        counts = iptables.Ruleset(svcs, V6).rule_count()
        # per service: KUBE-SERVICES, the masquerade rule, M to KUBE-SEP, 2 per KUBE-SEP
        assert counts["nat"] == 4 + 1 + n * (2 + 3 * m)
        assert counts["filter"] == 3


def test_partial_sync_rewrites_kube_services_but_only_the_changed_chains():
    svcs = Sweep(50, 1, "fd00:10:96::/108", "fd00:10:244:ff00::/64").services()
    rs = iptables.Ruleset(svcs, V6)
    old = svcs[7].sep_chain(svcs[7].endpoints[0])
    text = rs.partial_sync([svcs[7].name_string], stale=["KUBE-SEP-STALESTALESTALE1"])
    lines = text.splitlines()
    assert sum(ln.startswith("-A KUBE-SERVICES") for ln in lines) == 50 + 1
    assert f":{svcs[7].svc_chain} - [0:0]" in lines and f":{old} - [0:0]" in lines
    assert not any(svcs[8].svc_chain in ln for ln in lines if ln.startswith(":"))
    assert "-X KUBE-SEP-STALESTALESTALE1" in lines
    assert all(not ln.startswith("-I") for ln in lines)


def test_family_mismatch_is_refused():
    with pytest.raises(ServiceError, match="not IPv6"):
        iptables.Ruleset([SVC1], V6)
    with pytest.raises(ServiceError, match="endpoint"):
        ServicePort("a", "b", "c", "tcp", "172.30.0.1", 80, (Endpoint("fd00::1", 80),))
    with pytest.raises(ServiceError, match="protocol"):
        ServicePort("a", "b", "c", "icmp", "172.30.0.1", 80)


# -- nftables -----------------------------------------------------------------------------------

def test_nftables_full_sync_of_one_service():
    text = nftables.Ruleset([SVC1], V4).full_sync()
    lines = text.splitlines()
    assert lines[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    for line in [
        "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
        "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }",
        "add rule ip kube-proxy nat-prerouting jump services",
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
        "add rule ip kube-proxy masquerading masquerade fully-random",
        "add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto "
        "service-ULMVA6XW-ns1/svc1/tcp/p80 }",
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp "
        "dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 2 vmap { "
        "0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80, 1 : goto "
        f"{SVC1.nft_endpoint_chain(EP2)} }}",
        "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr "
        "10.180.0.1 jump mark-for-masquerade",
        "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta "
        "l4proto tcp dnat to 10.180.0.1:80",
    ]:
        assert line in lines, line
    # chains exist before the map elements and rules that name them
    first = {name: i for i, ln in reversed(list(enumerate(lines)))
             for name in [ln.split()[4]] if ln.startswith("add chain")}
    for i, ln in enumerate(lines):
        for target in re.findall(r"goto (\S+?)[ ,}]", ln + " "):
            assert first[target] < i, f"{target} used on line {i} before it exists"


def test_nftables_ipv6_and_nodeports():
    svc = v6_service(node_port=30080)
    text = nftables.Ruleset([svc], V6).full_sync()
    assert "add table ip6 kube-proxy" in text
    assert "dnat to [fd00:10:244:1::10]:8080" in text
    assert "add element ip6 kube-proxy nodeport-ips { fd00:0:0:1::2 }" in text
    assert (f"add element ip6 kube-proxy service-nodeports {{ tcp . 30080 : goto "
            f"{svc.nft_external_chain} }}") in text
    assert "ip6 daddr { fd00:10:96::/108 } drop" in text


def test_nftables_partial_sync_touches_only_the_change():
    svcs = Sweep(100, 1, "fd00:10:96::/108", "fd00:10:244:ff00::/64").services()
    rs = nftables.Ruleset(svcs, V6)
    text = rs.partial_sync([svcs[3].name_string], stale=["endpoint-OLD"])
    assert "add table" not in text and "hook" not in text
    assert svcs[3].nft_service_chain in text and svcs[4].nft_service_chain not in text
    assert "flush chain ip6 kube-proxy endpoint-OLD" in text
    assert "add element" not in text  # the map points at the same chain name
    added = rs.partial_sync([], added=[svcs[5].name_string])
    assert f"goto {svcs[5].nft_service_chain}" in added
    removed = rs.partial_sync([], removed=[svcs[6]])
    assert f"delete element ip6 kube-proxy service-ips {{ {svcs[6].cluster_ip} . tcp . " \
           f"{svcs[6].port} }}" in removed


# -- sweeps -------------------------------------------------------------------------------------

def test_sweep_addresses_and_endpoints():
    svcs = synthesize(Sweep(3, 2, "fd00:10:96::/108", "fd00:10:244:ff00::/64", port=7100,
                            node_ports=1))
    assert [s.cluster_ip for s in svcs] == ["fd00:10:96::1", "fd00:10:96::2", "fd00:10:96::3"]
    assert [s.name_string for s in svcs][:1] == ["lab/svc-00000:p7100"]
    assert svcs[1].endpoints == (Endpoint("fd00:10:244:ff00::3", 7100),
                                 Endpoint("fd00:10:244:ff00::4", 7100))
    assert len({e for s in svcs for e in s.endpoints}) == 6  # every service its own pods
    assert svcs[0].node_port == 30000 and svcs[1].node_port is None


def test_sweep_limits():
    assert capacity("10.96.0.0/24") == 254
    with pytest.raises(ServiceError, match="do not fit the Service CIDR"):
        synthesize(Sweep(255, 1, "10.96.0.0/24", "10.244.0.0/16"))
    with pytest.raises(ServiceError, match="NodePort range"):
        synthesize(Sweep(3000, 1, "fd00:10:96::/108", "fd00::/64", node_ports=2769))
    with pytest.raises(ServiceError, match="do not fit 10.244.0.0/30"):
        synthesize(Sweep(2, 2, "10.96.0.0/24", "10.244.0.0/30"))
    with pytest.raises(ServiceError, match="different families"):
        synthesize(Sweep(2, 2, "10.96.0.0/24", "fd00::/64"))
