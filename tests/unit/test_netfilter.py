"""lab/netfilter.py without a kernel: conntrack entries as /proc/net/nf_conntrack shows them
(a namespace's table, as a legacy node's tests read it: tests/data/nf_conntrack.txt), the
iptables backends' command names, and the journal's record of the tables a lab writes."""

from pathlib import Path

import pytest

from lab import journal, netfilter

DATA = Path(__file__).resolve().parents[1] / "data"


def test_conntrack_entries():
    entries = netfilter.parse_conntrack((DATA / "nf_conntrack.txt").read_text())
    vip, pod, pods = entries
    # a client's connection to a ClusterIP: DNATed to a pod, masqueraded to the node
    assert (vip.protocol, vip.state, vip.orig_dport) == ("tcp", "TIME_WAIT", 8080)
    assert (vip.orig_src, vip.orig_dst) == ("fd00:0:0:1::1", "fd00:10:96::a")
    assert (vip.reply_src, vip.reply_dst) == ("fd00:10:244:1::11", "fd00:0:0:1::2")
    assert vip.dnat and vip.snat
    # pod to pod: tracked, not translated
    assert not pod.dnat and not pod.snat
    # UDP has no state; IPv4 as well
    assert (pods.protocol, pods.state, pods.reply_src) == ("udp", "", "10.244.0.5")
    assert pods.dnat and not pods.snat
    assert netfilter.parse_conntrack("") == []


def test_iptables_backends():
    assert netfilter.iptables_program("restore", 6, "nft") == "ip6tables-nft-restore"
    assert netfilter.iptables_program("save", 4, "legacy") == "iptables-legacy-save"
    with pytest.raises(ValueError, match="expected one of"):
        netfilter.iptables_program("restore", 4, "ebtables")


def test_netfilter_tables_record_round_trips():
    rec = journal.NetfilterTables("lab-node1", "node1", ("ip6 kube-proxy", "ip kube-proxy"))
    line = journal.encode(rec)
    assert line == {"t": "netfilter", "netns": "lab-node1", "node": "node1",
                    "nft": ["ip6 kube-proxy", "ip kube-proxy"], "legacy": []}
    assert journal.decode(line) == rec
