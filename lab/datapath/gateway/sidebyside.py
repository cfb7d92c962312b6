"""`lab bench gateway`: the stateful gateway next to the stateless translator and to plain IPv6,
side by side in one lab and one run.

One lab (topologies/gateway.yaml, the client given an IPv6 address too): the gateway node
runs bpf/gateway.c and, after it on the same tcx hooks, the stateless translator
(bpf/xlate.c). The same client reaches the same pod three ways, through the same devices and
programs:

  stateful   client -> VIP 203.0.113.80 (IPv4): a service, DNAT + SNAT, conntrack, NAT46
  stateless  client -> 198.51.100.10 (IPv4): the pod's RFC 7757 EAM address, the client seen
             as 64:ff9b:1::/48 + its IPv4 address (RFC 6052), no state
  ipv6       client -> a pod's IPv6 address: routed, both programs look and pass (the pod
             next door, an identical one: the translator's EAM makes pod 0's own IPv6
             address one it translates)

Measured with lab-rr (lab/traffic/rr.py): connections per second (connect, 1-byte request and
response, close: TCP_CRR) and 1-byte request/response latency percentiles over one
connection (TCP_RR). The paths take turns within every repeat, so drift hits them alike;
results are medians of the repeats and ratios to plain IPv6. Besides: Maglev table build
times (100 and 1000 backends) and ns/packet of both programs (`lab bench prog`). Nothing is
asserted: a shared 2-core machine gives ratios, not absolute figures.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import yaml

from lab.bpf import attach, bench
from lab.bpf.object import BpfObject
from lab.bpf.topology import maps_pin_dir
from lab.datapath.gateway import maglev
from lab.datapath.gateway.control import Gateway
from lab.datapath.gateway.feature import GatewayDatapath
from lab.datapath.gateway.model import Backend, Frontend, Service
from lab.journal import BpfAttached
from lab.lab import Lab
from lab.topology import parse
from lab.traffic import rr
from lab.traffic.placement import resolve

REPO = Path(__file__).resolve().parents[3]
GATEWAY = GatewayDatapath()      # the one feature the bench's lab runs (the translator is
                                 # attached by hand, after the gateway: attach_translator)
TOPOLOGY = REPO / "topologies" / "gateway.yaml"

VIP = "203.0.113.80"
POD, POD6 = "node1-pod0", "fd00:10:244:1::10"
POD4 = "198.51.100.10"                       # pod 0's EAM address
PLAIN_POD, PLAIN_POD6 = "node1-pod1", "fd00:10:244:1::11"
CLIENT6, GW6_CLIENT = "fd00:0:0:2::10", "fd00:0:0:2::1"
TRANSLATOR = {"prefix": "64:ff9b:1::/48", "eam": [{"ipv4": f"{POD4}/32", "ipv6": f"{POD6}/128"}]}
PATHS = ("stateful", "stateless", "ipv6")
RR_PORT, CRR_PORT = 7100, 7101


@dataclass
class PathResult:
    cps: list[float] = field(default_factory=list)
    latency_us: dict[str, list[float]] = field(default_factory=lambda: {
        "p50": [], "p90": [], "p99": []})

    def medians(self) -> dict[str, float]:
        out = {"cps": statistics.median(self.cps)}
        out.update({k: statistics.median(v) for k, v in self.latency_us.items()})
        return out


@dataclass
class GatewayBench:
    repeats: int
    seconds: float
    placement: str
    paths: dict[str, PathResult]
    maglev_ms: dict[int, float]          # backends -> median build time (ms)
    maglev_table_size: int
    ns_per_packet: dict[str, float]      # bench case -> ns/packet (median)
    ns_baseline: dict[str, float]        # empty program of the same type
    cpus: dict[str, Any] = field(default_factory=dict)

    def ratios(self) -> dict[str, dict[str, float]]:
        """Each path's medians over plain IPv6's."""
        base = self.paths["ipv6"].medians()
        return {p: {k: v / base[k] for k, v in r.medians().items()}
                for p, r in self.paths.items()}

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["medians"] = {p: r.medians() for p, r in self.paths.items()}
        d["ratios_to_ipv6"] = self.ratios()
        return d

    def text(self) -> str:
        med, rat = {p: r.medians() for p, r in self.paths.items()}, self.ratios()
        lines = [f"client -> pod through the gateway node, {self.repeats} repeats of "
                 f"{self.seconds:g} s, placement {self.placement} (medians; ratio to IPv6):",
                 f"  {'path':<10} {'conn/s':>16} {'p50 us':>16} {'p90 us':>16} {'p99 us':>16}"]
        for p in PATHS:
            cells = [f"{med[p][k]:8.1f} ({rat[p][k]:4.2f})" for k in ("cps", "p50", "p90",
                                                                       "p99")]
            lines.append(f"  {p:<10} " + " ".join(f"{c:>16}" for c in cells))
        lines.append(f"Maglev table build (M={self.maglev_table_size}, weights 1-3): "
                     + ", ".join(f"{n} backends {ms:.1f} ms" for n, ms in
                                 self.maglev_ms.items()))
        lines.append("BPF_PROG_TEST_RUN, established connections / translator mix: "
                     + ", ".join(f"{k} {v:.0f} ns/packet (empty program "
                                 f"{self.ns_baseline[k]:.0f})"
                                 for k, v in self.ns_per_packet.items()))
        return "\n".join(lines)


def topology(name: str):
    """topologies/gateway.yaml with the client dual-stack, for the plain IPv6 path."""
    data = yaml.safe_load(TOPOLOGY.read_text())
    data["name"] = name
    client_end = data["links"][0]["ends"][0]
    gw_end = data["links"][0]["ends"][1]
    client_end["addresses"].append(f"{CLIENT6}/64")
    gw_end["addresses"].append(f"{GW6_CLIENT}/64")
    data["nodes"]["client"]["routes"].append({"dst": "default6", "via": GW6_CLIENT})
    data["datapath"]["gateway"]["services"] = []
    return parse(yaml.safe_dump(data, sort_keys=False), file=f"{TOPOLOGY} (bench)",
                 datapaths=(GATEWAY,))


def attach_translator(lab: Lab) -> None:
    """The stateless translator after the gateway on the gateway's tcx ingress hooks."""
    from lab.datapath.translator import INGRESS_TC, OBJECT, TranslatorConfig

    gw = lab.node("gw")
    obj = BpfObject(OBJECT, str(maps_pin_dir(lab.pin_dir, "gw", OBJECT)))
    try:
        obj.load()
        TranslatorConfig.from_dict(TRANSLATOR).apply(obj)
        for ifname in ("eth-client", "eth-node"):
            rec = attach.attach(obj.program(INGRESS_TC), "ingress", ifname,
                                pin_dir=str(lab.pin_dir / "gw"),
                                pin_name=f"{ifname}:ingress:{INGRESS_TC}", netns=gw.netns)
            lab.record.append(BpfAttached("gw", OBJECT, rec.to_dict()))
    finally:
        obj.close()


def maglev_build_ms(backends: int, table_size: int, repeats: int) -> float:
    entries = [maglev.Entry(f"[fd00:10:244:{i // 256:x}::{i % 256:x}]:8080", i + 1, 1 + i % 3)
               for i in range(backends)]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        maglev.build(entries, table_size)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run(repeats: int = 5, seconds: float = 2.0, placement: str = "same-cpu",
        log_dir: Path | None = None) -> GatewayBench:
    name = f"gwbench{os.getpid() % 10000}"
    place = resolve(placement)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="lab-bench-gateway-"))
    paths = {p: PathResult() for p in PATHS}
    with Lab(topology(name), datapaths=(GATEWAY,)) as lab:
        attach_translator(lab)
        client = lab.node("client")
        with Gateway.open(maps_pin_dir(lab.pin_dir, "gw", "gateway")) as gw:
            for port in (RR_PORT, CRR_PORT):
                gw.add_service(Service(Frontend(IPv4Address(VIP), port),
                                       (Backend(IPv6Address(POD6), port),)))
        servers = {}
        for pod in (POD, PLAIN_POD):
            servers[pod] = (rr.start(lab.node(pod), log_dir, 1, 1, port=RR_PORT),
                            rr.start(lab.node(pod), log_dir, 1, 1, connect_each=True,
                                     port=CRR_PORT))
        targets = {"stateful": (VIP, POD), "stateless": (POD4, POD),
                   "ipv6": (PLAIN_POD6, PLAIN_POD)}
        for addr, pod in targets.values():   # every path once (neighbours, routes)
            rr.measure(client, servers[pod][0], addr, place, 1, 1, seconds=0.3, warmup=0.1)
        for _ in range(repeats):
            for path in PATHS:
                addr, pod = targets[path]
                rr_server, crr_server = servers[pod]
                c = rr.measure(client, crr_server, addr, place, 1, 1, seconds=seconds,
                               connect_each=True)
                paths[path].cps.append(c.transactions_per_second)
                r = rr.measure(client, rr_server, addr, place, 1, 1, seconds=seconds)
                for k in ("p50", "p90", "p99"):
                    paths[path].latency_us[k].append(r.latency_us[k])
        cpus = {"client": c.client_cpus, "server": c.server_cpus}
    from lab.datapath.gateway.bench import BENCH_CASES
    from lab.datapath.translator.config import bench_cases as translator_cases

    cases = bench.by_name(BENCH_CASES, translator_cases())
    ns, base = {}, {}
    for case in ("gateway-tc", "xlate-tc"):
        res = bench.measure(cases[case], runs=5)
        ns[case], base[case] = res.ns_per_packet, res.baseline_ns
    m = maglev.DEFAULT_TABLE_SIZE
    builds = {n: maglev_build_ms(n, m, repeats) for n in (100, 1000)}
    return GatewayBench(repeats, seconds, placement, paths, builds, m, ns, base, cpus)

