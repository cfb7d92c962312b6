"""netperf in lab nodes: TCP_RR, TCP_CRR and TCP_STREAM, the tests the published figures use.

netperf 2.7's omni tests report what they measured as key=value lines (`-k` with output
selectors); `-j` makes them keep the per-transaction timing that the *_LATENCY selectors need
(microseconds, from netperf's histogram: whole microseconds below 10 ms). Each test opens
a control connection to netserver (port 12865 here, or another) and a data connection; the
data connection's server port is fixed (`-P ,PORT`, by default the control port + 1) so a
path that needs ports opened or translated (a Service with two ports) can carry it.

    srv = netperf.start(node, log_dir)                  # netserver, stopped with the lab
    res = netperf.measure(client, srv, address, placement, "TCP_RR", seconds=2)
    res.rate, res.latency_us["p99"]                     # transactions/s, microseconds

lab-rr (lab/traffic/rr.py) stays for what netperf does not report: exact percentiles over
every transaction with sub-microsecond resolution, and the 80000-byte transactions of the
BIG TCP figures (scenarios/legacy-vs-bpf.yaml cross-checks the two on one path).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.lab import NodeHandle
from lab.traffic import netperf_package
from lab.traffic.placement import Placement
from lab.traffic.process import Server, run_client, start_server

DEFAULT_PORT = 12865
TESTS = ("TCP_RR", "TCP_CRR", "TCP_STREAM")
LATENCY_SELECTORS = {"MIN_LATENCY": "min", "MEAN_LATENCY": "mean", "P50_LATENCY": "p50",
                     "P90_LATENCY": "p90", "P99_LATENCY": "p99", "MAX_LATENCY": "max"}
SELECTORS = ("THROUGHPUT", "THROUGHPUT_UNITS", "ELAPSED_TIME", "REQUEST_SIZE",
             "RESPONSE_SIZE", *LATENCY_SELECTORS)
# THROUGHPUT_UNITS of a stream test with `-f g`, and of the request/response tests.
STREAM_UNITS = "10^9bits/s"
RR_UNITS = "Trans/s"


@dataclass
class NetperfResult:
    test: str
    rate: float  # transactions/s (TCP_RR), connections/s (TCP_CRR), Gbit/s (TCP_STREAM)
    units: str
    seconds: float
    request_bytes: int | None = None
    response_bytes: int | None = None
    latency_us: dict[str, float] = field(default_factory=dict)  # min, mean, p50, p90, p99, max
    client_cpus: list[int] | None = None
    server_cpus: list[int] | None = None


def parse(text: str, test: str) -> NetperfResult:
    """Parse the key=value lines of `netperf -k`; anything else in the output is ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SELECTORS:
            values[key.strip()] = value.strip()
    try:
        rate = float(values["THROUGHPUT"])
        units = values["THROUGHPUT_UNITS"]
        seconds = float(values.get("ELAPSED_TIME", "nan"))
    except (KeyError, ValueError):
        raise LabError(f"netperf {test} printed no result: {text.strip()[-300:]!r}") from None
    expected = STREAM_UNITS if test == "TCP_STREAM" else RR_UNITS
    if units != expected:
        raise LabError(f"netperf {test} reported {units}, expected {expected}")
    latency = {}
    for sel, key in LATENCY_SELECTORS.items():
        try:
            v = float(values[sel])
        except (KeyError, ValueError):
            continue
        if v >= 0:  # -1: not measured (no -j)
            latency[key] = v
    def size(key: str) -> int | None:
        try:
            return int(values[key])
        except (KeyError, ValueError):
            return None
    return NetperfResult(test, rate, units, seconds, size("REQUEST_SIZE"),
                         size("RESPONSE_SIZE"), latency)


def _family_flag(address: str) -> str:
    try:
        return "-4" if ipaddress.ip_address(address).version == 4 else "-6"
    except ValueError:
        raise UsageError(f"netperf needs an address, not {address!r}") from None


def start(node: NodeHandle, log_dir: Path, port: int = DEFAULT_PORT) -> Server:
    """netserver in NODE on PORT (both families), in the foreground so the lab owns it."""
    tools = netperf_package.require()
    argv = [tools.netserver, "-D", "-p", str(port)]
    return start_server(node, argv, port, log_dir / f"{node.netns}-netserver-{port}.log")


def command(tools_netperf: str, test: str, address: str, port: int, seconds: float,
            request: int = 1, response: int | None = None, data_port: int | None = None,
            transactions: int | None = None) -> list[str]:
    """The netperf command line of one test (-P 0: no banner; -j: latency percentiles).
    netperf runs whole seconds, or TRANSACTIONS transactions (a negative -l) instead."""
    if test not in TESTS:
        raise UsageError(f"netperf test {test!r}: expected one of {', '.join(TESTS)}")
    if transactions is not None and (test == "TCP_STREAM" or transactions < 1):
        raise UsageError("netperf runs a number of transactions of TCP_RR or TCP_CRR only, "
                         "at least one")
    length = f"-{transactions}" if transactions is not None else f"{max(1, round(seconds))}"
    argv = [tools_netperf, "-P", "0", _family_flag(address), "-H", address, "-p", str(port),
            "-t", test, "-l", length]
    if test == "TCP_STREAM":
        argv += ["-f", "g", "--", "-k", ",".join(("THROUGHPUT", "THROUGHPUT_UNITS",
                                                     "ELAPSED_TIME"))]
    else:
        argv.insert(1, "-j")
        argv += ["--", "-r", f"{request},{response if response is not None else request}",
                 "-k", ",".join(SELECTORS)]
    argv += ["-P", f",{data_port if data_port is not None else port + 1}"]
    return argv


def measure(client: NodeHandle, server: Server, address: str, placement: Placement,
            test: str, seconds: float = 2.0, request: int = 1, response: int | None = None,
            data_port: int | None = None, transactions: int | None = None) -> NetperfResult:
    """One netperf test from CLIENT to SERVER's netserver at ADDRESS (SECONDS long, or
    TRANSACTIONS transactions)."""
    server.check_alive()
    server_cpus = placement.pin_server(server.pid)  # its per-test children inherit it
    argv = command(netperf_package.require().netperf, test, address, server.port, seconds,
                   request, response, data_port, transactions)
    run = run_client(client, argv, placement, timeout=seconds + 30)
    result = parse(run.stdout, test)
    result.client_cpus, result.server_cpus = run.cpus, server_cpus
    return result
