"""`lab compare OLD NEW`: every metric of two runs side by side, each change judged with the
same statistics as a run's own ratios (lab/scenarios/stats.py).

Two runs do not pair their repeats, so the ratio NEW / OLD of a metric is the ratio of the
geometric means of its repeats, with Welch's t interval on the log samples. A metric whose
direction is known (higher or lower is better, from its step kind's definition):

  regression    the interval excludes 1 (a real change) AND the change goes the worse way by
                more than the threshold
  improvement   the same, the better way
  unchanged     the interval lies within 1 +- threshold, or excludes 1 by less than it
  too noisy     the interval holds 1 and reaches beyond the threshold: the repeats cannot
                tell; the row says about how many repeats each run would need
  not judged    no direction (counts, sizes), or a run with one repeat (no interval)
  missing       OLD has it, NEW does not (a scenario or step that no longer ran): counted with
                the regressions, never a pass
  new           only NEW has it

A metric whose unit or direction differs between the runs, or a file with NaN, is bad input
(exit 2): numbers in different units are not comparable. Environments that differ (kernel,
CPU, native or VM, tool versions) are listed first. Claims (lab/scenarios/claims.py) are
matched by scenario, id and point, with both verdicts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from lab.errors import UsageError
from lab.scenarios import stats
from lab.scenarios.results import point_label, series_key

REGRESSION, MISSING, IMPROVEMENT, TOO_NOISY, UNCHANGED, NOT_JUDGED, NEW = (
    "regression", "missing", "improvement", "too noisy", "unchanged", "not judged", "new")
ORDER = {v: i for i, v in enumerate((REGRESSION, MISSING, IMPROVEMENT, TOO_NOISY, UNCHANGED,
                                     NOT_JUDGED, NEW))}
FAILING = (REGRESSION, MISSING)


@dataclass
class Row:
    scenario: str
    metric: str
    point: dict
    unit: str
    better: str
    old: float | None  # medians
    new: float | None
    n_old: int
    n_new: int
    ratio: float | None  # NEW / OLD, geometric means
    ci_low: float | None
    ci_high: float | None
    verdict: str
    note: str = ""
    repeats_needed: int | None = None

    @property
    def key(self) -> str:
        return f"{self.scenario}/{self.metric}[{point_label(self.point)}]"


@dataclass
class ClaimRow:
    scenario: str
    id: str
    claim: str
    point: dict
    published: float
    old: dict | None  # the claim rows of each run
    new: dict | None


@dataclass
class Table:
    threshold: float
    rows: list[Row] = field(default_factory=list)
    environment: list[tuple[str, str, str]] = field(default_factory=list)
    claims: list[ClaimRow] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        """What fails the comparison: regressions and metrics missing from NEW."""
        return [r for r in self.rows if r.verdict in FAILING]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in sorted(self.rows, key=lambda r: ORDER[r.verdict]):
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "confidence": stats.CONFIDENCE,
                "regressions": len(self.regressions), "counts": self.counts(),
                "environment": [{"what": w, "old": o, "new": n} for w, o, n in self.environment],
                "rows": [asdict(r) for r in self.rows],
                "claims": [asdict(c) for c in self.claims]}

    def render(self, show_all: bool = False) -> str:
        lines = []
        for what, old, new in self.environment:
            lines.append(f"environment differs: {what}: {old} -> {new}")
        shown = [r for r in self.rows
                 if show_all or r.verdict not in (UNCHANGED, NOT_JUDGED)]
        header = ("verdict", "metric", "at", "old", "new", "new/old", f"{stats.CONFIDENCE:.0%} CI",
                  "note")
        table = [header] + [
            (r.verdict.upper() if r.verdict in FAILING else r.verdict,
             f"{r.scenario}/{r.metric}", point_label(r.point) or "-",
             num(r.old, r.unit), num(r.new, r.unit), stats.fmt_ratio(r.ratio),
             interval(r.ci_low, r.ci_high), r.note)
            for r in shown]
        if len(table) > 1:
            widths = [max(len(row[i]) for row in table) for i in range(len(header))]
            for row in table:
                lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        for c in self.claims:
            old = c.old["verdict"] if c.old else "-"
            new = c.new["verdict"] if c.new else "-"
            if old != new:
                lines.append(f"claim {c.scenario}/{c.id} [{point_label(c.point) or '-'}]: "
                             f"{old} -> {new}")
        summary = ", ".join(f"{n} {v}" for v, n in self.counts().items())
        lines.append(f"{len(self.rows)} metrics compared ({stats.CONFIDENCE:.0%} intervals, "
                     f"{self.threshold * 100:g}% threshold): {summary or 'none in common'}")
        return "\n".join(lines) + "\n"


def num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} {unit}".strip()


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{stats.fmt_ratio(low)}..{stats.fmt_ratio(high)}"


def _series(doc: dict) -> dict[str, tuple[dict, dict]]:
    out = {}
    for s in doc["scenarios"]:
        for m in s["metrics"]:
            out[series_key(s["name"], m["step"], m["metric"], m["point"])] = (s, m)
    return out


def _environment(old: dict, new: dict) -> list[tuple[str, str, str]]:
    def facts(env: dict) -> dict[str, str]:
        ex = env["execution"]
        return {"kernel": env["kernel"]["release"], "CPU": env["machine"]["cpu_model"],
                "CPUs": str(env["machine"]["cpus"]),
                "execution": ex["mode"] + (f" ({ex.get('accel')})" if ex["mode"] == "vm" else ""),
                **{f"tool {k}": str(v) for k, v in env["tools"].items()}}

    a, b = facts(old["environment"]), facts(new["environment"])
    return [(k, a.get(k, "-"), b.get(k, "-")) for k in dict.fromkeys([*a, *b])
            if a.get(k) != b.get(k)]


def verdict(better: str, iv: stats.Interval, threshold: float) -> tuple[str, str, int | None]:
    """(verdict, note, repeats needed) of a change NEW / OLD with interval IV."""
    if better not in ("higher", "lower"):
        return NOT_JUDGED, "no direction: listed, not judged", None
    if iv.estimate is None:
        return NOT_JUDGED, "no ratio: OLD is zero", None
    if not iv.has_interval:
        return NOT_JUDGED, "one repeat in a run: no interval", None
    change = iv.estimate - 1.0
    worse = change < 0 if better == "higher" else change > 0
    if iv.excludes_one:
        if abs(change) > threshold:
            return (REGRESSION if worse else IMPROVEMENT), stats.fmt_interval(iv), None
        return UNCHANGED, f"a real change of {change:+.1%}, within the threshold", None
    if iv.low >= 1.0 - threshold and iv.high <= 1.0 + threshold:
        return UNCHANGED, "", None
    d = abs(math.log(iv.estimate)) if iv.estimate > 0 else 0.0
    need = stats.repeats_needed(iv, max(d, math.log1p(threshold) - d, 1e-3), unpaired=True)
    return TOO_NOISY, (f"{stats.fmt_interval(iv)} holds 1 and reaches beyond +-"
                       f"{threshold:.0%}: " + (f"about {need} repeats per run would decide it"
                                               if need else f"more than {stats.MAX_REPEATS} "
                                                            "repeats per run needed")), need


def _check_comparable(a: dict[str, tuple[dict, dict]], b: dict[str, tuple[dict, dict]]) -> None:
    bad = []
    for key in a.keys() & b.keys():
        mo, mn = a[key][1], b[key][1]
        for attr, what in (("unit", "unit"), ("better", "direction")):
            if mo[attr] != mn[attr]:
                bad.append(f"{key}: {what} {mo[attr]!r} in OLD, {mn[attr]!r} in NEW")
    for key, (_, m) in [*a.items(), *b.items()]:
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in m["samples"]):
            bad.append(f"{key}: a sample that is not a finite number")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise UsageError("the runs are not comparable: " + "; ".join(sorted(bad)[:5]) + more)


def compare(old: dict, new: dict, threshold: float) -> Table:
    table = Table(threshold, environment=_environment(old, new))
    a, b = _series(old), _series(new)
    _check_comparable(a, b)
    for key in dict.fromkeys([*a, *b]):
        s, m = b[key] if key in b else a[key]
        name = f"{m['step']}.{m['metric']}"
        if key not in b:
            why = f"not in NEW (scenario {s['name']}: {_status(new, s['name'])})"
            table.rows.append(Row(s["name"], name, m["point"], m["unit"], m["better"],
                                  m["median"], None, m["n"], 0, None, None, None, MISSING,
                                  why))
            continue
        if key not in a:
            table.rows.append(Row(s["name"], name, m["point"], m["unit"], m["better"], None,
                                  m["median"], 0, m["n"], None, None, None, NEW))
            continue
        mo, mn = a[key][1], m
        iv = stats.unpaired_ratio(mn["samples"], mo["samples"])
        v, note, need = verdict(mo["better"], iv, threshold)
        table.rows.append(Row(s["name"], name, mo["point"], mo["unit"], mo["better"],
                              mo["median"], mn["median"], mo["n"], mn["n"], iv.estimate,
                              iv.low, iv.high, v, note, need))
    table.rows.sort(key=lambda r: ORDER[r.verdict])
    table.claims = _claims(old, new)
    return table


def _status(doc: dict, scenario: str) -> str:
    s = next((s for s in doc["scenarios"] if s["name"] == scenario), None)
    if s is None:
        return "not in this run"
    return s["status"] + (f": {s['reason']}" if s.get("reason") else "")


def _claims(old: dict, new: dict) -> list[ClaimRow]:
    def rows(doc: dict) -> dict[tuple, dict]:
        return {(c["scenario"], c["id"], point_label(c["point"])): c
                for s in doc["scenarios"] for c in s.get("claims", [])}

    a, b = rows(old), rows(new)
    out = []
    for key in dict.fromkeys([*a, *b]):
        c = b.get(key) or a[key]
        out.append(ClaimRow(c["scenario"], c["id"], c["claim"], c["point"], c["published"],
                            a.get(key), b.get(key)))
    return out

