"""Scenarios: declarative experiments on a lab (scenarios/*.yaml), run by `lab run`.

    registry   step kinds: `@step(name, schema=..., metrics=...)` makes a Python function one;
               a Catalogue: the step kinds and datapath features scenarios may use
    context    StepContext: what a step kind's function gets (lab, parameters, point, repeat,
               results sink, captures, servers)
    model      scenario files -> checked Scenario objects (schema.yaml)
    runner     requirements, labs side by side, repeats, steps
    results    the results document (results.schema.json) and its statistics
    report     report.md and report.html with charts; compare: `lab compare`
    shard      `lab run --shard K/N`: the suite's (scenario, config) points dealt to N shards
    merge      `lab merge`: shards checked to be one run's and joined into one document
    steps      the built-in step kinds (iperf3, rr, crr, sockperf, ping, reach)

docs/scenarios.md describes the file format and how to write a step kind.
"""

from __future__ import annotations

from pathlib import Path

from lab.scenarios.context import StepContext
from lab.scenarios.model import Scenario, load, parse
from lab.scenarios.registry import Catalogue, Metric, StepKind, step

__all__ = ["Catalogue", "Metric", "Scenario", "StepContext", "StepKind", "load", "parse", "step",
           "scenarios_dir", "default_suite"]


def scenarios_dir() -> Path:
    """The checkout's scenarios/ directory (else ./scenarios)."""
    checkout = Path(__file__).resolve().parents[2] / "scenarios"
    return checkout if checkout.is_dir() else Path.cwd() / "scenarios"


def default_suite(catalogue: Catalogue | None = None) -> list[Scenario]:
    """Every scenario file of scenarios_dir() whose suite is `default`, by file name."""
    loaded = [load(p, catalogue) for p in sorted(scenarios_dir().glob("*.yaml"))]
    return [s for s in loaded if s.suite == "default"]
