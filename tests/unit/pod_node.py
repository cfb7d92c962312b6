"""A gateway and a node with two pods, the pods' section given by the test: the topology the
pod-mode and kube-proxy tests vary, and how they load it or read its refusal."""

from __future__ import annotations

import textwrap

import pytest

from lab import topology
from lab.datapath.registry import DATAPATHS
from lab.errors import EXIT_USAGE, InputError
from lab.topology import Topology

BASE = """\
name: t
nodes:
  gw: {{role: gateway, forwarding: true}}
  node1:
    role: node
    pods:
      count: 2
      ipv6: "fd00:10:244:1::10"
{pods}
links:
  - ends:
      - {{node: gw, ifname: eth-node, addresses: ["fd00:0:0:1::1/64"]}}
      - {{node: node1, ifname: eth0, addresses: ["fd00:0:0:1::2/64"]}}
"""


def topo_of(pods: str) -> Topology:
    return topology.parse(BASE.format(pods=textwrap.indent(textwrap.dedent(pods), " " * 6)),
                          file="t.yaml", datapaths=DATAPATHS)


def error_of(pods: str) -> InputError:
    with pytest.raises(InputError) as info:
        topo_of(pods)
    assert info.value.exit_code == EXIT_USAGE and info.value.file == "t.yaml"
    return info.value
