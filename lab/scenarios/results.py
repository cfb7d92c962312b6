"""Results of a run: what was measured, checked and found, as one versioned JSON document.

The document's schema is results.schema.json beside this file (JSON Schema 2020-12, version
SCHEMA_VERSION); `lab run` writes DIR/results.json after every scenario, so an interrupted or
crashed run still leaves what it measured. Every metric is a series: one point of the
scenario's matrix, its unit and direction, the sample of each repeat and their median, min and
max. Ratios (`compare:` in a scenario) pair the repeats (both sides measured in the same
repeat, one right after the other): the ratio is the geometric mean of the paired ratios,
with its confidence interval and verdict (lab/scenarios/stats.py); the claims a ratio tests
are judged from it (lab/scenarios/claims.py). Request/response steps keep each measurement's
latency distribution, throughput steps their series per interval (lab/scenarios/records.py).

Files of older schema versions are read through lab/scenarios/upgrade.py; `load` refuses a
newer or unknown version, naming it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from lab.errors import InputError, UsageError
from lab.scenarios import claims as claims_mod
from lab.scenarios import stats
from lab.schema import OBJECT, input_error, nesting
from lab.scenarios.model import Scenario, matches
from lab.scenarios.records import Distribution, Timeline
from lab.scenarios.registry import Metric

SCHEMA_VERSION = 2
SCHEMA_DIR = Path(__file__).parent
SCHEMA_PATH = SCHEMA_DIR / "results.schema.json"


def schema(version: int = SCHEMA_VERSION) -> dict:
    """The JSON Schema of results documents of VERSION (older ones are kept, frozen)."""
    path = SCHEMA_PATH if version == SCHEMA_VERSION else \
        SCHEMA_DIR / "schemas" / f"results.v{version}.schema.json"
    with open(path) as f:
        return json.load(f)


def validate(doc: dict, version: int = SCHEMA_VERSION) -> None:
    """Raise jsonschema.ValidationError if DOC is not a valid results document of VERSION."""
    jsonschema.Draft202012Validator(schema(version)).validate(doc)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


MAX_NESTING = 32        # results documents nest about 8 deep


def load(path: str | Path) -> dict:
    """A results document from a file, checked against its version's schema and upgraded to
    the current version; UsageError (exit 2) for anything else, its version named."""
    from lab.scenarios import upgrade

    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(), parse_constant=_no_constant)
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    except RecursionError:
        raise UsageError(f"{path}: not a results document: nested without end") from None
    except ValueError as e:   # not JSON, not UTF-8, NaN, a number of 5000 digits
        raise UsageError(f"{path}: not a results document: not JSON ({e})") from None
    if nesting(doc) > MAX_NESTING:
        raise UsageError(f"{path}: not a results document: nested more than {MAX_NESTING} "
                         "deep")
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or \
            version not in upgrade.READABLE:
        newer = isinstance(version, int) and not isinstance(version, bool) and \
            version > SCHEMA_VERSION
        raise InputError(
            f"results schema version {version!r}: this lab reads versions "
            f"{min(upgrade.READABLE)} to {SCHEMA_VERSION}"
            + (" (the file is newer than this lab: update the lab to read it)" if newer else
               ""), str(path))
    _check(doc, version, path, f"not a valid results document (schema version {version})")
    if version != SCHEMA_VERSION:  # a failure here is a bug of the upgrade, said as such
        doc = upgrade.upgrade(doc)
        _check(doc, SCHEMA_VERSION, path, f"upgrading schema version {version} to "
                                          f"{SCHEMA_VERSION} gave an invalid document")
    return doc


def _check(doc: dict, version: int, path: str | Path, what: str) -> None:
    err = input_error(jsonschema.Draft202012Validator(schema(version)).iter_errors(doc),
                      wording=OBJECT)
    if err is not None:
        where = "/".join(str(p) for p in err.path) or "the top level"
        raise InputError(f"{what} at {where}: {err.message}", str(path))


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
        self.distributions: list[dict] = []
        self.timelines: list[dict] = []
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

    def distribution(self, step: str, point: dict, repeat: int, dist: Distribution) -> None:
        self.distributions.append({"step": step, "point": dict(point), "repeat": repeat,
                                   **dist.to_json()})

    def timeline(self, step: str, point: dict, repeat: int, timeline: Timeline) -> None:
        self.timelines.append({"step": step, "point": dict(point), "repeat": repeat,
                               **timeline.to_json()})

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
        for index, c in enumerate(sc.comparisons):
            self.comparisons += _compare(self, index, c)

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
            "captures": self.captures, "charts": [chart_spec(c) for c in sc.charts],
            "distributions": self.distributions, "timelines": self.timelines,
        }
        if self.environment is not None:
            d["environment"] = self.environment
        d["claims"] = claims_mod.evaluate(d, sc.comparisons)
        return d


def chart_spec(chart: dict) -> dict:
    """A chart of the scenario file, normalised, so reports can be drawn from results alone:
    `bars` (metrics by point), `cdf` (a step's latency distributions), `timeline` (a step's
    series per interval)."""
    common = {"title": chart["title"], "series": chart.get("series"),
              "where": chart.get("where", {}), "log": chart.get("log", False)}
    if "cdf" in chart:
        return {"kind": "cdf", "step": chart["cdf"], **common}
    if "timeline" in chart:
        step, name = chart["timeline"].split(".", 1)
        return {"kind": "timeline", "step": step, "metric": name, **common}
    x = chart.get("x")
    return {"kind": "bars", "metrics": chart.get("metrics") or [chart["metric"]],
            "x": [x] if isinstance(x, str) else x, **common,
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


def ratio_fields(of: tuple[list[float], list[int]], to: tuple[list[float], list[int]],
                 better: str) -> dict:
    """The statistics of a ratio OF / TO from (samples, repeats) of each side, paired by
    repeat: the estimate (geometric mean of the paired ratios), its confidence interval, the
    range of the paired ratios, and the verdict (also used to upgrade old results)."""
    of_by = dict(zip(of[1], of[0]))
    pairs = [(of_by[r], v) for v, r in zip(*to) if r in of_by]
    iv = stats.paired_ratio([a for a, _ in pairs], [b for _, b in pairs])
    of_median, to_median = statistics.median(of[0]), statistics.median(to[0])
    ratio_of_medians = of_median / to_median if to_median else None
    paired = [a / b for a, b in pairs if b]
    verdict, note, need = stats.ratio_verdict(iv)
    estimate = iv.estimate if iv.estimate is not None else ratio_of_medians
    return {"of_median": of_median, "to_median": to_median, "ratio": estimate,
            "ratio_of_medians": ratio_of_medians, "ci_low": iv.low, "ci_high": iv.high,
            "confidence": iv.confidence, "method": iv.method, "sd": iv.sd,
            "ratio_min": min(paired) if paired else estimate,
            "ratio_max": max(paired) if paired else estimate, "n": len(pairs),
            "verdict": verdict, "verdict_note": note, "repeats_needed": need,
            "better": better}


def _compare(result: ScenarioResult, index: int, c: dict) -> list[dict]:
    step, metric = c["metric"].split(".", 1)
    series = [s for s in result.series.values() if s.step == step and s.metric == metric]
    out = []
    for s_to in series:
        if not matches(s_to.point, c["to"]) or not matches(s_to.point, c.get("where")):
            continue
        base = {k: v for k, v in s_to.point.items() if k not in c["to"]}
        want = {**base, **c["of"]}
        s_of = next((s for s in series if point_eq(s.point, want)), None)
        if s_of is None:
            continue
        out.append(comparison_record(index, c, base, (s_of.samples, s_of.repeats),
                                     (s_to.samples, s_to.repeats), s_of.meta.unit,
                                     s_of.meta.better))
    return out


def comparison_record(index: int | None, c: dict, base: dict, of: tuple, to: tuple,
                      unit: str, better: str) -> dict:
    anchors = [{"value": an["value"], "label": an["label"]} for an in c.get("anchors", [])
               if matches(base, an.get("where"))]
    return {"metric": c["metric"], "title": c.get("title", ""), "unit": unit, "of": c["of"],
            "to": c["to"], "point": base, "spec": index, **ratio_fields(of, to, better),
            "anchors": anchors}


def point_eq(a: dict, b: dict) -> bool:
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
        self.shard: dict | None = None  # `lab run --shard K/N`: which part of which suite

    def to_json(self) -> dict:
        scenarios = [s.to_json() for s in self.scenarios]
        by_name = {s["name"]: i for i, s in enumerate(scenarios)}
        for doc in self.imported:
            if doc["name"] in by_name:
                scenarios[by_name[doc["name"]]] = doc
            else:
                scenarios.append(doc)
        for doc in scenarios:  # claims measured under emulation are not judged
            claims_mod.mark_emulated(doc["claims"], doc.get("environment") or self.environment)
        return {"schema_version": SCHEMA_VERSION, "tool": "datapath-lab",
                "command": self.command, "status": self.status, "quick": self.quick,
                "started": self.started, "finished": self.finished,
                "duration_s": round(self.duration_s, 3), "environment": self.environment,
                "scenarios": scenarios, **({"shard": self.shard} if self.shard else {})}

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")
        tmp.replace(path)
        return path
