"""The `lab` command: the core's subcommands (the modules of this package) and those each
datapath feature offers (lab/datapath/registry.py), run by lab.cli's machinery.

    lifecycle  up, down, status, exec        reach   reach
    doctor     doctor                        bench   bench build|prog|<feature kinds>
    bpf        bpf run                       run     run, merge, report, compare
    vm         vm
    remote     remote (a host's side of a lab across hosts, run over SSH)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lab import cli
from lab.commands import bench, bpf, doctor, lifecycle, reach, remote, run, vm
from lab.datapath.contract import Datapath
from lab.datapath.registry import DATAPATHS


def commands(datapaths: Sequence[Datapath] = DATAPATHS) -> list[cli.AddCommands]:
    """Every subcommand, in the order `lab --help` lists them: the core's, with those
    DATAPATHS offer after `lab run`'s."""
    features = [add for d in datapaths for add in d.commands()]
    return [lifecycle.register, reach.register, doctor.register, bench.registrar(datapaths),
            bpf.register, run.register, *features, vm.register, remote.register]


def build_parser(datapaths: Sequence[Datapath] = DATAPATHS) -> argparse.ArgumentParser:
    return cli.build_parser(commands(datapaths))


def main(argv: list[str] | None = None) -> int:
    return cli.run(argv, commands())
