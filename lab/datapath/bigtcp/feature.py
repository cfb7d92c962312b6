"""BIG TCP through the datapath contract: it has no topology section and no BPF object of
its own to set up (the counter is attached on demand); it offers `lab bigtcp` and the step
kinds of the BIG TCP scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.datapath.bigtcp import cli
from lab.datapath.contract import Datapath

if TYPE_CHECKING:
    from lab.cli import AddCommands
    from lab.scenarios.registry import StepKind


class BigTcpDatapath(Datapath):
    name = "BIG TCP"

    def commands(self) -> Sequence[AddCommands]:
        return (cli.register,)

    def step_kinds(self) -> Sequence[StepKind]:
        from lab.datapath.bigtcp import steps   # the scenario layer, when scenarios load

        return steps.STEP_KINDS
