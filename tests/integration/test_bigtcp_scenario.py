"""The BIG TCP scenario end to end (`lab run --quick bigtcp`): it passes on this machine with
its proof checks and comparisons in results.json, and a proof that cannot hold fails the run
with the measured count in the message."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab import features

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def big_tcp_both_families():
    caps = features.big_tcp()
    for cap in caps.values():
        if not cap.ok:
            pytest.skip(cap.detail)


def lab_run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lab", "run", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_quick_sweep_passes_with_proof_and_ratios(tmp_path, bpf_build):
    out = lab_run("--quick", "--out", str(tmp_path / "r"), "bigtcp", cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (sc,) = json.loads((tmp_path / "r/results.json").read_text())["scenarios"]
    assert sc["status"] == "passed"
    proofs = [c for c in sc["checks"] if c["step"] == "proof"]
    # every point of the quick matrix: 2 families x 2 sizes x 2 placements, one check per
    # counted link end with BIG TCP on (router's two, server's one), one with it off
    assert len(proofs) == 2 * 2 * (3 + 1) and all(c["ok"] for c in proofs)
    big = {(m["point"]["family"], m["point"]["size"], m["point"]["placement"]): m["median"]
           for m in sc["metrics"] if m["step"] == "proof" and m["metric"] == "big_packets"}
    assert len(big) == 8
    assert all((v > 0) == (size == 185000) for (_, size, _), v in big.items()), big
    marks = {f["key"]: f["value"]["marked_as"] for f in sc["facts"]
             if f["key"].endswith("_above_64k")}
    assert marks["ipv4_above_64k"] == ["zero"]
    assert marks["ipv6_above_64k"] in (["hbh-jumbo"], ["zero"])
    ratios = [c for c in sc["comparisons"] if c["metric"] == "rr80k.tps"
              and c["of"] == {"size": 185000}]
    assert len(ratios) == 4 and all(c["ratio"] > 0 for c in ratios)
    # the talk's claim, judged per point (one repeat under --quick: no interval to judge)
    claims = [c for c in sc["claims"] if c["id"] == "bigtcp-ipv6-rr80k-tps"]
    assert {c["point"]["placement"] for c in claims} == {"same-cpu", "cross-cpu"}
    assert all(c["published"] == 1.44 and c["verdict"] == "inconclusive" for c in claims)
    report = (tmp_path / "r/report.md").read_text()
    assert "80000-byte transactions/s, 185K / 64K" in report


def test_a_proof_that_cannot_hold_fails_the_run_with_the_count(tmp_path, bpf_build):
    scenario = tmp_path / "bigtcp-wrong.yaml"
    scenario.write_text(f"""
name: bigtcp-wrong
topology: {ROOT / "topologies/bigtcp.yaml"}
repeats: 1
steps:
  - {{kind: bigtcp_sizes, with: {{family: 6, size: 65536}}}}
  - {{kind: iperf3, with: {{client: client, server: server, family: 6, seconds: 1}}}}
  - {{kind: big_packet_proof, name: proof, with: {{family: 6, expect: big}}}}
""")
    out = lab_run("--out", str(tmp_path / "r"), str(scenario), cwd=tmp_path)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    (sc,) = json.loads((tmp_path / "r/results.json").read_text())["scenarios"]
    failed = [c for c in sc["checks"] if not c["ok"]]
    assert {c["description"].split(" with BIG TCP")[0] for c in failed} == {
        f"IPv6 packets above 64 KiB crossed {end}"
        for end in ("router:eth-client", "router:eth-server", "server:eth0")}
    assert all(c["measured"] == 0 for c in failed)
    assert "0 of " in failed[0]["description"]  # the counts are in the message
