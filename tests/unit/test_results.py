"""Results: statistics, assertions, ratios, the JSON schema, reports, `lab compare`, and
requirement skips; all on synthetic measurements (no lab, no root)."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import jsonschema
import pytest

from lab.errors import UsageError
from lab.scenarios import compare, environment, results, stats
from lab.scenarios.model import load
from lab.scenarios.progress import Progress
from lab.scenarios.report import write_reports
from lab.scenarios.results import RunResults, ScenarioResult
from lab.scenarios.runner import Runner

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = f"""\
name: synthetic
topology: {ROOT / "topologies" / "bigtcp.yaml"}
configs:
  small: {{patch: {{defaults: {{gso_max_size: 65536}}}}}}
  big: {{}}
matrix: {{family: [6, 4]}}
repeats: 3
steps:
  - {{kind: rr, name: rr80k, with: {{client: client, server: server, family: "${{family}}",
                                   request: 80000}}}}
assert:
  - {{metric: rr80k.p99, max: 500}}
compare:
  - metric: rr80k.tps
    of: {{config: big}}
    to: {{config: small}}
    anchors: [{{value: 1.44, label: "published IPv6", where: {{family: 6}}}}]
charts:
  - {{title: "80000-byte latency", metrics: [rr80k.p50, rr80k.p99], x: [metric, family]}}
  - {{title: "80000-byte transactions/s", metric: rr80k.tps, x: family,
      anchors: [{{value: 20000, label: "a reference"}}]}}
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text(SCENARIO)
    return load(path)


def measured(scenario, p99=(100.0, 120.0, 110.0)) -> ScenarioResult:
    sr = ScenarioResult(scenario)
    meta = scenario.steps[0].kind.metrics
    for r in range(3):
        for family in (6, 4):
            for config, tps in (("small", 10000.0), ("big", 14000.0)):
                point = {"config": config, "family": family}
                place = {"name": "same-cpu", "client_cpus": [1], "server_cpus": [1]}
                sr.record("rr80k", "tps", meta["tps"], point, r, tps + 100 * r, place)
                sr.record("rr80k", "p50", meta["p50"], point, r, 50.0 + r, place)
                sr.record("rr80k", "p99", meta["p99"], point, r, p99[r], place)
    sr.status = "passed"
    sr.evaluate()
    return sr


def run_doc(scenario, sr) -> dict:
    run = RunResults(environment.collect(), ["lab", "run"], quick=False)
    run.started = run.finished = "2026-01-01T00:00:00+00:00"
    run.status = "passed"
    run.scenarios.append(sr)
    return run.to_json()


def test_series_statistics_and_placement(scenario):
    sr = measured(scenario)
    s = sr.series["synthetic/rr80k.tps[config=big family=6]"].to_json()
    assert s["samples"] == [14000.0, 14100.0, 14200.0] and s["repeats"] == [0, 1, 2]
    assert (s["median"], s["min"], s["max"], s["n"]) == (14100.0, 14000.0, 14200.0, 3)
    assert s["unit"] == "transactions/s" and s["better"] == "higher"
    assert s["placement"] == [{"name": "same-cpu", "client_cpus": [1], "server_cpus": [1]}]


def test_ratios_pair_the_repeats_with_an_interval_and_a_verdict(scenario):
    sr = measured(scenario)
    by_family = {c["point"]["family"]: c for c in sr.comparisons}
    c = by_family[6]
    paired = [14000 / 10000, 14100 / 10100, 14200 / 10200]  # paired by repeat
    assert c["ratio"] == pytest.approx(math.prod(paired) ** (1 / 3))  # geometric mean
    assert c["ratio_of_medians"] == pytest.approx(14100 / 10100)
    assert c["ratio_min"] == pytest.approx(min(paired))
    assert c["ratio_max"] == pytest.approx(max(paired))
    assert c["ci_low"] < c["ratio"] < c["ci_high"] and c["ci_low"] > 1.3
    assert (c["n"], c["verdict"], c["spec"]) == (3, "higher", 0)
    assert c["anchors"] == [{"value": 1.44, "label": "published IPv6"}]
    assert by_family[4]["anchors"] == []  # the anchor is for IPv6 only


def test_failing_assertion_names_the_measured_value_and_the_threshold(scenario):
    sr = measured(scenario, p99=(100.0, 612.5, 110.0))
    bad = [a for a in sr.assertions if not a["ok"]]
    assert len(bad) == 4 and all(a["measured"] == 612.5 for a in bad)
    assert bad[0]["message"] == ("rr80k.p99 [config=small family=6] = 612.5 us (repeat 1), "
                                 "expected <= 500 us")
    assert sr.failures()[0] == bad[0]["message"]
    assert all(a["ok"] for a in measured(scenario).assertions)


def test_results_document_validates_against_its_schema(scenario):
    doc = run_doc(scenario, measured(scenario))
    results.validate(doc)
    assert doc["schema_version"] == results.SCHEMA_VERSION
    env = doc["environment"]
    assert env["execution"]["mode"] == "native" and env["machine"]["cpus"] >= 1
    assert env["tools"]["lab-rr"].startswith("lab-rr ")
    broken = copy.deepcopy(doc)
    del broken["scenarios"][0]["metrics"][0]["unit"]
    with pytest.raises(jsonschema.ValidationError, match="'unit' is a required property"):
        results.validate(broken)


def test_load_refuses_other_versions_and_invalid_documents(scenario, tmp_path):
    doc = run_doc(scenario, measured(scenario))
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**doc, "schema_version": 99}))
    with pytest.raises(UsageError, match="schema version 99: this lab reads versions 1 to 2 "
                                         r"\(the file is newer than this lab"):
        results.load(path)
    path.write_text(json.dumps({**doc, "schema_version": "2"}))
    with pytest.raises(UsageError, match="schema version '2': this lab reads"):
        results.load(path)
    doc["scenarios"][0]["metrics"][0]["better"] = "faster"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"not a valid results document \(schema version 2\) "
                                         "at scenarios/0/metrics/0/better"):
        results.load(path)


def test_reports_have_tables_and_charts_and_the_html_is_self_contained(scenario, tmp_path):
    doc = run_doc(scenario, measured(scenario))
    md_path, html_path = write_reports(doc, tmp_path)
    md = md_path.read_text()
    assert "| rr80k.tps | family=6 | config=big / config=small |" in md
    assert "1.396x [" in md and "published IPv6: 1.44x" in md and "| higher: 95% CI" in md
    charts = sorted((tmp_path / "charts").glob("*.svg"))
    assert len(charts) == 3  # the ratios (both families on one chart), two bar charts
    for chart in charts:
        svg = chart.read_text()
        assert svg.startswith("<svg") and svg.endswith("</svg>") and len(svg) > 3000
        assert f"](charts/{chart.name})" in md
    page = html_path.read_text()
    assert page.count("src='data:image/svg+xml,") == 3
    # nothing loaded from elsewhere: the page's own links are data URLs, the SVGs' fragments
    svgs = re.findall(r"src='(data:[^']*)'", page)
    assert not re.search(r"""(src|href)=["'](?!data:)""", re.sub(r"src='data:[^']*'", "", page))
    assert all(re.findall(r'href=\\?"([^#])', urllib.parse.unquote(u)) == [] for u in svgs)
    assert "<details>" in page and page.index("The talk") < page.index("<details>")


def scale(doc: dict, metric: str, point: dict | None, factor: float) -> None:
    for m in doc["scenarios"][0]["metrics"]:
        if m["metric"] == metric and (point is None or m["point"] == point):
            m["samples"] = [v * factor for v in m["samples"]]
            for key in ("median", "min", "max"):
                m[key] *= factor


def test_compare_flags_a_synthetic_regression_and_passes_an_unchanged_run(scenario):
    old = run_doc(scenario, measured(scenario))
    same = compare.compare(old, copy.deepcopy(old), 0.10)
    assert same.regressions == []
    verdicts = {r.metric: r.verdict for r in same.rows}
    # tps and p50 vary by 1-2% between repeats: unchanged at 10%; p99's repeats spread by
    # 20%, so 3 of them cannot rule out a 10% change either way
    assert (verdicts["rr80k.tps"], verdicts["rr80k.p50"], verdicts["rr80k.p99"]) == \
        ("unchanged", "unchanged", "too noisy")
    new = copy.deepcopy(old)
    # 30% fewer transactions/s: higher is better, so worse
    scale(new, "tps", {"config": "big", "family": 6}, 0.7)
    # half the latency: lower is better, so better
    scale(new, "p50", {"config": "big", "family": 4}, 0.5)
    table = compare.compare(old, new, 0.10)
    assert [(r.metric, r.point) for r in table.regressions] == \
        [("rr80k.tps", {"config": "big", "family": 6})]
    assert table.regressions[0].ratio == pytest.approx(0.7)
    assert table.regressions[0].ci_high < 1.0
    improved = [r for r in table.rows if r.verdict == "improvement"]
    assert [(r.metric, r.point) for r in improved] == [("rr80k.p50", {"config": "big",
                                                                      "family": 4})]
    text = table.render()
    assert "REGRESSION" in text and "0.700x" in text


def test_compare_verdict_needs_the_interval_and_the_threshold():
    def iv(est, lo, hi):
        return stats.Interval(est, lo, hi, 3, "Welch log t", 0.1)

    assert compare.verdict("higher", iv(0.85, 0.6, 1.2), 0.10)[0] == "too noisy"
    assert compare.verdict("higher", iv(0.85, 0.8, 0.9), 0.10)[0] == "regression"
    assert compare.verdict("lower", iv(0.85, 0.8, 0.9), 0.10)[0] == "improvement"
    assert compare.verdict("lower", iv(1.15, 1.1, 1.2), 0.10)[0] == "regression"
    # outside the interval but within the threshold: a real change, too small to count
    assert compare.verdict("higher", iv(0.95, 0.93, 0.97), 0.10)[0] == "unchanged"
    assert compare.verdict("higher", iv(1.0, 0.95, 1.05), 0.10)[0] == "unchanged"
    assert compare.verdict("none", iv(3.0, 2.0, 4.0), 0.10)[0] == "not judged"
    one = stats.Interval(0.5, None, None, 1, "Welch log t")
    assert compare.verdict("higher", one, 0.10)[0] == "not judged"


def test_lab_compare_cli_exit_codes(scenario, tmp_path):
    old = run_doc(scenario, measured(scenario))
    new = copy.deepcopy(old)
    scale(new, "p99", None, 2)
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    lab = [sys.executable, "-m", "lab", "compare"]
    same = subprocess.run(lab + [str(tmp_path / "old.json")] * 2, capture_output=True,
                          text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    worse = subprocess.run(lab + [str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                                  "--threshold", "25"], capture_output=True, text=True)
    assert worse.returncode == 1
    assert worse.stdout.count("REGRESSION") == 4 and "2.000x" in worse.stdout


def test_missing_requirements_skip_the_scenario_with_the_reason(tmp_path):
    path = tmp_path / "needs.yaml"
    path.write_text(textwrap.dedent(f"""\
        topology: {ROOT / "topologies" / "bigtcp.yaml"}
        requires: [CONFIG_LAB_NO_SUCH_OPTION]
        steps: [{{kind: reach}}]
        """))
    out = io.StringIO()
    runner = Runner(tmp_path / "out", progress=Progress(out, "lines"))
    run = runner.run([load(path)])
    assert run.status == "passed"  # a skip does not fail the run
    sc = run.to_json()["scenarios"][0]
    assert sc["status"] == "skipped" and sc["metrics"] == []
    if os.geteuid() == 0:
        # =n, or that the kernel does not expose its configuration: either way, named
        assert sc["reason"].startswith("requires CONFIG_LAB_NO_SUCH_OPTION: ")
    else:
        assert sc["reason"].startswith("requires privileges: the lab needs root")
    assert f"needs: skipped: {sc['reason']}" in out.getvalue()
    results.load(tmp_path / "out" / "results.json")  # written, and valid


def test_progress_modes(monkeypatch):
    out = io.StringIO()
    p = Progress(out, "lines")
    p.add_total(2)
    p.step("a · rr")
    p.advance()
    p.message("a: passed")
    assert out.getvalue() == "[1/2] a · rr\na: passed\n"
    quiet = io.StringIO()
    q = Progress(quiet, "quiet")
    q.add_total(2)
    q.step("a · rr")
    q.message("a: passed")
    assert quiet.getvalue() == "a: passed\n"
    monkeypatch.setenv("CI", "true")
    assert Progress(io.StringIO()).mode == "quiet"
    bar = io.StringIO()
    b = Progress(bar, "bar")
    b.add_total(4)
    b.step("s r1/1 · rr")
    b.advance(2)
    assert "[############............] 2/4" in bar.getvalue()
    assert "s r1/1 · rr" in bar.getvalue()


def test_compare_missing_metrics_regress_and_unit_changes_are_bad_input(scenario, tmp_path):
    old = run_doc(scenario, measured(scenario))
    new = copy.deepcopy(old)
    new["scenarios"][0]["metrics"] = [m for m in new["scenarios"][0]["metrics"]
                                      if m["metric"] != "p99"]
    table = compare.compare(old, new, 0.10)
    assert {r.verdict for r in table.regressions} == {"missing"} and len(table.regressions) == 4
    assert "MISSING" in table.render()
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    lab = [sys.executable, "-m", "lab", "compare"]
    proc = subprocess.run(lab + [str(tmp_path / "old.json"), str(tmp_path / "new.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "4 missing" in proc.stdout
    ms = copy.deepcopy(old)
    for m in ms["scenarios"][0]["metrics"]:
        if m["metric"] == "p50":
            m["unit"] = "ms"
    (tmp_path / "ms.json").write_text(json.dumps(ms))
    proc = subprocess.run(lab + [str(tmp_path / "old.json"), str(tmp_path / "ms.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not comparable: synthetic/rr80k.p50[config=big family=4]: unit 'us' in OLD, " \
           "'ms' in NEW" in proc.stderr


def test_lab_compare_html_shows_both_runs_side_by_side(scenario, tmp_path):
    old = run_doc(scenario, measured(scenario))
    new = copy.deepcopy(old)
    scale(new, "tps", {"config": "big", "family": 6}, 0.7)
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    out = tmp_path / "cmp" / "compare.html"
    proc = subprocess.run([sys.executable, "-m", "lab", "compare", str(tmp_path / "old.json"),
                           str(tmp_path / "new.json"), "--html", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    page = out.read_text()
    assert "Regressions and missing metrics" in page
    assert "synthetic/rr80k.tps</td><td>config=big family=6" in page
    assert 'class="v-regression">regression: 95% CI' in page
    assert page.count("<figure") == page.count("src='data:image/svg+xml,") >= 1
