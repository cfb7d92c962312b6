"""The stateful NAT46/NAT64 gateway and L4 load balancer as a datapath feature: the
`datapath.gateway` section, the gateway object's set-up on every node that attaches it,
`lab service`, `lab agent`, `lab bench gateway` and its `lab bench prog` cases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lab.bpf.topology import ObjectSetup
from lab.datapath.contract import Datapath
from lab.datapath.gateway import cli, topology
from lab.datapath.gateway.control import OBJECT

if TYPE_CHECKING:
    from lab.bpf.bench import BenchCase
    from lab.cli import AddCommands
    from lab.topology import Topology
    from lab.yamlfile import Document


class GatewayDatapath(Datapath):
    name = "gateway"
    section = topology.SECTION
    section_schema: Mapping[str, Any] = {
        "description": "The stateful gateway (bpf/gateway.c): settings and services, checked "
                       "against the GatewayConfig schema of lab/datapath/gateway/openapi.yaml "
                       "(the gateway API's own), for every node that attaches the gateway "
                       "object.",
        "type": "object"}

    def check(self, doc: Document, topo: Topology) -> None:
        if self.section in topo.datapath:
            topology.check_section(doc, ("datapath", self.section), topo)

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        return {OBJECT: ObjectSetup(before_load=topology.before_load,
                                    after_load=topology.after_load)}

    def commands(self) -> Sequence[AddCommands]:
        return (cli.register,)

    def bench_kinds(self) -> Sequence[AddCommands]:
        return (cli.register_bench,)

    def bench_cases(self) -> Sequence[BenchCase]:
        from lab.datapath.gateway import bench   # packet mixes: scapy, when timed

        return bench.BENCH_CASES
