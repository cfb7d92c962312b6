"""Results of a run: what was measured, checked and found, as one versioned JSON document.

The document's schema is results.schema.json beside this file (JSON Schema 2020-12, version
SCHEMA_VERSION); `lab run` writes DIR/results.json after every scenario, so an interrupted or
crashed run still leaves what it measured. Every metric is a series: one point of the
scenario's matrix, its unit and direction, the sample of each repeat and their median, min and
max. Ratios (`compare:` in a scenario) are medians over medians, with the spread of the ratios
of paired repeats (both sides measured in the same repeat, one right after the other).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from lab.errors import InputError, UsageError
from lab.schema import OBJECT, input_error
from lab.scenarios.model import Scenario, matches
from lab.scenarios.registry import Metric

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


def schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def validate(doc: dict) -> None:
    """Raise jsonschema.ValidationError if DOC is not a valid results document."""
    jsonschema.Draft202012Validator(schema()).validate(doc)


def load(path: str | Path) -> dict:
    """A results document from a file, checked against the schema."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not JSON ({e})") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise UsageError(f"{path}: results schema version {version!r}, this lab reads "
                         f"version {SCHEMA_VERSION}")
    err = input_error(jsonschema.Draft202012Validator(schema()).iter_errors(doc),
                      wording=OBJECT)
    if err is not None:
        where = "/".join(str(p) for p in err.path) or "the top level"
        raise InputError(f"not a valid results document at {where}: {err.message}", str(path))
    return doc


def point_label(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items())


def series_key(scenario: str, step: str, metric: str, point: dict) -> str:
    """The identity of a series across runs (`lab compare` matches on it)."""
    return f"{scenario}/{step}.{metric}[{point_label(point)}]"


@dataclass
class Series:
    step: str
    metric: str
    meta: Metric
    point: dict[str, Any]
    samples: list[float] = field(default_factory=list)
    repeats: list[int] = field(default_factory=list)
    placements: list[dict] = field(default_factory=list)

    def add(self, repeat: int, value: float, placement: dict | None) -> None:
        self.samples.append(float(value))
        self.repeats.append(repeat)
        if placement and placement not in self.placements:
            self.placements.append(placement)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def sample_of(self, repeat: int) -> float | None:
        for r, v in zip(self.repeats, self.samples):
            if r == repeat:
                return v
        return None

    def to_json(self) -> dict:
        d = {"step": self.step, "metric": self.metric, "unit": self.meta.unit,
             "better": self.meta.better, "description": self.meta.description,
             "point": self.point, "samples": self.samples, "repeats": self.repeats,
             "n": len(self.samples), "median": self.median, "min": min(self.samples),
             "max": max(self.samples),
             "mean": statistics.fmean(self.samples),
             "stdev": statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0}
        if self.placements:
            d["placement"] = self.placements
        return d


def _fmt(value: Any, unit: str = "") -> str:
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.4e}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


class ScenarioResult:
    """What one scenario produced; filled in by the runner and the steps' contexts."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.name = scenario.name
        self.status = "pending"  # passed | failed | skipped | error | interrupted
        self.reason = ""
        self.started = self.finished = None
        self.duration_s = 0.0
        self.series: dict[str, Series] = {}
        self.checks: list[dict] = []
        self.facts: list[dict] = []
        self.captures: list[dict] = []
        self.configs: list[dict] = []
        self.assertions: list[dict] = []
        self.comparisons: list[dict] = []
        self.environment: dict | None = None  # set when the scenario ran elsewhere (a VM)
        self.attach_modes: set[str] = set()
        self.steps_run = 0

    # -- recording (StepContext calls these) ----------------------------------------------------

    def record(self, step: str, metric: str, meta: Metric, point: dict, repeat: int,
               value: float, placement: dict | None = None) -> None:
        key = series_key(self.name, step, metric, point)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(step, metric, meta, dict(point))
        s.add(repeat, value, placement)

    def check(self, step: str, point: dict, repeat: int, description: str, ok: bool,
              measured: Any = None, expected: Any = None) -> None:
        self.checks.append({"step": step, "point": dict(point), "repeat": repeat,
                            "description": description, "ok": bool(ok),
                            "measured": _jsonable(measured), "expected": _jsonable(expected)})

    def fact(self, step: str, point: dict, repeat: int, key: str, value: Any) -> None:
        self.facts.append({"step": step, "point": dict(point), "repeat": repeat, "key": key,
                           "value": _jsonable(value)})

    # -- after the repeats ------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Assertions and comparisons over the series (also for partial results)."""
        sc = self.scenario
        self.assertions = []
        for a in sc.assertions:
            self.assertions += _assert(self, a)
        self.comparisons = []
        for c in sc.comparisons:
            self.comparisons += _compare(self, c)

    def failures(self) -> list[str]:
        out = [a["message"] for a in self.assertions if not a["ok"]]
        for c in self.checks:
            if not c["ok"]:
                detail = ""
                if c["measured"] is not None or c["expected"] is not None:
                    detail = f": measured {c['measured']}, expected {c['expected']}"
                out.append(f"{c['step']} [{point_label(c['point'])}] repeat {c['repeat']}: "
                           f"{c['description']}{detail}")
        return out

    def to_json(self) -> dict:
        sc = self.scenario
        d = {
            "name": self.name, "file": sc.file, "description": sc.description,
            "status": self.status, "reason": self.reason,
            "started": self.started, "finished": self.finished,
            "duration_s": round(self.duration_s, 3),
            "quick": sc.quick, "repeats": sc.repeats,
            "dimensions": sc.dimensions, "configs": self.configs,
            "attach_modes": sorted(self.attach_modes),
            "metrics": [s.to_json() for s in self.series.values()],
            "assertions": self.assertions, "checks": self.checks,
            "comparisons": self.comparisons, "facts": self.facts,
            "captures": self.captures, "charts": [_chart_spec(c) for c in sc.charts],
        }
        if self.environment is not None:
            d["environment"] = self.environment
        return d


def _chart_spec(chart: dict) -> dict:
    """A chart of the scenario file, normalised, so reports can be drawn from results alone."""
    x = chart.get("x")
    return {"title": chart["title"], "metrics": chart.get("metrics") or [chart["metric"]],
            "x": [x] if isinstance(x, str) else x, "series": chart.get("series"),
            "where": chart.get("where", {}), "log": chart.get("log", False),
            "anchors": chart.get("anchors", [])}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _assert(result: ScenarioResult, a: dict) -> list[dict]:
    step, metric = a["metric"].split(".", 1)
    stat = a.get("stat", "every")
    expected = []
    if "min" in a:
        expected.append(f">= {a['min']}")
    if "max" in a:
        expected.append(f"<= {a['max']}")
    if "equals" in a:
        expected.append(f"== {a['equals']}")
    out = []
    matched = [s for s in result.series.values()
               if s.step == step and s.metric == metric and matches(s.point, a.get("where"))]
    if not matched:
        return [{"metric": a["metric"], "point": a.get("where", {}), "stat": stat, "ok": False,
                 "measured": None, "expected": " and ".join(expected),
                 "message": f"assertion on {a['metric']} [{point_label(a.get('where', {}))}]: "
                            "nothing was measured"}]
    for s in matched:
        values = ([(s.median, "median of %d" % len(s.samples))] if stat == "median" else
                  [(v, f"repeat {r}") for r, v in zip(s.repeats, s.samples)])
        bad = [(v, what) for v, what in values if not _passes(v, a)]
        worst = bad[0] if bad else values[0]
        unit = s.meta.unit
        message = (f"{a['metric']} [{point_label(s.point)}] = {_fmt(worst[0], unit)} "
                   f"({worst[1]}), expected {' and '.join(expected)} {unit}".rstrip())
        out.append({"metric": a["metric"], "point": s.point, "stat": stat, "ok": not bad,
                    "measured": worst[0], "expected": " and ".join(expected),
                    "message": message})
    return out


def _passes(v: float, a: dict) -> bool:
    if "min" in a and not v >= a["min"]:
        return False
    if "max" in a and not v <= a["max"]:
        return False
    if "equals" in a and not v == a["equals"]:
        return False
    return True


def _compare(result: ScenarioResult, c: dict) -> list[dict]:
    step, metric = c["metric"].split(".", 1)
    series = [s for s in result.series.values() if s.step == step and s.metric == metric]
    out = []
    for s_to in series:
        if not matches(s_to.point, c["to"]) or not matches(s_to.point, c.get("where")):
            continue
        base = {k: v for k, v in s_to.point.items() if k not in c["to"]}
        want = {**base, **c["of"]}
        s_of = next((s for s in series if _point_eq(s.point, want)), None)
        if s_of is None:
            continue
        paired = [s_of.sample_of(r) / v for r, v in zip(s_to.repeats, s_to.samples)
                  if v and s_of.sample_of(r) is not None]
        ratio = s_of.median / s_to.median if s_to.median else None
        anchors = [{"value": an["value"], "label": an["label"]} for an in c.get("anchors", [])
                   if matches(base, an.get("where"))]
        out.append({"metric": c["metric"], "title": c.get("title", ""), "unit": s_of.meta.unit,
                    "better": s_of.meta.better, "of": c["of"], "to": c["to"], "point": base,
                    "of_median": s_of.median, "to_median": s_to.median, "ratio": ratio,
                    "ratio_min": min(paired) if paired else ratio,
                    "ratio_max": max(paired) if paired else ratio,
                    "n": len(paired), "anchors": anchors})
    return out


def _point_eq(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(str(a[k]) == str(b[k]) for k in a)


class RunResults:
    """The whole run: environment, scenarios, status; written as results.json."""

    def __init__(self, environment: dict, command: list[str], quick: bool):
        self.environment = environment
        self.command = command
        self.quick = quick
        self.status = "running"
        self.started: str | None = None
        self.finished: str | None = None
        self.duration_s = 0.0
        self.scenarios: list[ScenarioResult] = []
        self.imported: list[dict] = []  # scenario documents from a VM run, kept as they came

    def to_json(self) -> dict:
        scenarios = [s.to_json() for s in self.scenarios]
        by_name = {s["name"]: i for i, s in enumerate(scenarios)}
        for doc in self.imported:
            if doc["name"] in by_name:
                scenarios[by_name[doc["name"]]] = doc
            else:
                scenarios.append(doc)
        return {"schema_version": SCHEMA_VERSION, "tool": "datapath-lab",
                "command": self.command, "status": self.status, "quick": self.quick,
                "started": self.started, "finished": self.finished,
                "duration_s": round(self.duration_s, 3), "environment": self.environment,
                "scenarios": scenarios}

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")
        tmp.replace(path)
        return path
