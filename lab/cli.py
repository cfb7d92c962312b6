"""The `lab` command: a thin shell over the Python API.

Each feature module exposes `register(subparsers)` adding its subcommands; a subcommand's
handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from lab.errors import EXIT_USAGE, LabError

# Modules that contribute subcommands, in the order they appear in `lab --help`.
COMMAND_MODULES: list[str] = [
    "lab.commands.lifecycle",
    "lab.commands.reach",
    "lab.commands.doctor",
    "lab.commands.bench",
    "lab.commands.bpf",
    "lab.commands.run",
    "lab.datapath.bigtcp_cli",
    "lab.datapath.translator.cli",
    "lab.datapath.gateway.cli",
    "lab.commands.vm",
]

_groups: dict[str, argparse._SubParsersAction] = {}


def subcommand_group(sub: argparse._SubParsersAction, name: str, help: str):
    """The subparsers of a command group (e.g. `lab bench ...`) several modules add to."""
    if name not in _groups:
        parser = sub.add_parser(name, help=help, description=help)
        _groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND",
                                              required=True)
    return _groups[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log each kernel object created and removed (-vv: netlink detail)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _groups.clear()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _terminate(signum, frame):
    # SIGTERM (kill, CI timeouts) unwinds like Ctrl-C, so a lab being built is torn down.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(message)s" if args.verbose < 2 else "%(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_USAGE
