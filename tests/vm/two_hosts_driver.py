"""What tests/vm/test_two_hosts.py runs in guest b, the host of the gateway and the pods, which
drives the lab (`local`); guest a, the client's host, is `a` in the topologies, reached by
plain `ssh lab-host-a` (root's ~/.ssh/config in the guest, dropbear on the other side).

One Python process does it all through the lab's API (under emulation every Python start
costs tens of seconds), and writes what it saw to RESULTS (JSON): for each phase its checks,
what it measured and how long it took.

  scenario   scenarios/nat46.yaml on the topology split over vxlan (tc): ping, TCP (iperf3,
             request/response), the translated source each side sees, DNS64, the counters,
             in results.json as `lab run` writes it
  phys       the split over the guests' second NICs (virtio) moved into the client and the
             gateway: ping and a TCP connection through the translator, then both NICs given
             back with their names, MTU, addresses and state
  sigkill    the split the other way round (the gateway and the pods on host a), host a's
             side of `lab up` SIGKILLed half-way (by a watcher on a, the moment its first
             namespace is made): `lab up` here fails, saying so, and leaves nothing on either
             host (a's part torn down from a's own journal by a new agent there)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from lab import netns
from lab.datapath.registry import DATAPATHS, catalogue
from lab.datapath.translator import topology as translator
from lab.errors import LabError
from lab.hosts import spread
from lab.lab import Lab
from lab.links.host import HostView
from lab.scenarios import load as load_scenario
from lab.scenarios.results import load as load_results
from lab.scenarios.runner import Runner
from lab.topology import load as load_topology
from lab.traffic import iperf3
from lab.traffic.placement import resolve

OUT = Path(sys.argv[1])
POD0 = "203.0.113.16"
CLIENT_AS_SEEN = "64:ff9b:1::c000:20a"
results: dict = {}


def ssh_a(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-T", "-o", "BatchMode=yes", "lab-host-a", "--", *argv],
                          capture_output=True, text=True, timeout=300)


def left_on_a(lab: str) -> list[str]:
    out = ssh_a("sh", "-c", f"ls /run/netns /run/lab 2>/dev/null | grep '^{lab}' || true")
    return out.stdout.split()


def left_here(lab: str) -> list[str]:
    return [n for n in netns.list_names() if n.startswith(f"{lab}-")] + \
        [p.name for p in Path("/run/lab").glob(f"{lab}*")]


def phase(name: str):
    def wrap(fn):
        def run():
            entry = results[name] = {"checks": {}, "measured": {}}
            print(f"{time.strftime('%T')} phase {name}", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                fn(entry)
            except Exception:  # noqa: BLE001 - recorded for the host's test to show
                entry["error"] = traceback.format_exc()
            entry["seconds"] = round(time.monotonic() - started, 1)
            OUT.joinpath("results.json").write_text(json.dumps(results, indent=2))
        return run
    return wrap


def translated_tcp(lab: Lab) -> str:
    """A TCP connection from the client (on host a: bash's /dev/tcp, no Python to start
    there) to pod 0 through the translator: the source the pod sees."""
    srv = netns.socket_in(lab.node("node1-pod0").netns, socket.AF_INET6, socket.SOCK_STREAM)
    with srv:
        srv.bind(("::", 0))
        srv.listen(1)
        srv.settimeout(120)
        port = srv.getsockname()[1]
        client = lab.node("client").popen(
            ["bash", "-c", f"exec 3<>/dev/tcp/{POD0}/{port}; echo lab >&3; read -t 60 r <&3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        conn, peer = srv.accept()
        with conn:
            conn.recv(16)
            conn.sendall(b"ok\n")
        client.communicate(timeout=120)
    return peer[0]


@phase("scenario")
def scenario(entry: dict) -> None:
    sc_path = OUT / "nat46-vxlan-scenario.yaml"
    runner = Runner(OUT / "run", quick=True)
    runner.lab_prefix = "vx"
    run = runner.run([load_scenario(sc_path, catalogue())])
    doc = load_results(OUT / "run" / "results.json")  # schema-checked, as `lab run` reads it
    (sc,) = doc["scenarios"]
    entry["checks"]["passed"] = sc["status"] == "passed" or sc.get("reason")
    metrics = {f"{m['step']}.{m['metric']}": m for m in sc["metrics"]}
    for key in ("ingress_ping.loss", "ingress_tcp.throughput", "ingress_rr.p50",
                "egress_tcp.throughput", "counters.translated", "counters.dropped"):
        entry["measured"][key] = metrics[key]["median"] if key in metrics else None
    # The source a pod sees is checked by the phys phase: the test leaves the scenario's
    # ingress_source step out (its Python client on host a outlasts the step's wait under
    # emulation).
    entry["checks"]["run status"] = run.status == "passed" or run.status
    labs = [c["lab"] for c in sc["configs"]]
    entry["checks"]["nothing left"] = ([x for lab in labs for x in left_here(lab)
                                        + left_on_a(lab)] or True)


@phase("phys")
def phys(entry: dict) -> None:
    topo = load_topology(OUT / "nat46-phys.yaml", "ph", DATAPATHS)
    before = HostView().devices["eth1"]
    with Lab(topo, datapaths=DATAPATHS) as lab:
        out = lab.node("client").run(["ping", "-c", "5", "-i", "0.2", "-W", "5", POD0],
                                     check=False, timeout=120)
        entry["checks"]["ping client -> pod0 (0% loss)"] = " 0% packet loss" in out.stdout \
            or out.stdout[-300:]
        entry["checks"]["TCP through the translator"] = \
            translated_tcp(lab) == CLIENT_AS_SEEN or "wrong source"
        res = iperf3.measure(lab.node("client"), iperf3.start(lab.node("node1-pod0"), OUT,
                                                              iperf3.DEFAULT_PORT),
                             POD0, resolve("unpinned"), seconds=2)
        entry["measured"]["iperf3 client -> pod0 Gbit/s"] = res.throughput_gbps
        gw_eth = json.loads(lab.node("gw").run(["ip", "-j", "link", "show",
                                                "eth-client"]).stdout)[0]
        entry["checks"]["the NIC is the gateway's eth-client"] = \
            gw_eth.get("address") == before.mac or gw_eth
        counters = translator.statistics(lab)
        entry["measured"]["translated"] = counters["done46"] + counters["done64"]
    after = HostView().devices.get("eth1")
    entry["checks"]["eth1 back here as it was"] = (
        after is not None and (after.mtu, after.up, after.mac) ==
        (before.mtu, before.up, before.mac)) or str(after)
    there = json.loads(ssh_a("ip", "-j", "addr", "show", "eth1").stdout or "[{}]")[0]
    entry["checks"]["eth1 back on host a as it was"] = (
        there.get("mtu") == 1400 and "UP" in there.get("flags", [])
        and any(a.get("local") == "10.98.0.1" for a in there.get("addr_info", []))) or there
    entry["checks"]["nothing left"] = (left_here("ph") + left_on_a("ph")) or True


@phase("sigkill")
def sigkill(entry: dict) -> None:
    """Guest a kills the agent making its part as soon as its first namespace is there
    (a.sh): `lab up` here must fail saying so, tear down this part, and have a tear its half
    down from its journal through a new agent."""
    topo = load_topology(OUT / "nat46-vxlan-big.yaml", "kl", DATAPATHS)
    try:
        with Lab(topo, datapaths=DATAPATHS):
            entry["checks"]["lab up failed"] = "it came up"
    except LabError as e:
        entry["checks"]["lab up failed"] = True
        entry["measured"]["error"] = str(e)
        entry["checks"]["it says host a was lost"] = "host a (ssh lab-host-a)" in str(e) or \
            str(e)
    killed = OUT / "killed"
    entry["checks"]["a's agent was killed half-way"] = killed.exists() or "not killed"
    entry["checks"]["nothing left on either host"] = (left_here("kl") + left_on_a("kl")) or True


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for run in (scenario, phys, sigkill):
        run()
    spread.close_sessions()
