"""scenarios/nat46.yaml end to end (`lab run --quick nat46`): it passes at tc and XDP, the
translated sources each side saw are the ones the topology's translator section implies,
the name resolved to its DNS64 synthesis, and the captures hold the translated SYN."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run_quick(tmp_path, name):
    """`lab run --quick NAME` into tmp_path/r: the scenario's entry of results.json."""
    out = subprocess.run([sys.executable, "-m", "lab", "run", "--quick", "--out",
                          str(tmp_path / "r"), name], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (sc,) = json.loads((tmp_path / "r/results.json").read_text())["scenarios"]
    return sc


def test_quick_nat46_scenario(tmp_path, bpf_build):
    sc = run_quick(tmp_path, "nat46")
    assert sc["status"] == "passed"
    seen = {(f["step"], f["point"]["config"]): f["value"] for f in sc["facts"]
            if f["key"] == "seen_source"}
    assert seen == {("ingress_source", "tc"): "64:ff9b:1::c000:20a",
                    ("ingress_source", "xdp"): "64:ff9b:1::c000:20a",
                    ("egress_source", "tc"): "203.0.113.17",
                    ("egress_source", "xdp"): "203.0.113.17"}
    checks = [c for c in sc["checks"] if c["step"] in ("resolve", "ingress_source",
                                                       "egress_source")]
    assert len(checks) == 6 and all(c["ok"] for c in checks)
    caps = {Path(c["file"]).name: c for c in sc["captures"]}
    syn6 = [p for p in rdpcap(str(tmp_path / "r" / caps[
        "ingress_source_config-tc_r0_gw_eth-node.pcap"]["file"]))
        if IPv6 in p and TCP in p and p[TCP].flags == "S"]
    assert syn6 and syn6[0][IPv6].src == "64:ff9b:1::c000:20a"
    syn4 = [p for p in rdpcap(str(tmp_path / "r" / caps[
        "egress_source_config-xdp_r0_gw_eth-server.pcap"]["file"]))
        if IP in p and TCP in p and p[TCP].flags == "S"]
    assert syn4 and (syn4[0][IP].src, syn4[0][IP].dst) == ("203.0.113.17", "198.51.100.10")


def test_quick_bench_measures_every_engine_side_by_side(tmp_path, bpf_build):
    """scenarios/nat46-bench.yaml: plain IPv6, ours at tc and XDP, an empty XDP program in
    the translator's place, TAYGA; ratios with the issue's anchors (XDP against IPv6, tc and
    the empty program); the translator's ns/packet cold and hot (no thresholds: speeds are
    this machine's)."""
    sc = run_quick(tmp_path, "nat46-bench")
    assert sc["status"] == "passed"
    tput = {m["point"]["config"]: m["median"] for m in sc["metrics"]
            if m["step"] == "tcp" and m["metric"] == "throughput"}
    assert set(tput) == {"ipv6", "tc", "xdp", "xdp-empty", "tayga"}
    assert all(v > 0 for v in tput.values())
    ratios = {(c["of"]["config"], c["to"]["config"], c["metric"]): c for c in sc["comparisons"]}
    assert ratios[("tc", "tayga", "tcp.throughput")]["anchors"][0]["value"] == 5
    assert ratios[("tc", "ipv6", "tcp.throughput")]["anchors"][0]["value"] == 0.9
    assert ratios[("tc", "ipv6", "rr1.tps")]["anchors"][0]["value"] == 0.9
    assert ratios[("xdp", "ipv6", "tcp.throughput")]["anchors"][0]["value"] == 0.5
    assert ratios[("xdp", "tc", "rr1.tps")]["anchors"][0]["value"] == 1.0
    assert ("xdp", "xdp-empty", "tcp.throughput") in ratios
    for metric in ("ns_per_packet", "hot_ns_per_packet"):
        cost = [m for m in sc["metrics"] if m["step"] in ("cost_tc", "cost_xdp")
                and m["metric"] == metric]
        assert len(cost) == 2 and all(m["median"] > 0 for m in cost)
    claims = {c["id"]: c for c in sc["claims"]}
    assert claims["nat46-translator-throughput"]["parity"] == 0.15
    assert claims["nat46-translator-throughput"]["ratio"] == \
        pytest.approx(ratios[("tc", "ipv6", "tcp.throughput")]["ratio"])


def test_quick_bigtcp_nat46_scenario(tmp_path, bpf_build):
    """scenarios/bigtcp-nat46.yaml: what crossed above 64 KiB each way, as its assertions
    say (IPv6 -> IPv4 super-packets on both sides; IPv4 -> IPv6 ones leave the translator as
    super-packets in the kernel's own IPv6 form and reach the server whole)."""
    from lab import features
    for cap in features.big_tcp().values():
        if not cap.ok:
            pytest.skip(cap.detail)
    out = subprocess.run([sys.executable, "-m", "lab", "run", "--quick", "--out",
                          str(tmp_path / "r"), "bigtcp-nat46"], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (sc,) = json.loads((tmp_path / "r/results.json").read_text())["scenarios"]
    assert sc["status"] == "passed" and all(a["ok"] for a in sc["assertions"])
    facts = {(f["step"], f["point"]["config"]): f["value"] for f in sc["facts"]
             if f["key"] == "above_64k"}
    six_to_four = facts[("big_6to4", "bigtcp")]
    assert six_to_four["gw:eth-server ingress IPv6"]["packets"] > 0
    assert six_to_four["client:eth0 ingress IPv4"]["marked_as"] == ["zero"]
    # IPv4 -> IPv6 super-packets reach the server whole, in the running kernel's own IPv6
    # form (on Hop-by-Hop kernels the translator forwards them past the gateway's egress, by
    # bpf_redirect_peer, so the server's ingress is where they are counted)
    from lab.bigtcp_form import ipv6_form
    four_to_six = facts[("big_4to6", "bigtcp")]
    sent = four_to_six["client:eth0 egress IPv4"]["packets"]
    assert sent > 0
    arrived = four_to_six["server:eth0 ingress IPv6"]
    assert 0 < arrived["packets"] <= sent and arrived["marked_as"] == [ipv6_form()]
    assert facts[("big_4to6", "client4-64k")] == {}
