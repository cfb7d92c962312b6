"""The datapath contract: what a feature of the datapath (the stateless translator, the
stateful gateway, BPF host routing, BIG TCP, ...) gives the lab, in one typed class.

A feature lives in its own package under lab/datapath/ and is one line in the registry
(lab/datapath/registry.py). Everything below this layer sees it only through the narrow
interface it needs, declared beside that layer and handed in by the caller, never by importing
lab.datapath:

  loading a topology    lab.topology.TopologyHooks   section, section_schema, check, derive
  bringing a lab up     lab.lab.LabHooks             object_setups, nodes, start, stop
  `lab bench prog`      lab.bpf.bench.BenchCase      bench_cases
  `lab run` scenarios   lab.scenarios.StepKind       step_kinds
  the `lab` command     lab.cli.AddCommands          commands, bench_kinds

Every hook has a default that does nothing, so a feature writes only what it has. `check` and
`derive` run for every topology file, with or without the feature's section: a feature that
reads something else of the model (host routing reads `pods: {routing: bpf}`) looks there.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lab.lab import LabHooks
from lab.topology import TopologyHooks

if TYPE_CHECKING:  # the hooks' types; `lab --help` need not import scenarios or bench timing
    from lab.bpf.bench import BenchCase
    from lab.bpf.topology import ObjectSetup
    from lab.cli import AddCommands
    from lab.lab import Lab
    from lab.scenarios.registry import StepKind
    from lab.topology import Topology
    from lab.yamlfile import Document


class Datapath(LabHooks, TopologyHooks):
    """One datapath feature. Subclasses set `name` and override the hooks they need."""

    name: ClassVar[str]                       # what the feature is called in messages
    section: str | None = None                # its key under a topology file's `datapath:`
    section_schema: Mapping[str, Any] = {"type": "object"}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not getattr(cls, "name", ""):
            raise TypeError(f"datapath feature {cls.__qualname__} needs a `name`")

    def __repr__(self) -> str:
        return f"<datapath {self.name}>"

    # -- a topology file (lab.topology) ---------------------------------------------------

    def check(self, doc: Document, topo: Topology) -> None:
        """Refuse a bad section (or anything else of the model the feature reads) with an
        InputError at the bad value's position; the model is built, nothing derived yet."""

    def derive(self, topo: Topology) -> None:
        """Write into the model what the feature implies: programs on interfaces, routes,
        neighbours, offloads, sysctls. The builder then creates them like the rest."""

    # -- a lab (lab.lab) ------------------------------------------------------------------

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        """Per BPF object the feature owns: what to do before and after `lab up` loads it on
        a node (set globals and map sizes; fill maps from the model)."""
        return {}

    def nodes(self, topo: Topology) -> Collection[str]:
        """The nodes start() and stop() act on; in a lab across hosts, the host that has
        them runs the feature (they must be on one). None: it acts on no node."""
        return ()

    def start(self, lab: Lab) -> None:
        """Start what runs beside the datapath once the lab is built (NodeHandle.popen)."""

    def stop(self, lab: Lab) -> None:
        """Say goodbye before the lab that started the feature is torn down."""

    # -- what it offers the CLI and scenarios ---------------------------------------------

    def commands(self) -> Sequence[AddCommands]:
        """`lab` subcommands (each adds its parsers to `lab`'s subparsers)."""
        return ()

    def bench_kinds(self) -> Sequence[AddCommands]:
        """`lab bench` subcommands (each adds its parsers to `lab bench`'s subparsers)."""
        return ()

    def bench_cases(self) -> Sequence[BenchCase]:
        """Programs `lab bench prog` times, with their packet mixes and set-up."""
        return ()

    def step_kinds(self) -> Sequence[StepKind]:
        """Scenario step kinds (lab/scenarios/registry.py)."""
        return ()
