"""Step kinds of the stateless translator's scenarios (scenarios/nat46*.yaml): what the far
end sees of a translated connection, DNS64 answers, the translator's counters, and its
per-packet cost in BPF_PROG_TEST_RUN.

  xlate_source   a TCP connection from `client` to `server` (by `address`, which may be a
                 name: it is resolved in the client, e.g. through DNS64); a check that the
                 server saw the source the topology's translator section says it should (the
                 RFC 6052 address of an IPv4 client, the EAM address of a pod)
  dns64_resolve  `getent ahostsv6 NAME` in a node; a check that the answer is the address
                 the resolver synthesizes (the zone's A records inside the prefix)
  xlate_counters the translator's outcome counters since the previous such step
  xlate_cost     `lab bench prog`'s ns/packet for the translator's traffic mix at tc or XDP
"""

from __future__ import annotations

import socket
import sys
import time

from lab.datapath.translator import topology as tt
from lab.errors import LabError
from lab.scenarios.context import StepContext
from lab.scenarios.registry import Metric, step
from lab.scenarios.steps import NODE
from lab.topology import Topology

CONNECT = ("import socket, sys, time; t = time.monotonic(); "
           "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10); "
           "ms = (time.monotonic() - t) * 1000; s.sendall(b'lab'); s.recv(1); "
           "print(s.getpeername()[0], ms); s.close()")


def _families(topo: Topology, node: str) -> set[int]:
    return {a.version for a in topo.nodes[node].addresses() if not a.ip.is_link_local}


def _check_source(p: dict, topo: Topology) -> tuple[str, str] | None:
    for key in ("client", "server"):
        if p[key] not in topo.nodes:
            return key, f"no node '{p[key]}'"
    if tt.section(topo) is None:
        return "server", "the topology has no datapath.translator section"
    if "family" not in p and len(_families(topo, p["server"])) != 1:
        return "server", f"node '{p['server']}' has both families: say which the server " \
                         "listens on (`family`)"
    return None


@step("xlate_source", check=_check_source,
      schema={"type": "object", "additionalProperties": False,
              "required": ["client", "server", "address"],
              "properties": {
                  "client": NODE, "server": NODE,
                  "address": {"type": "string",
                              "description": "what the client connects to: an address, or "
                                             "a name it resolves (DNS64)"},
                  "family": {"enum": [4, 6], "description": "the server's socket family "
                                                            "(default: its only one)"},
                  "expect": {"type": "string",
                             "description": "the source the server must see (default: the "
                                            "client's address through the translator)"}}},
      metrics={"connect": Metric("ms", "lower", "TCP connect through the translator")})
def xlate_source(ctx: StepContext, p: dict) -> None:
    """A TCP connection through the translator: the source the server sees."""
    topo = ctx.lab.topology
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    family = p.get("family") or _families(topo, server.name).pop()
    if "expect" in p:
        expect = p["expect"]
    else:
        other = 6 if family == 4 else 4
        mine = client.addresses(other)
        if not mine:
            raise LabError(f"{client.name} has no IPv{other} address to translate: give "
                           "`expect`")
        expect = tt.address_of(topo, mine[0])
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    from lab import netns
    srv = netns.socket_in(server.netns, af, socket.SOCK_STREAM)
    try:
        srv.bind(("::" if family == 6 else "0.0.0.0", 0))
        srv.listen(1)
        srv.settimeout(15)
        port = srv.getsockname()[1]
        proc = client.popen([sys.executable, "-c", CONNECT, p["address"], str(port)],
                            stdout=-1, stderr=-1, text=True)
        try:
            conn, peer = srv.accept()
        except OSError:
            proc.kill()
            out, err = proc.communicate()
            raise LabError(f"{client.name} did not connect to {p['address']}: "
                           f"{err.strip()[-300:]}") from None
        with conn:
            conn.settimeout(10)
            conn.recv(16)
            conn.sendall(b"!")
        out, err = proc.communicate(timeout=15)
    finally:
        srv.close()
    if proc.returncode != 0:
        raise LabError(f"{client.name}: {err.strip()[-300:]}")
    dest, ms = out.split()
    seen = peer[0]
    ctx.record("connect", float(ms))
    ctx.fact("destination", dest)
    ctx.fact("seen_source", seen)
    ctx.check(seen == expect, f"{server.name} sees {client.name} as {expect}",
              measured=seen, expected=expect)


@step("dns64_resolve",
      check=lambda p, topo: None if p["node"] in topo.nodes else ("node", f"no node "
                                                                          f"'{p['node']}'"),
      schema={"type": "object", "additionalProperties": False, "required": ["node", "name"],
              "properties": {"node": NODE, "name": {"type": "string"}}},
      metrics={"resolve": Metric("ms", "lower", "getent ahostsv6 in the node")})
def dns64_resolve(ctx: StepContext, p: dict) -> None:
    """Resolve a name in a node through its resolver: the AAAA answer, and whether it is the
    DNS64 synthesis of the translator section's zone."""
    started = time.monotonic()
    out = ctx.node(p["node"]).run(["getent", "ahostsv6", p["name"]], check=False, timeout=20)
    ms = (time.monotonic() - started) * 1000
    answer = sorted({line.split()[0] for line in out.stdout.splitlines() if line.strip()})
    ctx.record("resolve", ms)
    ctx.fact("answer", answer)
    cfg = tt.placement(ctx.lab.topology).dns64
    if cfg is not None and p["name"].rstrip(".") == cfg.zone:
        ctx.check(answer == sorted(cfg.synthesized()), f"{p['name']} resolves to its DNS64 "
                  f"synthesis in {cfg.prefix}", measured=answer,
                  expected=sorted(cfg.synthesized()))
    else:
        ctx.check(bool(answer), f"{p['name']} resolves", measured=answer)


@step("xlate_counters",
      schema={"type": "object", "additionalProperties": False, "properties": {}},
      metrics={"translated": Metric("packets", "none", "translated either way since the "
                                                       "previous counters step"),
               "dropped": Metric("packets", "lower", "dropped by the translator since then")})
def xlate_counters(ctx: StepContext, p: dict) -> None:
    """The translator's outcome counters since the previous xlate_counters step of this lab
    (a lab without the BPF engine records nothing)."""
    if tt.placement(ctx.lab.topology).engine != "bpf":
        return
    now = tt.statistics(ctx.lab)
    last = ctx.service(("xlate-counters", ctx.lab.name), lambda: {"stats": {}})
    before = last["stats"]
    delta = {k: v - before.get(k, 0) for k, v in now.items()}
    last["stats"] = now
    ctx.record("translated", delta["done46"] + delta["done64"])
    ctx.record("dropped", sum(v for k, v in delta.items() if k.startswith("drop_")))
    ctx.fact("outcomes", {k: v for k, v in delta.items() if v})


@step("xlate_cost",
      schema={"type": "object", "additionalProperties": False,
              "properties": {"hook": {"enum": ["tc", "xdp"], "default": "tc"},
                             "runs": {"type": "integer", "minimum": 1, "maximum": 50,
                                      "default": 5}}},
      metrics={"ns_per_packet": Metric("ns", "lower", "the traffic mix's mean, median of "
                                                      "runs (BPF_PROG_TEST_RUN)"),
               "baseline_ns": Metric("ns", "none", "an empty program in the same harness")})
def xlate_cost(ctx: StepContext, p: dict) -> None:
    """`lab bench prog xlate-tc|xlate-xdp`: the translator's own cost per packet."""
    from lab.bpf import bench
    from lab.datapath.translator.config import bench_cases

    case = bench.by_name(bench_cases())[f"xlate-{p['hook']}"]
    result = bench.measure(case, runs=p["runs"])
    ctx.record("ns_per_packet", result.ns_per_packet)
    ctx.record("baseline_ns", result.baseline_ns)
    ctx.fact("by_packet_ns", {t.label: round(t.ns) for t in result.packets})


# -- BIG TCP through the translator -----------------------------------------------------------

def _check_path(p: dict, topo: Topology) -> tuple[str, str] | None:
    nodes = p["path"]
    for n in nodes:
        if n not in topo.nodes:
            return "path", f"no node '{n}'"
    for a, b in zip(nodes, nodes[1:]):
        if not any(i.peer_node == b for i in topo.nodes[a].interfaces.values()):
            return "path", f"no link joins {a} and {b}"
    return None


@step("xlate_big_packets", check=_check_path,
      schema={"type": "object", "additionalProperties": False,
              "properties": {"path": {"type": "array", "minItems": 2,
                                      "items": {"type": "string"},
                                      "default": ["client", "gw", "server"],
                                      "description": "nodes in order, across the translator"}}},
      metrics={"big4": Metric("packets", "none", "IPv4 packets above 64 KiB at the path's "
                                                 "link ends since the previous such step"),
               "big6": Metric("packets", "none", "IPv6 packets above 64 KiB, likewise")})
def xlate_big_packets(ctx: StepContext, p: dict) -> None:
    """What crossed the path's link ends above 64 KiB, per family, since the previous step
    of this kind (the first one attaches the big packet counter and only zeroes it), and how
    each end saw them marked (IPv4 tot_len 0; IPv6 hop-by-hop jumbo or a bare zero)."""
    from lab.datapath import bigtcp

    key = ("xlate-big-packets", tuple(p["path"]))
    first = key not in ctx.services.started
    counter = ctx.service(key, lambda: bigtcp.BigPacketCounter(
        ctx.lab, bigtcp.path(ctx.lab, *p["path"]).ends).attach())
    if first:
        counter.reset()
        return
    reading = counter.read()
    counter.reset()
    ctx.record("big4", reading.big_packets(family=4))
    ctx.record("big6", reading.big_packets(family=6))
    ctx.fact("above_64k", {f"{c.end} {c.direction} IPv{c.family}":
                           {"packets": c.big_packets, "marked_as": list(c.lenfields)}
                           for c in reading.counts if c.big_packets})


STEP_KINDS = (xlate_source, dns64_resolve, xlate_counters, xlate_cost, xlate_big_packets)
