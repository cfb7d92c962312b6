"""A datapath feature that is not the lab's: a package outside lab/ that implements the
contract (lab.datapath.contract.Datapath) and nothing else, for the tests that prove a new
feature plugs in by being listed beside the registry's, with no change to the core.

    datapath:
      toy: {node: router, hop_limit: 7}

It checks its section (the node exists), derives into the model a sysctl (the node's IPv6
hop limit) and the packet counter on the node's interfaces, sets the counter's object up
when `lab up` loads it, starts a process beside the datapath and records its stop, and offers
`lab toy`, `lab bench toy`, a `lab bench prog` case and a step kind.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from lab.bpf import bench
from lab.bpf.object import BpfObject
from lab.bpf.topology import ObjectSetup
from lab.cli import AddCommands, SubParsers
from lab.datapath.contract import Datapath
from lab.lab import Lab
from lab.scenarios import Metric, StepContext, StepKind, step
from lab.topology import Topology
from lab.topology.model import BpfAttach
from lab.yamlfile import Document


@step("toy_hop_limit", schema={"type": "object", "additionalProperties": False,
                               "properties": {"node": {"type": "string"}}},
      metrics={"hop_limit": Metric("hops", "none", "the node's IPv6 hop limit")})
def toy_hop_limit(ctx: StepContext, p: dict) -> None:
    """The IPv6 hop limit the toy set on its node."""
    out = ctx.node(p["node"]).run(["cat", "/proc/sys/net/ipv6/conf/all/hop_limit"])
    ctx.record("hop_limit", int(out.stdout))


class ToyDatapath(Datapath):
    name = "toy"
    section = "toy"
    section_schema: Mapping[str, Any] = {
        "type": "object", "additionalProperties": False, "required": ["node"],
        "properties": {"node": {"type": "string"},
                       "hop_limit": {"type": "integer", "minimum": 1, "maximum": 255}}}

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def check(self, doc: Document, topo: Topology) -> None:
        data = topo.datapath.get(self.section)
        if data is not None and data["node"] not in topo.nodes:
            raise doc.error(("datapath", "toy", "node"), f"no node '{data['node']}'")

    def derive(self, topo: Topology) -> None:
        data = topo.datapath.get(self.section)
        if data is None:
            return
        node = topo.nodes[data["node"]]
        node.sysctls["net.ipv6.conf.all.hop_limit"] = str(data.get("hop_limit", 64))
        for iface in node.interfaces.values():
            iface.bpf.append(BpfAttach("pktcount", "pktcount_tc", "tc-ingress"))

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        def after_load(obj: BpfObject, topo: Topology, node: str) -> None:
            self.calls.append(("after_load", obj.name, node))
        return {"pktcount": ObjectSetup(after_load=after_load)}

    def start(self, lab: Lab) -> None:
        data = lab.topology.datapath.get(self.section)
        if data is not None:
            lab.node(data["node"]).popen(["sleep", "600"])
            self.calls.append(("start", lab.name))

    def stop(self, lab: Lab) -> None:
        self.calls.append(("stop", lab.name))

    def commands(self) -> Sequence[AddCommands]:
        return (_register,)

    def bench_kinds(self) -> Sequence[AddCommands]:
        return (_register_bench,)

    def bench_cases(self) -> Sequence[bench.BenchCase]:
        return (bench.BenchCase("toy-count", "pktcount", "pktcount_tc", bench.default_mix,
                                description="the toy's counter"),)

    def step_kinds(self) -> Sequence[StepKind]:
        return (toy_hop_limit,)


def _register(sub: SubParsers) -> None:
    p = sub.add_parser("toy", help="the toy feature's command")
    p.add_argument("--hop-limit", type=int, default=64)
    p.set_defaults(handler=lambda args: print(f"toy {args.hop_limit}") or 0)


def _register_bench(sub: SubParsers) -> None:
    p = sub.add_parser("toy", help="the toy feature's benchmark")
    p.set_defaults(handler=lambda args: 3)


TOPOLOGY = """\
name: toy
nodes:
  client: {role: client}
  router: {role: router, forwarding: true}
links:
  - ends:
      - {node: client, ifname: eth0, addresses: ["2001:db8:1::2/64"]}
      - {node: router, ifname: eth-client, addresses: ["2001:db8:1::1/64"]}
datapath:
  toy: {node: router, hop_limit: 7}
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """ARGV parsed by the `lab` command with the toy listed beside the registry's features."""
    from lab.commands import build_parser
    from lab.datapath.registry import DATAPATHS

    return build_parser((*DATAPATHS, ToyDatapath())).parse_args(argv)
