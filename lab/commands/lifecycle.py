"""`lab up`, `lab down`, `lab status`, `lab exec`: a lab's life cycle."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from lab import netns, state
from lab.datapath.registry import DATAPATHS
from lab.errors import UsageError
from lab.lab import INSTANCE_ENV, Lab, teardown_record
from lab.netlink import rtnl
from lab.netlink.batch import open_socket, request
from lab.hosts.ssh import describe, remote_argv
from lab.topology import check_lab_name
from lab.topology import load as load_topology
from lab.topology.model import LOCAL_HOST

log = logging.getLogger("lab")


def register(sub) -> None:
    p = sub.add_parser("up", help="bring a topology up as network namespaces",
                       description="Create the namespaces, links, addresses and routes of a "
                                   "topology file and leave them running.")
    p.add_argument("file", help="topology file (topologies/*.yaml)")
    p.add_argument("--name", help="lab name (default: the file's `name`); namespaces are "
                                  "NAME-NODE")
    p.add_argument("--json", action="store_true", help="print the lab's nodes as JSON")
    p.add_argument("--host", metavar="HOST",
                   help="make only HOST's part of a topology that spans hosts (`hosts:`), "
                        "here, as if this machine were HOST; without it `lab up` makes "
                        "`local`'s part here and has every other host make its own over SSH")
    p.set_defaults(handler=cmd_up)

    p = sub.add_parser("down", help="tear labs down",
                       description="Remove everything a lab created: namespaces, links, BPF "
                                   "pins, processes. Works after a crash too.")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every lab on this machine")
    p.set_defaults(handler=cmd_down)

    p = sub.add_parser("status", help="labs that are up, their nodes and interfaces")
    p.add_argument("name", nargs="?", help="show one lab in detail")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("exec", help="run a command in a node's namespace",
                       description="Like `ip netns exec LAB-NODE CMD`.")
    p.add_argument("--lab", help="lab name (needed when several labs are up)")
    p.add_argument("node")
    p.add_argument("cmd", nargs="+", metavar="CMD")
    p.set_defaults(handler=cmd_exec)


def cmd_up(args) -> int:
    topo = load_topology(args.file, args.name, DATAPATHS)
    if args.host is not None and args.host not in topo.hosts:
        raise UsageError(f"--host {args.host}: the topology names no such host (hosts: "
                         f"{', '.join(topo.hosts)})")
    lab = Lab(topo, datapaths=DATAPATHS, host=args.host or LOCAL_HOST)
    try:
        lab.up()
    finally:
        lab.close_sessions()
    if args.json:
        print(json.dumps(_lab_summary(lab), indent=2))
    else:
        print(f"lab {lab.name} is up: {len(lab.nodes)} nodes, {len(lab.topology.links)} links")
        shown = [n for n in lab.nodes.values() if n.role != "pod"]
        for node in shown:
            addrs = " ".join(node.addresses())
            where = "" if not lab.topology.remote_hosts() else f"on {node.model.host:<8} "
            print(f"  {node.name:<12} {node.role:<8} {where}netns {node.netns:<24} {addrs}")
        pods = lab.pods()
        if pods:
            print(f"  ({len(pods)} pods: {pods[0].name} ... {pods[-1].name})")
        print(f"enter a node with `lab exec NODE -- CMD` or `ip netns exec {lab.name}-NODE CMD`;"
              f" remove it with `lab down {lab.name}`")
    return 0


def cmd_down(args) -> int:
    names = list(args.names)
    if args.all:
        if names:
            raise UsageError("give lab names or --all, not both")
        names = state.labs()
    elif not names:
        names = _default_lab_names()
    for name in names:
        record = state.LabRecord(check_lab_name(name))
        if not record.exists():
            raise UsageError(f"no lab named '{name}' (labs: {', '.join(state.labs()) or 'none'})")
        with record.locked():
            removed = teardown_record(record)
        print(f"lab {name} is down ({len(removed)} objects removed)")
    return 0


def _default_lab_names() -> list[str]:
    labs = state.labs()
    if len(labs) == 1:
        return labs
    if not labs:
        raise UsageError("no lab is up")
    raise UsageError(f"several labs are up ({', '.join(labs)}): name one, or use --all")


def _lab_summary(lab: Lab) -> dict:
    return {"name": lab.name, "topology": lab.topology.file,
            "nodes": {n.name: {"role": n.role, "netns": n.netns, "addresses": n.addresses()}
                      for n in lab.nodes.values()}}


def kernel_view(ns: str) -> dict[str, dict]:
    """Interfaces of namespace NS as the kernel has them: state, mtu, addresses."""
    with netns.entered(ns):
        sock = open_socket()
    try:
        links = request(sock, rtnl.RTM_GETLINK, rtnl.LinkMessage(), rtnl.LinkMessage, dump=True)
        addrs = request(sock, 22, ifaddrmsg(), ifaddrmsg, dump=True)  # RTM_GETADDR
    finally:
        sock.close()
    view = {}
    names = {}
    for m in links:
        name = m.get_attr("IFLA_IFNAME")
        names[m["index"]] = name
        view[name] = {"state": m.get_attr("IFLA_OPERSTATE"), "mtu": m.get_attr("IFLA_MTU"),
                      "gso_max_size": m.get_attr("IFLA_GSO_MAX_SIZE"),
                      "gso_ipv4_max_size": m.get_attr("IFLA_GSO_IPV4_MAX_SIZE"),
                      "addresses": []}
    for a in addrs:
        name = names.get(a["index"])
        if name is not None:
            view[name]["addresses"].append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
    return view


def cmd_status(args) -> int:
    names = [args.name] if args.name else state.labs()
    out = []
    for name in names:
        record = state.LabRecord(check_lab_name(name))
        if not record.exists():
            raise UsageError(f"no lab named '{name}'")
        inv = record.inventory()
        alive = [p for p in inv.processes.values()
                 if state.process_running(p.pid, p.start)]
        entry = {"name": name, "state": "up" if inv.complete else "incomplete (run lab down)",
                 "topology": inv.created.topology if inv.created else None,
                 "namespaces": len(inv.namespaces),
                 "processes": [{"pid": p.pid, "node": p.node, "argv": list(p.argv)}
                               for p in alive],
                 "pins": inv.pin_dirs,
                 "hosts": {h: {"ssh": p.ssh, "nodes": list(p.nodes)}
                           for h, p in inv.hosts.items()}}
        if args.name and inv.complete:
            lab = Lab.running(name)
            entry["nodes"] = {}
            try:
                for node in lab.nodes.values():
                    if node.local:
                        entry["nodes"][node.name] = {"role": node.role, "netns": node.netns,
                                                     "interfaces": kernel_view(node.netns)}
                for host in {n.model.host for n in lab.nodes.values() if not n.local}:
                    there = lab.session(host).call("status", name=name, timeout=120)
                    for node, info in there.items():
                        entry["nodes"][node] = {**info, "host": host}
            finally:
                lab.close_sessions()
        out.append(entry)
    if args.json:
        print(json.dumps(out if not args.name else out[0], indent=2))
        return 0
    if not out:
        print("no lab is up")
    for e in out:
        print(f"{e['name']}: {e['state']}, {e['namespaces']} namespaces, "
              f"{len(e['processes'])} processes, topology {e['topology']}")
        for host, part in e.get("hosts", {}).items():
            print(f"  host {host} (ssh {part['ssh']}): {len(part['nodes'])} nodes")
        for node, info in e.get("nodes", {}).items():
            where = f", host {info['host']}" if "host" in info else ""
            print(f"  {node} ({info['role']}{where}, netns {info['netns']})")
            for ifname, i in info["interfaces"].items():
                print(f"    {ifname:<10} {i['state']:<8} mtu {i['mtu']:<6} "
                      f"{' '.join(i['addresses'])}")
        for p in e["processes"]:
            print(f"  process {p['pid']} on {p['node']}: {' '.join(p['argv'])}")
    return 0


def cmd_exec(args) -> int:
    name = args.lab or _default_lab_names()[0]
    lab = Lab.running(name)
    node = lab.node(args.node)
    if not node.local:
        # On the node's host, as the user would type it there (a terminal if we have one).
        host = lab.topology.hosts[node.model.host]
        argv = remote_argv(host, "exec", "--lab", name, args.node, "--", *args.cmd)
        if sys.stdin.isatty():
            argv[argv.index("-T")] = "-t"
        log.info("%s: %s", describe(host), " ".join(argv))
        return subprocess.call(argv)
    env = {**os.environ, INSTANCE_ENV: lab.instance}
    try:
        proc = netns.popen(node.netns, args.cmd, env=env)
    except FileNotFoundError:
        raise UsageError(f"command not found: {args.cmd[0]}") from None
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        return 130
    finally:
        sys.stdout.flush()

