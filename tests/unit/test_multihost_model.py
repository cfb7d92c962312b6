"""Topologies that leave the machine (no root): `hosts:` and each node's `host:`, links of kind
vxlan and phys, and what each refuses at the file's line and column; the model's round trip;
the SSH command line, the agent's wire format and the version hosts compare."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lab import journal, topology
from lab.datapath.registry import DATAPATHS
from lab.errors import EXIT_USAGE, InputError, LabError, UsageError
from lab.hosts import ssh, wire
from lab.journal import HostPart, HostPartDown, PhysMoved, VxlanCreated
from lab.lab import Lab
from lab.topology import Topology
from lab.version import version_id

ROOT = Path(__file__).resolve().parents[2]
SPLIT = str(ROOT / "topologies" / "nat46-2hosts.yaml")

TWO_HOSTS = """\
name: split
hosts:
  b: {ssh: root@server-b, lab: sudo -n /opt/lab/bin/lab}
nodes:
  client: {role: client}
  gw: {role: gateway, forwarding: true, host: b}
  node1:
    role: node
    host: b
    pods: {count: 2, ipv6: "fd00:10:244:1::10"}
defaults:
  mtu: 1500
  gso_max_size: 65536
links:
  - kind: vxlan
    vxlan: {vni: 4600, port: 8472}
    ends:
      - {node: client, ifname: eth0, addresses: [192.0.2.10/24], underlay: {address: 10.0.0.1}}
      - {node: gw, ifname: eth-client, addresses: [192.0.2.1/24],
         underlay: {address: 10.0.0.2, dev: enp1s0}}
  - ends:
      - {node: gw, ifname: eth-node, addresses: ["fd00:0:0:1::1/64"]}
      - {node: node1, ifname: eth0, addresses: ["fd00:0:0:1::2/64"]}
"""

PHYS = """\
hosts:
  b: {}
nodes:
  client: {role: client}
  gw: {role: gateway, host: b}
links:
  - kind: phys
    mtu: 9000
    ends:
      - {node: client, ifname: eth0, phys: enp65s0f0np0, addresses: [192.0.2.10/24]}
      - {node: gw, ifname: eth0, phys: "0000:41:00.0", addresses: [192.0.2.1/24]}
"""


def load(text: str) -> Topology:
    return topology.parse(textwrap.dedent(text), file="t.yaml", datapaths=DATAPATHS)


def file_link(topo: Topology, i: int):
    """Link I of the file's `links:` (pods' links come first in the model)."""
    return next(link for link in topo.links if link.origin == ["links", i])


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        load(text)
    assert info.value.exit_code == EXIT_USAGE
    return info.value


# -- hosts --------------------------------------------------------------------------------------

def test_without_hosts_every_node_is_local():
    topo = load("nodes:\n  a: {role: client}\n")
    assert list(topo.hosts) == ["local"] and topo.host_of("a").local
    assert topo.remote_hosts() == []


def test_nodes_and_their_pods_on_hosts():
    topo = load(TWO_HOSTS)
    b = topo.hosts["b"]
    assert (b.ssh, b.lab, b.local) == ("root@server-b", "sudo -n /opt/lab/bin/lab", False)
    assert topo.node("client").host == "local"
    assert topo.nodes_on("b") == ["gw", "node1", "node1-pod0", "node1-pod1"]
    assert [h.name for h in topo.remote_hosts()] == ["b"]


def test_a_host_is_reached_by_its_name_unless_it_says():
    topo = load(PHYS)
    assert topo.hosts["b"].ssh == "b" and topo.hosts["b"].lab == "lab"


def test_a_node_on_an_unknown_host():
    err = error_of(TWO_HOSTS.replace("host: b}", "host: c}"))
    assert (err.line, err.col) == (6, 47)
    assert "no host 'c' (hosts: local, b); name it under `hosts:`" in err.message


def test_local_is_not_reached_by_ssh():
    err = error_of(TWO_HOSTS.replace("hosts:\n", "hosts:\n  local: {ssh: me}\n"))
    assert err.line == 3 and "host 'local' is the machine running `lab up`" in err.message


def test_a_lab_command_a_shell_cannot_split():
    err = error_of(TWO_HOSTS.replace("lab: sudo -n /opt/lab/bin/lab", "lab: \"sudo 'lab\""))
    assert err.line == 3 and "cannot split" in err.message


def test_an_ssh_destination_that_would_be_an_option():
    err = error_of(TWO_HOSTS.replace("root@server-b", "-oProxyCommand=x"))
    assert err.line == 3 and "is not a valid name here" in err.message


# -- links between hosts ------------------------------------------------------------------------

def test_a_pair_cannot_join_two_hosts():
    err = error_of(TWO_HOSTS.replace("  - kind: vxlan\n    vxlan: {vni: 4600, port: 8472}\n",
                                     "  - kind: veth\n")
                   .replace(", underlay: {address: 10.0.0.1}", "")
                   .replace(",\n         underlay: {address: 10.0.0.2, dev: enp1s0}", ""))
    assert (err.line, err.col) == (15, 11)
    assert "joins client (host local) and gw (host b): a link between hosts is of kind " \
           "vxlan or phys" in err.message


def test_vxlan_ends_face_each_other():
    topo = load(TWO_HOSTS)
    link = file_link(topo, 0)
    a, b = link.a.vxlan, link.b.vxlan
    assert (a.vni, a.port, a.local, a.remote, a.dev) == (4600, 8472, "10.0.0.1", "10.0.0.2",
                                                         None)
    assert (b.local, b.remote, b.dev) == ("10.0.0.2", "10.0.0.1", "enp1s0")
    assert a.overhead == 50 and not a.learning
    assert link.origin == ["links", 0] and link.end_origin(link.b) == ("links", 0, "ends", 1)


def test_vxlan_mtu_is_the_underlays_not_the_defaults():
    topo = load(TWO_HOSTS)
    assert file_link(topo, 0).a.mtu is None  # derived on the host from the underlay device
    assert file_link(topo, 0).a.gso_max_size == 65536  # the other defaults apply
    assert file_link(topo, 1).a.mtu == 1500
    topo = load(TWO_HOSTS.replace("vni: 4600, port: 8472}", "vni: 4600, port: 8472}\n    mtu: 1400"))
    assert (file_link(topo, 0).a.mtu, file_link(topo, 0).b.mtu) == (1400, 1400)


def test_vxlan_over_ipv6_costs_70_bytes():
    topo = load(TWO_HOSTS.replace("10.0.0.1", "2001:db8::1").replace("10.0.0.2", "2001:db8::2"))
    assert file_link(topo, 0).a.vxlan.overhead == 70


@pytest.mark.parametrize("change, line, message", [
    (("    vxlan: {vni: 4600, port: 8472}\n", ""), 15, "a vxlan link needs `vxlan: {vni: N}`"),
    ((", underlay: {address: 10.0.0.1}", ""), 18, "an end of a vxlan link needs `underlay"),
    (("10.0.0.1}", "10.0.0.300}"), 18, "'10.0.0.300' is not an address"),
    (("10.0.0.1}", "224.0.0.1}"), 18, "cannot be a VXLAN underlay address"),
    (("10.0.0.1}", "127.0.0.1}"), 18, "cannot be a VXLAN underlay address"),
    (("10.0.0.1}", "fe80::1}"), 18, "a link-local underlay (fe80::1) needs `dev`"),
    (("10.0.0.1}", "2001:db8::1}"), 20, "the ends' underlays are IPv6 and IPv4"),
    (("10.0.0.1}", "10.0.0.2}"), 20, "both ends use the underlay address 10.0.0.2"),
    (("vni: 4600,", "vni: 0,"), 16, "0 is less than the minimum of 1"),
    (("vni: 4600,", "vni: 16777216,"), 16, "is greater than the maximum of 16777215"),
])
def test_vxlan_refusals(change, line, message):
    err = error_of(TWO_HOSTS.replace(*change))
    assert err.line == line and message in err.message, err


def test_both_ends_of_a_vxlan_link_on_one_host():
    err = error_of(TWO_HOSTS.replace("  client: {role: client}",
                                     "  client: {role: client, host: b}"))
    assert err.line == 15 and "both ends of this vxlan link are on host b" in err.message


def test_one_vni_per_port_and_underlay_device_on_a_host():
    text = TWO_HOSTS.replace("  client: {role: client}",
                             "  client: {role: client}\n  c2: {role: client}") + """\
  - kind: vxlan
    vxlan: {vni: 4600, port: 8472}
    ends:
      - {node: c2, ifname: eth0, addresses: [192.0.2.11/24], underlay: {address: 10.0.0.1}}
      - {node: gw, ifname: eth-c2, addresses: [192.0.3.1/24], underlay: {address: 10.0.0.2}}
"""
    err = error_of(text)
    assert err.line == 26 and "VNI 4600 on port 8472 is already a link of host local" \
        in err.message and "(line 17)" in err.message
    load(text.replace("vni: 4600, port: 8472}\n    ends:\n      - {node: c2",
                      "vni: 4601, port: 8472}\n    ends:\n      - {node: c2"))


def test_phys_ends_name_their_nics():
    topo = load(PHYS)
    a, b = topo.links[0].a, topo.links[0].b
    assert (a.phys, b.phys, a.mtu, b.vxlan) == ("enp65s0f0np0", "0000:41:00.0", 9000, None)


@pytest.mark.parametrize("change, line, message", [
    ((", phys: enp65s0f0np0", ""), 10, "an end of a phys link names its host NIC"),
    (("phys: enp65s0f0np0", "phys: 'eth 0'"), 10, "is not a valid name here"),
    (("- kind: phys", "- kind: veth"), 7, "joins client (host local) and gw (host b)"),
    (("    mtu: 9000\n", "    mtu: 9000\n    vxlan: {vni: 1}\n"), 9, "vxlan options on a link"),
])
def test_phys_refusals(change, line, message):
    err = error_of(PHYS.replace(*change))
    assert err.line == line and message in err.message, err


def test_phys_options_only_on_phys_links():
    err = error_of(PHYS.replace("- kind: phys", "- kind: veth").replace(", host: b}", "}"))
    assert err.line == 10 and "'phys' is for an end of a phys link; this link is of kind " \
        "'veth'" in err.message


def test_a_nic_once_per_host():
    text = PHYS.replace("  gw: {role: gateway, host: b}",
                        "  gw: {role: gateway, host: b}\n  c2: {role: client}") + """\
  - kind: phys
    ends:
      - {node: c2, ifname: eth0, phys: enp65s0f0np0}
      - {node: gw, ifname: eth1, phys: "0000:41:00.1"}
"""
    err = error_of(text)
    assert err.line == 15 and "NIC enp65s0f0np0 of host local is already in this lab (line 11)" \
        in err.message
    other = text.replace("c2, ifname: eth0, phys: enp65s0f0np0", "c2, ifname: eth0, phys: eth9")
    err = error_of(other.replace("0000:41:00.0", "0000:4A:00.0").replace('"0000:41:00.1"',
                                                                        '"0000:4a:00.0"'))
    assert err.line == 16 and "NIC 0000:4a:00.0 of host b is already in this lab (line 12)" \
        in err.message
    load(other)


def test_the_model_round_trips_with_hosts_and_link_ends():
    topo = load(TWO_HOSTS)
    again = Topology.from_json(json.loads(json.dumps(topo.to_json())))
    assert again.to_json() == topo.to_json()
    assert again.hosts["b"].ssh == "root@server-b" and again.node("gw").host == "b"
    assert again.links[0].b.vxlan == topo.links[0].b.vxlan
    topo = load(PHYS)
    assert Topology.from_json(json.loads(json.dumps(topo.to_json()))).links[0].b.phys == \
        "0000:41:00.0"


def test_a_model_saved_before_hosts_existed_loads_on_local():
    data = load("nodes:\n  a: {role: client}\n  b: {role: server}\nlinks:\n  - ends: "
                "[{node: a, ifname: e0}, {node: b, ifname: e0}]\n").to_json()
    del data["hosts"]
    for n in data["nodes"].values():
        del n["host"]
    for link in data["links"]:
        del link["origin"]
        for end in ("a", "b"):
            del link[end]["vxlan"], link[end]["phys"]
    topo = Topology.from_json(data)
    assert topo.node("a").host == "local" and list(topo.hosts) == ["local"]


# -- datapath features and hosts ----------------------------------------------------------------

def test_a_features_nodes_must_be_on_one_host(tmp_path):
    text = (ROOT / "topologies" / "nat46.yaml").read_text()
    text = text.replace("name: nat46\n", "name: nat46\nhosts:\n  b: {}\n", 1)
    text = text.replace("  server4:\n    role: server\n", "  server4:\n    role: server\n"
                        "    host: b\n", 1)
    text = text.replace("  - ends:\n      - {node: gw, ifname: eth-server",
                        "  - kind: vxlan\n    vxlan: {vni: 7}\n    ends:\n"
                        "      - {node: gw, ifname: eth-server, underlay: {address: 10.0.0.1}",
                        1).replace("{node: server4, ifname: eth0,",
                                   "{node: server4, ifname: eth0, underlay: {address: 10.0.0.2},")
    path = tmp_path / "split.yaml"
    path.write_text(text)
    topo = topology.load(path, datapaths=DATAPATHS)
    with pytest.raises(InputError) as info:
        Lab(topo, datapaths=DATAPATHS)._check_feature_hosts()
    # at the translator's section (its first key: the mapping's position)
    assert info.value.file == str(path) and info.value.line == text.splitlines().index(
        "datapath:") + 3
    assert "datapath feature translator acts on nodes on hosts b, local" in info.value.message


# -- the SSH command line, the wire, the version -------------------------------------------------

def test_the_remote_lab_is_quoted_for_the_remote_shell(monkeypatch):
    monkeypatch.delenv(ssh.SSH_ENV, raising=False)
    host = load(TWO_HOSTS).hosts["b"]
    argv = ssh.remote_argv(host, "exec", "--lab", "x", "gw", "--", "sh", "-c", "echo $HOME; id")
    assert argv[:2] == ["ssh", "-T"] and "BatchMode=yes" in argv
    assert argv[-3:] == ["root@server-b", "--", "sudo -n /opt/lab/bin/lab exec --lab x gw -- "
                         "sh -c 'echo $HOME; id'"]
    monkeypatch.setenv(ssh.SSH_ENV, "ssh -F 'my config'")
    assert ssh.remote_argv(host, "remote")[:4] == ["ssh", "-F", "my config", "-T"]


def test_errors_cross_the_wire_with_their_key_path():
    err = InputError("no NIC", path=("links", 0, "ends", 1, "phys"))
    back = wire.error_from_wire(json.loads(json.dumps(wire.error_to_wire(err))), "host b")
    assert isinstance(back, InputError) and back.path == ("links", 0, "ends", 1, "phys")
    back = wire.error_from_wire(wire.error_to_wire(UsageError("not root")), "host b")
    assert type(back) is UsageError and str(back) == "host b: not root"
    back = wire.error_from_wire(wire.error_to_wire(KeyError("x")), "host b")
    assert type(back) is LabError and "KeyError" in str(back)


def test_the_version_names_the_release_and_the_sources():
    from lab import __version__

    release, _, digest = version_id().partition("+")
    assert release == __version__ and len(digest) == 12 and version_id() == version_id()


def test_host_records_round_trip_through_the_journal():
    records = [HostPart("b", "root@b", "lab", ("gw", "node1")), HostPartDown("b"),
               VxlanCreated("t-gw", "eth0"),
               PhysMoved("t-gw", "eth0", "enp1s0", 4026531840, 3, 1500, True,
                         "52:54:00:12:34:56", 1000, 65536, 65536, 65536, 65536,
                         ({"address": "10.0.0.1", "prefixlen": 24, "broadcast": "10.0.0.255",
                           "label": "enp1s0"},),
                         ({"family": 2, "dst": "10.9.0.0", "dst_len": 16, "via": "10.0.0.254",
                           "oif": 3, "proto": 4, "onlink": False, "priority": None},),
                         {"rx-gro": True, "tx-tcp-segmentation": False}, "0000:00:03.0",
                         "52:54:00:12:34:56")]
    for r in records:
        assert journal.decode(json.loads(json.dumps(journal.encode(r)))) == r


# -- lab run --topology -------------------------------------------------------------------------

def test_a_scenario_runs_on_a_topology_split_across_hosts(capsys):
    from lab.commands import main

    assert main(["run", "nat46", "--topology", SPLIT, "--check"]) == 0
    assert "nat46: 11 steps, 2 points" in capsys.readouterr().out
    assert main(["run", "bigtcp", "--topology", str(ROOT / "topologies/bigtcp-2hosts.yaml"),
                 "--check"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--topology", SPLIT], "--topology needs the scenarios"),
    (["nat46", "--topology", SPLIT, "--kernels", "host"], "not with --kernels or --vm"),
    (["nat46", "--topology", "/nosuch.yaml"], "--topology /nosuch.yaml: no such file"),
    (["nat46", "--topology", str(ROOT / "topologies/bigtcp.yaml")],
     "with this patch, "),  # the steps' nodes are checked against the other topology
])
def test_lab_run_topology_refusals(args, message, capsys):
    from lab.commands import main

    assert main(["run", *args, "--check"]) == 2
    assert message in capsys.readouterr().err
