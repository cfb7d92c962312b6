"""`lab run --shard` and `lab merge` for real: a quick suite (the shipped reachability
scenario and a two-config ping pair with a capture) run unsharded and as two shards weighed
by the unsharded run's durations; the merged results have the unsharded run's scenarios,
points, series, assertions and ratios, and its reports render. Values differ by noise:
structure is compared, never numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.scenarios import results

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]
BIGTCP = ROOT / "topologies" / "bigtcp.yaml"

PING_PAIR = f"""\
name: ping-pair
topology: {BIGTCP}
configs:
  legacy: {{patch: {{defaults: {{gso_max_size: 65536, gro_max_size: 65536}}}}}}
  big: {{}}
matrix: {{family: [6, 4]}}
repeats: 1
steps:
  - kind: ping
    with: {{from: client, to: server, family: "${{family}}", count: 3, interval: 0.05}}
    capture: [{{node: router, ifname: eth-server, filter: "icmp or icmp6"}}]
assert:
  - {{metric: ping.loss, max: 0}}
compare:
  - {{metric: ping.rtt_avg, of: {{config: big}}, to: {{config: legacy}}}}
"""


def run_lab(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(LAB + list(args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "true"}, cwd=ROOT)
    return proc


def structure(doc: dict) -> list:
    return [(s["name"], s["status"], s["dimensions"], [c["name"] for c in s["configs"]],
             [(m["step"], m["metric"], m["point"], m["n"], m["unit"]) for m in s["metrics"]],
             [(a["metric"], a["point"], a["ok"]) for a in s["assertions"]],
             [(c["metric"], c["point"], c["n"]) for c in s["comparisons"]],
             sorted((c["step"], str(c["point"])) for c in s["captures"]))
            for s in doc["scenarios"]]


def headings(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("#")]


def test_two_shards_merge_into_the_unsharded_run(tmp_path):
    pair = tmp_path / "ping-pair.yaml"
    pair.write_text(PING_PAIR)
    suite = ["reachability", str(pair), "--repeat", "1"]
    whole = run_lab("run", *suite, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    for k in (1, 2):
        proc = run_lab("run", *suite, "--shard", f"{k}/2", "--durations",
                       str(tmp_path / "whole" / "results.json"),
                       "--out", str(tmp_path / f"shard-{k}"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"shard {k}/2" in proc.stderr
    # One shard alone is half a run: refused, nothing written.
    alone = run_lab("merge", str(tmp_path / "shard-1"), "--out", str(tmp_path / "half"))
    assert alone.returncode == 2 and "2/2 missing" in alone.stderr, alone.stderr
    assert not (tmp_path / "half").exists()

    merged = run_lab("merge", str(tmp_path / "shard-1"),
                     str(tmp_path / "shard-2" / "results.json"), "--out", str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    w = results.load(tmp_path / "whole" / "results.json")
    m = results.load(tmp_path / "m" / "results.json")
    shards = [results.load(tmp_path / f"shard-{k}" / "results.json") for k in (1, 2)]

    # Every (scenario, config) point in exactly one shard, and the merge has them all.
    points = [tuple(p) for s in shards for p in s["shard"]["points"]]
    assert sorted(points) == sorted((s["name"], c["name"]) for s in w["scenarios"]
                                    for c in s["configs"])
    assert len(points) == len(set(points)) == 4
    assert shards[0]["shard"]["durations"] == str(tmp_path / "whole" / "results.json")
    assert structure(m) == structure(w) and m["status"] == w["status"] == "passed"
    assert {c["shard"] for s in m["scenarios"] for c in s["configs"]} <= {"1/2", "2/2"}
    # The ratio of the pair was measured side by side, on one shard.
    pair_shards = {c["shard"] for s in m["scenarios"] if s["name"] == "ping-pair"
                   for c in s["configs"]}
    assert len(pair_shards) == 1
    for cap in (c for s in m["scenarios"] for c in s["captures"]):
        assert (tmp_path / "m" / cap["file"]).stat().st_size > 24, cap

    # The reports render as the unsharded run's do: the same sections and tables.
    for name in ("report.md", "report.html"):
        assert (tmp_path / "m" / name).stat().st_size > 0
    md_w = (tmp_path / "whole" / "report.md").read_text()
    md_m = (tmp_path / "m" / "report.md").read_text()
    assert headings(md_m) == headings(md_w)
    table = re.compile(r"^\| ([^|]+) \|", re.M)
    assert table.findall(md_m) == table.findall(md_w)
