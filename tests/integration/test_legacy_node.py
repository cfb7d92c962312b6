"""The legacy node in real namespaces (root): kube-proxy's rules as kube-proxy writes them, in
the node's namespace only, in the path of the traffic (conntrack entries DNATed to the pods,
rule counters that grow, nftables' numgen spreading connections), changed in place, and gone
with `lab down`, also after `lab up` was killed while programming them."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab import netns, state
from lab.datapath.kubeproxy import node as kp_node
from lab.datapath.registry import DATAPATHS
from lab.lab import INSTANCE_ENV, Lab
from lab.traffic.process import listening

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]
VIP = "fd00:10:96::a"
PORT = 8080


def host_netfilter() -> dict[str, str]:
    """The root namespace's netfilter state: what the lab must never touch."""
    out = {"nft": subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                 text=True).stdout}
    for name in ("ip_tables_names", "ip6_tables_names"):
        try:
            out[name] = Path(f"/proc/net/{name}").read_text()
        except FileNotFoundError:
            out[name] = ""
    return out


def legacy_topology(tmp_path: Path, mode: str, services: int = 50, endpoints: int = 2,
                    expose_to: tuple[str, ...] = ("node1-pod1",), routing: str = "legacy"
                    ) -> Path:
    data = yaml.safe_load((ROOT / "topologies/pods.yaml").read_text())
    data["nodes"]["gw"]["routes"].append({"dst": "fd00:10:96::/108", "via": "fd00:0:0:1::2"})
    pods = data["nodes"]["node1"]["pods"]
    pods["routing"] = routing
    if routing == "legacy":
        pods["kube_proxy"] = {"mode": mode, "services": services, "endpoints": endpoints,
                              "expose": [{"name": "web", "cluster_ip": VIP, "ports": [PORT],
                                          "endpoints": list(expose_to)}]}
    path = tmp_path / f"legacy-{mode}-{routing}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def legacy_lab(tmp_path, lab_name):
    labs = []

    def make(mode: str, **kw) -> Lab:
        lab = Lab.from_file(legacy_topology(tmp_path, mode, **kw), f"{lab_name[:22]}{len(labs)}",
                            datapaths=DATAPATHS)
        labs.append(lab.up())
        return lab

    before = host_netfilter()
    yield make
    for lab in labs:
        lab.down()
    assert host_netfilter() == before


def connect(client, address: str, times: int = 1) -> None:
    """TCP connections to ADDRESS:PORT, each a request answered (servers: serve())."""
    script = ("import socket, sys\n"
              "for _ in range(int(sys.argv[2])):\n"
              "    s = socket.create_connection((sys.argv[1], %d), timeout=5)\n"
              "    s.sendall(b'x'); assert s.recv(1) == b'x'; s.close()\n" % PORT)
    client.run([sys.executable, "-c", script, address, str(times)], timeout=60)


def serve(lab, pods) -> None:
    script = ("import socket\n"
              "s = socket.create_server(('::', %d), family=socket.AF_INET6, dualstack_ipv6=True)\n"
              "while True:\n"
              "    c, _ = s.accept(); c.sendall(c.recv(1)); c.close()\n" % PORT)
    for pod in pods:
        proc = lab.node(pod).popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 10
        while not listening(proc.pid, PORT) and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_kube_proxys_rules_carry_service_traffic(legacy_lab, mode):
    lab = legacy_lab(mode)
    node = lab.node("node1")
    kp = kp_node.instance(lab, "node1")
    if mode == "iptables":
        nat = node.run(["ip6tables-nft-save", "-t", "nat"]).stdout
        assert nat.count("-A KUBE-SERVICES") == 50 + 1 + 1  # services, exposed, NodePorts
        assert kp.exposed[0].ports_of()[0].svc_chain in nat
        # the IPv4 proxier's skeleton, no services
        nat4 = node.run(["iptables-nft-save", "-t", "nat"]).stdout
        assert ":KUBE-SERVICES" in nat4 and "KUBE-SVC-" not in nat4
        assert kp.matched(VIP) == 0
    else:
        table = node.run(["nft", "list", "table", "ip6", "kube-proxy"]).stdout
        assert table.count(": goto service-") == 51
        assert "numgen random mod 2" in table
        assert "table ip kube-proxy" in node.run(["nft", "list", "tables"]).stdout
    assert kp_node.conntrack(node) == []  # nothing yet
    serve(lab, ["node1-pod1"])
    connect(lab.node("gw"), VIP, times=5)
    entries = [e for e in kp_node.conntrack(node) if e.orig_dst == VIP]
    assert len(entries) == 5
    assert all(e.reply_src == "fd00:10:244:1::11" and e.orig_dport == PORT for e in entries)
    # gw is outside the cluster CIDR: kube-proxy masquerades it to the node's address
    assert all(e.reply_dst == "fd00:0:0:1::2" for e in entries)
    if mode == "iptables":
        assert kp.matched(VIP) >= 5 * 3  # KUBE-SERVICES, KUBE-SVC and KUBE-SEP, per SYN


def test_nftables_numgen_spreads_connections_over_the_endpoints(legacy_lab):
    lab = legacy_lab("nftables", expose_to=("node1-pod0", "node1-pod1"))
    serve(lab, ["node1-pod0", "node1-pod1"])
    connect(lab.node("gw"), VIP, times=60)
    pods = collections.Counter(e.reply_src for e in kp_node.conntrack(lab.node("node1"))
                               if e.orig_dst == VIP)
    assert set(pods) == {"fd00:10:244:1::10", "fd00:10:244:1::11"}, pods
    assert min(pods.values()) >= 10  # binomial(60, 1/2): below 10 once in 10^5 runs


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_change_rewrites_one_service_and_traffic_goes_on(legacy_lab, mode):
    lab = legacy_lab(mode, services=20)
    kp = kp_node.instance(lab, "node1")
    node = lab.node("node1")
    before = {s.name_string: s for s in kp.now.services}
    seconds = kp.change_one()
    assert seconds > 0
    changed = [s for s in kp.now.services if before[s.name_string] != s]
    assert len(changed) == 1 and changed[0].name.startswith("svc-")
    old = before[changed[0].name_string].endpoints[0]
    new = changed[0].endpoints[0]
    if mode == "iptables":
        nat = node.run(["ip6tables-nft-save", "-t", "nat"]).stdout
        assert changed[0].sep_chain(new) in nat and changed[0].sep_chain(old) not in nat
    else:
        table = node.run(["nft", "list", "table", "ip6", "kube-proxy"]).stdout
        assert changed[0].nft_endpoint_chain(new) in table
        assert changed[0].nft_endpoint_chain(old) not in table
    serve(lab, ["node1-pod1"])
    connect(lab.node("gw"), VIP)


def test_nodes_without_netfilter_track_nothing(legacy_lab):
    for routing in ("host", "bpf"):
        lab = legacy_lab("iptables", routing=routing)
        node = lab.node("node1")
        serve(lab, ["node1-pod1"])
        connect(lab.node("gw"), "fd00:10:244:1::11", times=3)
        assert kp_node.instance(lab, "node1") is None
        assert kp_node.conntrack(node) == []
        assert node.run(["nft", "list", "ruleset"]).stdout.strip() == ""


def test_stop_removes_every_rule(legacy_lab):
    lab = legacy_lab("iptables")
    kp = kp_node.instance(lab, "node1")
    node = lab.node("node1")
    serve(lab, ["node1-pod1"])
    connect(lab.node("gw"), VIP)
    kp.stop()
    assert node.run(["nft", "list", "ruleset"]).stdout.strip() == ""  # iptables-nft's too
    assert kp_node.conntrack(node) == []


def test_killed_while_programming_then_down_leaves_nothing(tmp_path, lab_name):
    """`lab up` killed while kube-proxy's 20000 services are being programmed: `lab down
    --all` removes the namespace with whatever rules it holds; no restore outlives the lab
    (the batch on its stdin is cut short with its writer: iptables-restore commits nothing)
    and the host's netfilter is untouched."""
    before = host_netfilter()
    topo = legacy_topology(tmp_path, "iptables", services=20000, endpoints=1)
    proc = subprocess.Popen(LAB + ["up", str(topo), "--name", lab_name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = state.LabRecord(lab_name).journal
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and '"t":"netfilter"' in journal.read_text():
            break
        time.sleep(0.01)
    time.sleep(0.5)  # the restore has started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert '"t":"up"' not in journal.read_text(), "programming finished before the kill"
    subprocess.run(LAB + ["down", "--all"], check=True, capture_output=True, timeout=120)
    assert not [n for n in netns.list_names() if n.startswith(f"{lab_name}-")]
    assert not state.LabRecord(lab_name).dir.exists()
    assert marked_processes(lab_name) == []  # the restore was stopped, not left running
    assert host_netfilter() == before


def marked_processes(lab: str) -> list[int]:
    """Processes carrying LAB's instance marker (lab.lab.INSTANCE_ENV) in their environment."""
    marker = f"{INSTANCE_ENV}={lab}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if any(v.startswith(marker) for v in env.split(b"\0")):
                found.append(int(entry.name))
    return found


SMALL_LEGACY = """\
name: small-legacy
topology: {topology}
configs:
  legacy:
    requires: [iptables]
    patch: {{nodes: {{node1: {{pods: {{routing: legacy, kube_proxy: {{services: 5}}}}}}}}}}
  host: {{}}
repeats: 1
steps:
  - {{kind: ping, with: {{from: node1-pod0, to: node1-pod1, count: 2, interval: 0.05}}}}
  - {{kind: path_proof, with: {{node: node1}}}}
assert:
  - {{metric: ping.loss, max: 0}}
"""


def test_without_iptables_doctor_says_so_and_the_config_is_skipped(tmp_path):
    """iptables and nft not on PATH: `lab doctor` names them, the legacy config is skipped
    with that reason, the others run."""
    env = {**os.environ, "CI": "true", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    doctor = subprocess.run(LAB + ["doctor"], capture_output=True, text=True, env=env)
    lines = {ln.split()[0]: ln for ln in doctor.stdout.splitlines()[1:]}
    assert "not found: install the iptables package" in lines["iptables"]
    assert "nft not found" in lines["nftables"]
    (tmp_path / "s.yaml").write_text(SMALL_LEGACY.format(topology=ROOT / "topologies/pods.yaml"))
    out = tmp_path / "out"
    run = subprocess.run(LAB + ["run", str(tmp_path / "s.yaml"), "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (sc,) = json.loads((out / "results.json").read_text())["scenarios"]
    configs = {c["name"]: c for c in sc["configs"]}
    assert configs["legacy"]["status"] == "skipped"
    assert "iptables-nft-restore" in configs["legacy"]["reason"]
    assert configs["host"]["status"] == "up" and sc["status"] == "passed"


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_ipv4_rules_carry_ipv4_service_traffic(tmp_path, lab_name, mode):
    """kube-proxy's IPv4 rules (the lab's nodes are IPv6-only, so no topology runs them):
    loaded into the router of topologies/bigtcp.yaml, they DNAT a client's connections to
    an IPv4 ClusterIP to the server and masquerade them."""
    from lab.datapath.kubeproxy import iptables, nftables
    from lab.datapath.kubeproxy.services import ClusterConfig, Endpoint, ServicePort

    svc = ServicePort("lab", "web", "p80", "tcp", "10.96.0.10", PORT,
                      (Endpoint("203.0.113.2", PORT),))
    cfg = ClusterConfig(4, cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16")
    data = yaml.safe_load((ROOT / "topologies/bigtcp.yaml").read_text())
    data["nodes"]["client"]["routes"].append({"dst": "10.96.0.0/16", "via": "198.51.100.1"})
    (tmp_path / "v4.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with Lab.from_file(tmp_path / "v4.yaml", lab_name, datapaths=DATAPATHS) as lab:
        router, client = lab.node("router"), lab.node("client")
        if mode == "iptables":
            router.run(iptables.restore_command(4), input=iptables.Ruleset([svc], cfg).initial())
        else:
            router.run(nftables.command(), input=nftables.Ruleset([svc], cfg).full_sync())
        serve(lab, ["server"])
        connect(client, "10.96.0.10", times=3)
        entries = [e for e in kp_node.conntrack(router) if e.orig_dst == "10.96.0.10"]
        assert len(entries) == 3
        assert all(e.reply_src == "203.0.113.2" for e in entries)      # DNAT to the endpoint
        assert all(e.reply_dst == "203.0.113.1" for e in entries)      # masqueraded


@pytest.mark.parametrize("mode, backend", [("iptables", "nft"), ("iptables", "legacy"),
                                           ("nftables", "nft")])
def test_down_empties_the_tables_even_if_the_namespace_outlives_it(tmp_path, lab_name, mode,
                                                                   backend):
    """`lab down` from another process, with a process the lab did not start holding the
    node's namespace: the journal's netfilter record has the tables emptied before the
    namespace is let go, so nothing of kube-proxy's rules lives on in it."""
    topo = legacy_topology(tmp_path, mode, services=10)
    data = yaml.safe_load(topo.read_text())
    data["nodes"]["node1"]["pods"]["kube_proxy"]["backend"] = backend
    topo.write_text(yaml.safe_dump(data))
    subprocess.run(LAB + ["up", str(topo), "--name", lab_name], check=True,
                   capture_output=True, timeout=120)
    journal = state.LabRecord(lab_name).journal.read_text()
    assert '"t":"netfilter"' in journal
    holder = subprocess.Popen(["ip", "netns", "exec", f"{lab_name}-node1", "sleep", "60"])
    try:
        time.sleep(0.2)
        inside = ["nsenter", "-t", str(holder.pid), "-n"]
        listing = [f"ip6tables-{backend}-save"] if mode == "iptables" else \
            ["nft", "list", "ruleset"]
        before = subprocess.run(inside + listing, capture_output=True, text=True).stdout
        assert ("KUBE-SERVICES" if mode == "iptables" else "table ip6 kube-proxy") in before
        subprocess.run(LAB + ["down", lab_name], check=True, capture_output=True, timeout=120)
        assert not netns.exists(f"{lab_name}-node1")  # its name is gone, the holder keeps it
        after = subprocess.run(inside + listing, capture_output=True, text=True).stdout
        assert "KUBE-" not in after and "kube-proxy" not in after, after
    finally:
        holder.kill()
        holder.wait()
