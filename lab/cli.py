"""The `lab` command's machinery: a parser made of the subcommands it is given, and the main
loop that maps the lab's errors to exit codes. Which subcommands exist is decided above this
layer (lab/commands/__init__.py: the core's and every datapath feature's).

A subcommand module offers an `AddCommands`: a function that adds its parsers to the
subparsers it gets, each parser with `set_defaults(handler=...)`, a function that takes the
parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from lab.errors import EXIT_USAGE, LabError

SubParsers = argparse._SubParsersAction
AddCommands = Callable[[SubParsers], None]

DESCRIPTION = "The `lab` command: a thin shell over the Python API."


def add_group(sub: SubParsers, name: str, help: str) -> SubParsers:
    """A command group (`lab bench ...`): its parser, and the subparsers its commands go to."""
    parser = sub.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def add_pcap_arguments(parser: argparse.ArgumentParser) -> None:
    """--in/--out/--xdp/--json, shared by every offline runner (`lab bpf run`, `lab xlate`)."""
    parser.add_argument("--in", dest="input", required=True, metavar="IN.pcap",
                        help="pcap or pcapng, Ethernet (1) or raw IP (101, 228, 229)")
    parser.add_argument("--out", dest="output", required=True, metavar="OUT.pcap")
    parser.add_argument("--xdp", action="store_true", help="run the XDP program")
    parser.add_argument("--json", action="store_true", help="print a verdict per packet")


def build_parser(commands: Sequence[AddCommands]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log each kernel object created and removed (-vv: netlink detail)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in commands:
        add(sub)
    return parser


def _terminate(signum, frame):
    # SIGTERM (kill, CI timeouts) unwinds like Ctrl-C, so a lab being built is torn down.
    raise KeyboardInterrupt


def run(argv: list[str] | None, commands: Sequence[AddCommands]) -> int:
    """Parse ARGV (default: sys.argv) against COMMANDS and run the chosen handler."""
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser(commands)
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
    except PermissionError as e:
        if os.geteuid() == 0:
            raise                       # root refused: not a missing privilege, a bug
        # Without root, whatever a command touches first that is root's says so: one
        # sentence, exit 2, as for every other missing prerequisite.
        what = f" ({e.strerror.lower()}: {e.filename})" if e.filename else ""
        words = sys.argv[1:] if argv is None else argv
        command = next((w for w in words if not w.startswith("-")), "")
        print(f"lab: lab {command} needs root{what}: run it as root (e.g. with sudo)",
              file=sys.stderr)
        return EXIT_USAGE
