"""The default suite's report stays readable and below 2 MB: a synthetic run of every default
scenario over its full matrix (every config, point, repeat, metric, latency distribution and
interval series, one scenario as from a TCG VM) is reported, checked and measured."""

from __future__ import annotations

import math
import random
import re
from html import escape

import pytest

from lab.datapath.registry import catalogue
from lab.scenarios import default_suite, results
from lab.scenarios.records import Distribution
from lab.scenarios.report import write_reports
from lab.scenarios.results import RunResults, ScenarioResult

LIMIT = 2_000_000

ENVIRONMENT = {
    "kernel": {"release": "6.18.0", "version": "#1 SMP"},
    "machine": {"architecture": "x86_64", "cpu_model": "a CPU", "cpus": 2,
                "cpus_allowed": [0, 1], "memory_mib": 24000, "hostname": "h"},
    "execution": {"mode": "native", "accel": None, "vm_kernel": None},
    "python": "3.11.7", "libraries": {"matplotlib": "3.10"}, "tools": {"iperf3": "3.12"},
    "lab": {"version": "0.1.0", "commit": "0" * 40, "dirty": False},
}
VM = {**ENVIRONMENT, "execution": {"mode": "vm", "accel": "tcg", "vm_kernel": "6.12.0"}}


def latency(rng: random.Random, level: float) -> Distribution:
    """A lab-rr-like distribution: a peak near LEVEL and a long thin tail (45 buckets)."""
    first = math.floor(math.log10(level) * 20)
    counts = [int(4000 * math.exp(-i / 1.5)) + rng.randint(0, 3) for i in range(45)]
    return Distribution("us", sum(counts), {"0": level, "0.5": level * 1.1,
                                            "0.99": level * 8, "1": level * 100},
                        20, first, counts, level * 1.5, "lab-rr")


def synthetic_default_suite() -> dict:
    rng = random.Random(17)
    run = RunResults(ENVIRONMENT, ["lab", "run", "--vm"], quick=False)
    run.started = run.finished = "2026-01-01T00:00:00+00:00"
    run.status = "passed"
    place = {"name": "same-cpu", "client_cpus": [1], "server_cpus": [1]}
    for sc in default_suite(catalogue()):
        sr = ScenarioResult(sc)
        for repeat in range(sc.repeats):
            for point in sc.points():
                for ci, config in enumerate(sc.configs):
                    full = sc.full_point(config, point)
                    for step in sc.steps_at(full):
                        for name, meta in step.kind.metrics.items():
                            value = (10 + ci) * 100 * math.exp(rng.gauss(0, 0.1))
                            sr.record(step.name, name, meta, full, repeat, value, place)
                        if step.kind.distribution is not None:
                            sr.distribution(step.name, full, repeat, latency(rng, 20 + ci))
                        for name in step.kind.timelines:
                            times = [0.1 * (i + 1) for i in range(20)]
                            sr.timeline(step.name, full, repeat, _timeline(rng, name, times))
                        sr.fact(step.name, full, repeat, "kind", step.kind.name)
        sr.status = "passed"
        sr.evaluate()
        if sc.name == "pods-netkit":
            sr.environment = VM
        run.scenarios.append(sr)
    return run.to_json()


def _timeline(rng, name, times):
    from lab.scenarios.records import Timeline

    return Timeline(name, "Gbit/s", times, [rng.uniform(5, 40) for _ in times])


@pytest.mark.slow
def test_the_default_suites_report_is_below_2_mb_with_every_chart_embedded(tmp_path):
    doc = synthetic_default_suite()
    results.validate(doc)
    names = {s["name"] for s in doc["scenarios"]}
    assert {"bigtcp", "pods-veth", "pods-netkit", "nat46-bench", "gateway"} <= names
    md, page = write_reports(doc, tmp_path)
    size = page.stat().st_size
    assert size < LIMIT, f"report.html is {size:,} bytes"
    html = page.read_text()
    charts = sorted((tmp_path / "charts").glob("*.svg"))
    assert html.count("<figure") == html.count("src='data:image/svg+xml,") == len(charts)
    assert len(charts) > 40
    # every declared cdf and timeline chart found its records
    for s in doc["scenarios"]:
        for spec in s["charts"]:
            if spec["kind"] in ("cdf", "timeline"):
                assert f">{escape(spec['title'])}</figcaption>" in html, spec["title"]
    # the claims of the TCG scenario are shown and not judged
    netkit = [c for s in doc["scenarios"] if s["name"] == "pods-netkit" for c in s["claims"]]
    assert netkit and all(c["verdict"] == "not measurable here" and c["ratio"] for c in netkit)
    assert re.search(r"<h2 id=\"the-talk-s-claims\">", html)
