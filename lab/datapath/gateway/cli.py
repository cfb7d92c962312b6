"""`lab service add|del|list`, `lab agent` and `lab bench gateway`: the gateway's command line.

Both reach a running gateway through its pinned maps: a lab's (`--lab`, `--node`; by default
the one lab that is up and the one node that attaches the gateway) or any pin directory
(`--pin-dir`). `lab service` changes the maps itself, through the same Gateway class as the
agent's HTTP API.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path

from lab.cli import SubParsers
from lab.datapath.gateway import agent as agent_limits
from lab.digits import int_arg, parse_int, real_arg
from lab.errors import UsageError

SNAT_NOTE = ("SNAT: backends see the gateway ({addrs}) as the client; the client's own "
             "address is not preserved (docs/gateway.md).")


def register(sub: SubParsers) -> None:
    svc = sub.add_parser("service", help="the stateful gateway's services",
                         description="Services of the stateful NAT46/NAT64 gateway and load "
                                     "balancer (bpf/gateway.c) of a running lab.")
    cmds = svc.add_subparsers(dest="service_command", metavar="COMMAND", required=True)

    ls = cmds.add_parser("list", help="services and their backends (as cilium service list)")
    _target_args(ls)
    ls.add_argument("--json", action="store_true", help="as the HTTP API returns them")
    ls.set_defaults(handler=cmd_list)

    add = cmds.add_parser(
        "add", help="add a service",
        description="Add a service: FRONTEND is ADDRESS:PORT[/tcp|udp] (IPv6 in brackets), "
                    "each BACKEND ADDRESS:PORT[,weight=W][,state=active|terminating|"
                    "quarantined].",
        epilog="example: lab service add 203.0.113.80:80/tcp '[fd00:10:244:1::10]:8080,"
               "weight=2' '[fd00:10:244:1::11]:8080'")
    add.add_argument("frontend", metavar="FRONTEND")
    add.add_argument("backends", nargs="*", metavar="BACKEND")
    add.add_argument("--selection", choices=("maglev", "random"), default="maglev",
                     help="how new connections pick a backend (maglev)")
    _target_args(add)
    add.set_defaults(handler=cmd_add)

    rm = cmds.add_parser("del", help="remove a service (its open connections finish)")
    rm.add_argument("service", metavar="ID|FRONTEND")
    _target_args(rm)
    rm.set_defaults(handler=cmd_del)

    agent = sub.add_parser(
        "agent", help="serve the gateway's HTTP/JSON API on a unix socket",
        description="Serve the gateway's HTTP/JSON API (lab/datapath/gateway/openapi.yaml, "
                    "also at /v1/openapi.json) on a unix socket, mode 0600, for root only. "
                    "Runs until interrupted; services and connections live in the pinned "
                    "maps and survive restarts.")
    _target_args(agent)
    agent.add_argument("--socket", type=Path,
                       help="socket path (default: gateway-NODE.sock in the lab's run "
                            "directory)")
    agent.add_argument("--timeout", type=real_arg(0.1, 3600), default=agent_limits.TIMEOUT,
                       metavar="SECONDS", help="for a request to arrive whole, and for its "
                       f"answer to leave ({agent_limits.TIMEOUT:g})")
    agent.add_argument("--max-connections", type=int_arg(1, 4096),
                       default=agent_limits.MAX_CONNECTIONS, metavar="N",
                       help="served at once; more are answered 503 "
                            f"({agent_limits.MAX_CONNECTIONS})")
    agent.set_defaults(handler=cmd_agent)


def register_bench(bench: SubParsers) -> None:
    """`lab bench gateway`."""
    b = bench.add_parser(
        "gateway", help="stateful gateway vs stateless translator vs plain IPv6",
        description="Connections/s and request/response latency from one client to one pod "
                    "through the stateful gateway, the stateless translator and plain IPv6 "
                    "routing, side by side in one lab; Maglev build times; ns/packet of both "
                    "programs. Medians of repeats and ratios to IPv6.")
    b.add_argument("--repeat", type=int_arg(1), default=5, help="repeats (5)")
    b.add_argument("--seconds", type=real_arg(0.1), default=2.0,
                   help="seconds per measurement (2)")
    b.add_argument("--placement", choices=("same-cpu", "cross-cpu", "unpinned"),
                   default="same-cpu", help="client and server CPUs (same-cpu)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=cmd_bench)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lab", help="lab name (needed when several labs are up)")
    p.add_argument("--node", help="the gateway node (needed when several run a gateway)")
    p.add_argument("--pin-dir", type=Path, help="the gateway's map pin directory, instead of "
                                                "a lab's")


def locate(args: argparse.Namespace) -> tuple[Path, str | None, str | None]:
    """(pin directory, lab, node) of the gateway ARGS name."""
    from lab import state
    from lab.bpf.topology import maps_pin_dir
    from lab.datapath.gateway.control import OBJECT
    from lab.datapath.gateway.topology import gateway_nodes
    from lab.lab import Lab

    if args.pin_dir is not None:
        if args.lab or args.node:
            raise UsageError("--pin-dir names the gateway already: no --lab or --node")
        return args.pin_dir, None, None
    name = args.lab
    if name is None:
        labs = state.labs()
        if len(labs) != 1:
            raise UsageError("no lab is up" if not labs else
                             f"several labs are up ({', '.join(labs)}): name one with --lab")
        name = labs[0]
    lab = Lab.running(name)
    nodes = gateway_nodes(lab.topology)
    node = args.node
    if node is None:
        if len(nodes) != 1:
            raise UsageError(f"lab {name} runs no gateway" if not nodes else
                             f"several nodes of lab {name} run a gateway ({', '.join(nodes)})"
                             ": name one with --node")
        node = nodes[0]
    elif node not in nodes:
        raise UsageError(f"node {node} of lab {name} runs no gateway"
                         + (f" (these do: {', '.join(nodes)})" if nodes else ""))
    return maps_pin_dir(lab.pin_dir, node, OBJECT), name, node


def _open(args: argparse.Namespace):
    from lab.features import require_bpf_privileges
    from lab.datapath.gateway.control import Gateway

    require_bpf_privileges(f"lab {args.command}")
    pin_dir, _, _ = locate(args)
    return Gateway.open(pin_dir)


def table(services, settings) -> str:
    """The `cilium service list` layout: ID, Frontend, Service Type, backends by their ids
    (the API's, global to the gateway: the ids to change or delete them by)."""
    rows = [("ID", "Frontend", "Service Type", "Backend")]
    for svc in services:
        kind = f"{svc.type} {svc.selection}"
        backends = [f"{b.id} => {b.name}/{svc.frontend.protocol.upper()} ({b.state}, weight "
                    f"{b.weight})" for b in svc.backends] or ["(none)"]
        rows.append((str(svc.id), str(svc.frontend), kind, backends[0]))
        rows += [("", "", "", b) for b in backends[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "   " + r[3]
             for r in rows]
    if settings is not None:
        addrs = ", ".join(str(a) for a in (settings.snat4, settings.snat6) if a)
        lines += ["", SNAT_NOTE.format(addrs=addrs or "no SNAT address configured")]
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as gw:
        services = gw.services()
        if args.json:
            print(json.dumps([s.to_dict() for s in services], indent=2))
        else:
            print(table(services, gw.settings()))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from lab.datapath.gateway.model import Backend, Frontend, Service

    svc = Service(Frontend.parse(args.frontend), tuple(Backend.parse(b) for b in args.backends),
                  args.selection)
    with _open(args) as gw:
        new = gw.add_service(svc)
        print(table([new], None))
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    from lab.datapath.gateway.model import Frontend, NotFoundError

    with _open(args) as gw:
        if args.service.isascii() and args.service.isdigit():
            try:
                sid = parse_int(args.service)
            except ValueError as e:
                raise UsageError(f"service {e}") from None
        else:
            found = gw.find(Frontend.parse(args.service))
            if found is None:
                raise NotFoundError(f"no service with frontend {args.service}")
            sid = found.id
        gone = gw.delete_service(sid)
        print(f"deleted service {gone.id} ({gone.frontend}); its open connections finish")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from lab import features
    from lab.datapath.gateway import sidebyside as gateway

    features.require_privileges()
    result = gateway.run(args.repeat, args.seconds, args.placement)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.text())
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from lab.datapath.gateway import agent

    pin_dir, lab, node = locate(args)
    path = args.socket
    if path is None:
        if lab is None:
            raise UsageError("with --pin-dir, give --socket")
        path = agent.default_socket(lab, node)
    with _open(args) as gw, agent.serving(gw, path, timeout=args.timeout,
                                          max_connections=args.max_connections):
        logging.getLogger("lab").warning("lab agent: serving %s on %s", pin_dir, path)
        # Serving runs in its own thread: SIGTERM and Ctrl-C (lab.cli) interrupt this wait
        # only, never a request half-way, and the requests being served finish first.
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0
