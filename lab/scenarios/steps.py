"""The built-in step kinds: traffic between two nodes (iperf3, rr, crr, netperf_rr,
netperf_crr, netperf_stream, rr_crosscheck, sockperf, ping) and reachability across the lab.
Datapath features offer their own (lab/scenarios/registry.py).

Every traffic step names a client and a server node, the address family (the server's first
address of that family, or an explicit `address`, e.g. a translated one) and the CPU placement.
Servers are started once per lab and kept for the scenario; every measurement opens a fresh
connection.
"""

from __future__ import annotations

import statistics

from lab.reach import reachability
from lab.scenarios.context import StepContext
from lab.scenarios.records import Distribution
from lab.scenarios.registry import Metric, step
from lab.topology import Topology
from lab.traffic import iperf3, netperf, ping, rr, sockperf
from lab.traffic.placement import PLACEMENTS

NODE = {"type": "string", "description": "a node of the lab (pods too: node1-pod0)"}
FAMILY = {"enum": [4, 6], "default": 6,
          "description": "which of the server's addresses to use"}
ADDRESS = {"type": "string",
           "description": "the address to reach instead of the server's own (e.g. translated)"}
PLACEMENT = {"enum": list(PLACEMENTS), "default": "same-cpu"}
SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": 600, "default": 2}
MESSAGE = {"type": "integer", "minimum": 1, "maximum": 64 * 1024 * 1024}


def _pair_schema(**extra) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["client", "server"],
            "properties": {"client": NODE, "server": NODE, "family": FAMILY,
                           "address": ADDRESS, "placement": PLACEMENT, "seconds": SECONDS,
                           **extra}}


def check_pair(p: dict, topo: Topology) -> tuple[str, str] | None:
    """The client and server exist, and the server has an address of the family."""
    for key in ("client", "server"):
        if p[key] not in topo.nodes:
            return key, f"no node '{p[key]}' in topology {topo.file} (nodes: " \
                        f"{', '.join(topo.nodes)})"
    if p["client"] == p["server"]:
        return "server", "client and server are the same node"
    if "address" not in p:
        server = topo.nodes[p["server"]]
        if not [a for a in server.addresses(p["family"]) if not a.ip.is_link_local]:
            return "family", f"node '{p['server']}' has no IPv{p['family']} address (give " \
                             "`address` to reach it through a translator)"
    return None


def _address(ctx: StepContext, p: dict) -> str:
    return p.get("address") or ctx.node(p["server"]).address(p["family"])


# -- iperf3 -------------------------------------------------------------------------------------

@step("iperf3", requires=["iperf3"], check=check_pair,
      schema=_pair_schema(
          seconds={"type": "integer", "minimum": 1, "maximum": 600, "default": 2,
                   "description": "whole seconds (iperf3 3.12 reads --time as an integer)"},
          mss={"type": "integer", "minimum": 88, "maximum": 65535,
               "description": "TCP maximum segment size (iperf3 --set-mss)"},
          length={"type": "integer", "minimum": 1, "maximum": 16 * 1024 * 1024,
                  "description": "bytes per write (iperf3 --length; default 128 KiB)"},
          zerocopy={"type": "boolean", "default": False,
                    "description": "sendfile() instead of write() (iperf3 --zerocopy)"},
          reverse={"type": "boolean", "default": False,
                   "description": "the server sends (iperf3 --reverse)"}),
      metrics={
          "throughput": Metric("Gbit/s", "higher", "single TCP stream, as received"),
          "retransmits": Metric("segments", "lower", "TCP retransmissions of the sender"),
          "client_cpu": Metric("%", "lower", "iperf3 client process CPU (user+system)"),
          "server_cpu": Metric("%", "lower", "iperf3 server process CPU (user+system)"),
      },
      timelines={"throughput": Metric("Gbit/s", "higher",
                                      f"sent per {iperf3.INTERVAL:g} s (iperf3 --interval)")})
def iperf3_step(ctx: StepContext, p: dict) -> None:
    """Single-stream TCP throughput (iperf3 -J), CPU use of both ends, retransmits."""
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    srv = ctx.service(("iperf3", server.name),
                      lambda: iperf3.start(server, ctx.log_dir, ctx.port(server.name,
                                                                        iperf3.DEFAULT_PORT)))
    placement = ctx.placement(p["placement"])
    res = iperf3.measure(client, srv, _address(ctx, p), placement, seconds=p["seconds"],
                         mss=p.get("mss"), length=p.get("length"), zerocopy=p["zerocopy"],
                         reverse=p["reverse"])
    ctx.placement_used(placement, res.client_cpus, res.server_cpus)
    ctx.record("throughput", res.throughput_gbps)
    ctx.record("retransmits", res.retransmits)
    ctx.record("client_cpu", res.client_cpu_percent)
    ctx.record("server_cpu", res.server_cpu_percent)
    if res.intervals:
        ctx.timeline("throughput", [t for t, _ in res.intervals], [v for _, v in res.intervals])


# -- lab-rr: request/response and connection rate ------------------------------------------------

LATENCY = {
    "min": Metric("us", "lower", "fastest transaction"),
    "p50": Metric("us", "lower", "median transaction latency"),
    "p90": Metric("us", "lower", "90th percentile transaction latency"),
    "p99": Metric("us", "lower", "99th percentile transaction latency"),
    "mean": Metric("us", "lower", "mean transaction latency"),
}


def _rr(ctx: StepContext, p: dict, connect_each: bool):
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    request = p["request"]
    response = p.get("response", request)
    srv = ctx.service(("lab-rr", server.name, request, response, connect_each),
                      lambda: rr.start(server, ctx.log_dir, request, response, connect_each,
                                       port=ctx.port(server.name, rr.DEFAULT_PORT)))
    placement = ctx.placement(p["placement"])
    res = rr.measure(client, srv, _address(ctx, p), placement, request, response,
                     seconds=p["seconds"], connect_each=connect_each, warmup=p["warmup"])
    ctx.placement_used(placement, res.client_cpus, res.server_cpus)
    for key in LATENCY:
        ctx.record(key, res.latency_us[key])
    ctx.distribution(latency_distribution(res))
    return res


# lab-rr's exact percentiles, by the fraction they are the quantile of.
QUANTILES = {"min": "0", "p50": "0.5", "p90": "0.9", "p99": "0.99", "p999": "0.999",
             "max": "1"}
TRANSACTION_LATENCY = Metric("us", "lower", "latency of each transaction")


def latency_distribution(res: rr.RRResult) -> Distribution:
    """Every transaction of a lab-rr run: its bucket counts and exact quantiles."""
    lat = res.latency_us
    hist = res.histogram or {}
    return Distribution(unit="us", count=res.transactions,
                        quantiles={q: lat[k] for k, q in QUANTILES.items() if k in lat},
                        per_decade=hist.get("per_decade", 0), first=hist.get("first", 0),
                        counts=list(hist.get("counts", [])), mean=lat.get("mean"),
                        source="lab-rr")


RR_PARAMS = dict(
    request={**MESSAGE, "default": 1, "description": "request size in bytes"},
    response={**MESSAGE, "description": "response size in bytes (default: the request's)"},
    warmup={"type": "number", "minimum": 0, "maximum": 60, "default": 0.2,
            "description": "seconds of transactions not counted at the start"})


@step("rr", check=check_pair, schema=_pair_schema(**RR_PARAMS),
      distribution=TRANSACTION_LATENCY,
      metrics={"tps": Metric("transactions/s", "higher",
                             "request/response transactions per second, one in flight"),
               **LATENCY})
def rr_step(ctx: StepContext, p: dict) -> None:
    """Request/response latency and transactions/s over one connection (lab-rr, as TCP_RR)."""
    res = _rr(ctx, p, connect_each=False)
    ctx.record("tps", res.transactions_per_second)


@step("crr", check=check_pair, schema=_pair_schema(**RR_PARAMS),
      distribution=TRANSACTION_LATENCY,
      metrics={"cps": Metric("connections/s", "higher",
                             "connect + request + response + close, one at a time"),
               **LATENCY})
def crr_step(ctx: StepContext, p: dict) -> None:
    """Connections per second: a new TCP connection per transaction (lab-rr, as TCP_CRR)."""
    res = _rr(ctx, p, connect_each=True)
    ctx.record("cps", res.transactions_per_second)


# -- netperf: the published figures' tool ------------------------------------------------------

NETPERF_PARAMS = dict(
    port={"type": "integer", "minimum": 1, "maximum": 65534, "default": netperf.DEFAULT_PORT,
          "description": "netserver's control port (a Service must forward it and the next)"},
    data_port={"type": "integer", "minimum": 1, "maximum": 65535,
               "description": "the data connection's server port (default: port + 1)"})
NETPERF_RR_PARAMS = dict(
    request={**MESSAGE, "default": 1, "description": "request size in bytes"},
    response={**MESSAGE, "description": "response size in bytes (default: the request's)"},
    seconds={"type": "integer", "minimum": 1, "maximum": 600, "default": 2,
             "description": "whole seconds (netperf -l)"},
    **NETPERF_PARAMS)


def _netperf(ctx: StepContext, p: dict, test: str) -> netperf.NetperfResult:
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    srv = ctx.service(("netserver", server.name, p["port"]),
                      lambda: netperf.start(server, ctx.log_dir, p["port"]))
    placement = ctx.placement(p["placement"])
    res = netperf.measure(client, srv, _address(ctx, p), placement, test, p["seconds"],
                          p.get("request", 1), p.get("response"), p.get("data_port"))
    ctx.placement_used(placement, res.client_cpus, res.server_cpus)
    for key in LATENCY:
        if key in res.latency_us:
            ctx.record(key, res.latency_us[key])
    return res


NETPERF_LATENCY = {k: Metric(m.unit, m.better, m.description + " (netperf -j, whole us)")
                   for k, m in LATENCY.items()}


@step("netperf_rr", requires=["netperf"], check=check_pair,
      schema=_pair_schema(**NETPERF_RR_PARAMS),
      metrics={"tps": Metric("transactions/s", "higher", "netperf TCP_RR"), **NETPERF_LATENCY})
def netperf_rr_step(ctx: StepContext, p: dict) -> None:
    """netperf TCP_RR: transactions/s and latency percentiles over one connection."""
    ctx.record("tps", _netperf(ctx, p, "TCP_RR").rate)


@step("netperf_crr", requires=["netperf"], check=check_pair,
      schema=_pair_schema(**NETPERF_RR_PARAMS),
      metrics={"cps": Metric("connections/s", "higher", "netperf TCP_CRR"), **NETPERF_LATENCY})
def netperf_crr_step(ctx: StepContext, p: dict) -> None:
    """netperf TCP_CRR: a new connection per transaction, connections/s and latency."""
    ctx.record("cps", _netperf(ctx, p, "TCP_CRR").rate)


@step("netperf_stream", requires=["netperf"], check=check_pair,
      schema=_pair_schema(seconds=NETPERF_RR_PARAMS["seconds"], **NETPERF_PARAMS),
      metrics={"throughput": Metric("Gbit/s", "higher", "netperf TCP_STREAM, one stream")})
def netperf_stream_step(ctx: StepContext, p: dict) -> None:
    """netperf TCP_STREAM: single-stream throughput."""
    ctx.record("throughput", _netperf(ctx, p, "TCP_STREAM").rate)


@step("rr_crosscheck", requires=["netperf"], check=check_pair,
      schema=_pair_schema(
          seconds={"type": "number", "minimum": 0.1, "maximum": 10, "default": 0.5,
                   "description": "length of each run"},
          pairs={"type": "integer", "minimum": 1, "maximum": 50, "default": 8,
                 "description": "pairs of runs, netperf and lab-rr, taking turns first"},
          request={**MESSAGE, "default": 1}, **NETPERF_PARAMS),
      metrics={"netperf_tps": Metric("transactions/s", "higher", "netperf TCP_RR"),
               "labrr_tps": Metric("transactions/s", "higher", "lab-rr rr"),
               "ratio": Metric("x", "none", "lab-rr / netperf transactions/s, per pair")})
def rr_crosscheck_step(ctx: StepContext, p: dict) -> None:
    """lab-rr against netperf TCP_RR on the same path and placement: short runs in pairs,
    taking turns, so both tools see the same machine."""
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    address, request, seconds = _address(ctx, p), p["request"], p["seconds"]
    np_srv = ctx.service(("netserver", server.name, p["port"]),
                         lambda: netperf.start(server, ctx.log_dir, p["port"]))
    rr_srv = ctx.service(("lab-rr", server.name, request, request, False),
                         lambda: rr.start(server, ctx.log_dir, request, request, False,
                                          port=ctx.port(server.name, rr.DEFAULT_PORT)))
    placement = ctx.placement(p["placement"])
    # netperf runs whole seconds or a number of transactions: a first second tells how many
    # make SECONDS (not recorded), then both tools run that long in each pair
    first = netperf.measure(client, np_srv, address, placement, "TCP_RR", 1, request, request,
                            p.get("data_port"))
    count = max(100, round(first.rate * seconds))

    def netperf_tps() -> float:
        return netperf.measure(client, np_srv, address, placement, "TCP_RR", seconds, request,
                               request, p.get("data_port"), transactions=count).rate

    def labrr_tps() -> float:
        b = rr.measure(client, rr_srv, address, placement, request, request,
                       seconds=seconds, warmup=0.05)
        ctx.placement_used(placement, b.client_cpus, b.server_cpus)
        return b.transactions_per_second

    for i in range(p["pairs"]):
        # ABBA: the tools take turns going first, so a drift of the machine's load over a
        # pair does not favour either
        if i % 2 == 0:
            a = netperf_tps()
            b = labrr_tps()
        else:
            b = labrr_tps()
            a = netperf_tps()
        ctx.record("netperf_tps", a)
        ctx.record("labrr_tps", b)
        ctx.record("ratio", b / a)


# -- sockperf -----------------------------------------------------------------------------------

@step("sockperf", requires=["sockperf"], check=check_pair,
      schema=_pair_schema(
          family={"enum": [4], "default": 4, "description": "sockperf 3.7 is IPv4 only"},
          message={"type": "integer", "minimum": sockperf.MIN_MESSAGE,
                   "maximum": sockperf.MAX_MESSAGE, "default": 64,
                   "description": "message size (sockperf's own limits)"}),
      metrics={"round_trips": Metric("round trips/s", "higher", "sockperf ping-pong rate"),
               "rtt_min": Metric("us", "lower"), "rtt_p50": Metric("us", "lower"),
               "rtt_p90": Metric("us", "lower"), "rtt_p99": Metric("us", "lower")})
def sockperf_step(ctx: StepContext, p: dict) -> None:
    """TCP ping-pong round-trip times with sockperf (IPv4 only), a cross-check of rr."""
    client, server = ctx.node(p["client"]), ctx.node(p["server"])
    address = _address(ctx, p)
    srv = ctx.service(("sockperf", server.name, address),
                      lambda: sockperf.start(server, address, ctx.log_dir,
                                             ctx.port(server.name, sockperf.DEFAULT_PORT)))
    placement = ctx.placement(p["placement"])
    res = sockperf.measure(client, srv, address, placement, p["message"], p["seconds"])
    ctx.placement_used(placement, res.client_cpus, res.server_cpus)
    ctx.record("round_trips", res.round_trips_per_second)
    for key in ("min", "p50", "p90", "p99"):
        ctx.record(f"rtt_{key}", res.rtt_us[key])


# -- ping and reachability ----------------------------------------------------------------------

@step("ping", check=lambda p, topo: check_pair({**p, "client": p["from"], "server": p["to"]},
                                               topo),
      schema={"type": "object", "additionalProperties": False, "required": ["from", "to"],
              "properties": {"from": NODE, "to": NODE, "family": FAMILY, "address": ADDRESS,
                             "count": {"type": "integer", "minimum": 1, "maximum": 10000,
                                       "default": 5},
                             "interval": {"type": "number", "minimum": 0.002, "default": 0.1},
                             "size": {"type": "integer", "minimum": 0, "maximum": 65507}}},
      metrics={"loss": Metric("%", "lower", "packets lost"),
               "rtt_avg": Metric("ms", "lower"), "rtt_max": Metric("ms", "lower")})
def ping_step(ctx: StepContext, p: dict) -> None:
    """Ping from one node to another: loss and round-trip times."""
    address = p.get("address") or ctx.node(p["to"]).address(p["family"])
    res = ping.ping(ctx.node(p["from"]), address, p["count"], p["interval"], p.get("size"))
    ctx.record("loss", res.loss_percent)
    if res.rtt_ms:
        ctx.record("rtt_avg", res.rtt_ms["avg"])
        ctx.record("rtt_max", res.rtt_ms["max"])


@step("reach",
      schema={"type": "object", "additionalProperties": False,
              "properties": {"count": {"type": "integer", "minimum": 1, "maximum": 100,
                                       "default": 1}}},
      metrics={"pairs": Metric("pairs", "none", "node pairs sharing an address family"),
               "unreachable": Metric("pairs", "lower", "pairs that did not reach each other"),
               "rtt_median": Metric("ms", "lower", "median ping round trip over all pairs")})
def reach_step(ctx: StepContext, p: dict) -> None:
    """Ping between every pair of nodes that share an address family (lab.reach)."""
    probes = reachability(ctx.lab, count=p["count"])
    failed = [f"{x.src}->{x.dst} ({x.address})" for x in probes if not x.ok]
    rtts = [x.rtt_ms for x in probes if x.rtt_ms is not None]
    ctx.record("pairs", len(probes))
    ctx.record("unreachable", len(failed))
    if rtts:
        ctx.record("rtt_median", statistics.median(rtts))
    ctx.check(not failed, "every node pair sharing a family reaches each other",
              measured=failed or None, expected=[] if failed else None)


# The built-in step kinds, in the order `lab run --list` shows them.
STEP_KINDS = (iperf3_step, rr_step, crr_step, netperf_rr_step, netperf_crr_step,
              netperf_stream_step, rr_crosscheck_step, sockperf_step, ping_step, reach_step)
