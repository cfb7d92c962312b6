"""The stateless NAT46/NAT64 translator as a datapath feature: the `datapath.translator`
section (checked, then derived into programs, routes, neighbours and offloads), the maps
written when `lab up` loads bpf/xlate.c, TAYGA and DNS64 started beside it, `lab xlate`, its
`lab bench prog` cases and the step kinds of scenarios/nat46*.yaml."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from lab.bpf.topology import ObjectSetup
from lab.datapath.contract import Datapath
from lab.datapath.translator import cli, config, topology

if TYPE_CHECKING:
    from lab.bpf.bench import BenchCase
    from lab.cli import AddCommands
    from lab.lab import Lab
    from lab.scenarios.registry import StepKind
    from lab.topology import Topology
    from lab.yamlfile import Document


class TranslatorDatapath(Datapath):
    name = "translator"
    section = topology.SECTION

    def check(self, doc: Document, topo: Topology) -> None:
        if topology.section(topo) is not None:
            topology.check_section(doc, ("datapath", self.section), topo)

    def derive(self, topo: Topology) -> None:
        if topology.section(topo) is not None:
            topology.derive(topo)

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        return {config.OBJECT: ObjectSetup(after_load=topology.after_load)}

    def nodes(self, topo: Topology) -> Collection[str]:
        if topology.section(topo) is None:
            return ()
        return topology.started_on(topo)

    def start(self, lab: Lab) -> None:
        if topology.section(lab.topology) is not None:
            topology.start(lab)

    def commands(self) -> Sequence[AddCommands]:
        return (cli.register,)

    def bench_cases(self) -> Sequence[BenchCase]:
        return config.bench_cases()

    def step_kinds(self) -> Sequence[StepKind]:
        from lab.datapath.translator import steps   # the scenario layer, when scenarios load

        return steps.STEP_KINDS
