"""The talk's claims, judged against what a run measured.

A scenario declares the claims a ratio tests, next to that ratio in its `compare:` list:

    compare:
      - metric: rr80k.tps
        of: {size: 185000}
        to: {size: 65536}
        claims:
          - id: bigtcp-ipv6-rr80k-tps
            claim: "IPv6 BIG TCP: +44% 80000-byte TCP_RR transactions/s"
            published: 1.44           # as a ratio of `of` / `to`
            source: "..."             # who measured it, how
            at: {family: 6}           # the points our figure comes from (a row per point)

or, for a claim that something costs (almost) nothing, `parity: 0.15` (no worse than 15%).
After a run each claim becomes one row per point it names: our ratio with its confidence
interval (lab/scenarios/stats.py) and one of these verdicts:

  reproduced               the interval reaches the published figure, or lies beyond it
                           (a larger effect); for parity: it lies within the tolerance
  same direction, smaller  the interval excludes 1 on the claimed side but falls short of it
  not reproduced           the interval holds 1 and excludes the published figure, or lies
                           on the other side of 1; for parity: it lies beyond the tolerance
  inconclusive             the interval holds both 1 and the published figure (too noisy:
                           the row says about how many repeats would decide it), or a single
                           repeat gave no interval
  not measurable here      the run could not measure it (the scenario or a config was
                           skipped, with the missing kernel feature named; the point was not
                           in this run), or measured it under emulation (a TCG VM), whose
                           timings are not comparable with a figure from hardware
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from lab.scenarios import stats
from lab.scenarios.model import matches

REPRODUCED = "reproduced"
SMALLER = "same direction, smaller"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_MEASURABLE = "not measurable here"
VERDICTS = (REPRODUCED, SMALLER, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURABLE)


def published(claim: dict) -> float:
    return float(claim.get("published", 1.0))


def _interval(c: dict) -> stats.Interval:
    return stats.Interval(c["ratio"], c.get("ci_low"), c.get("ci_high"), c.get("n", 0),
                          c.get("method", ""), c.get("sd", 0.0),
                          c.get("confidence", stats.CONFIDENCE))


def _needed(iv: stats.Interval, target: float) -> str:
    n = stats.repeats_needed(iv, target)
    return (f"about {n} repeats would decide it" if n else
            f"more than {stats.MAX_REPEATS} repeats would be needed")


def judge(claim: dict, comparison: dict) -> tuple[str, str]:
    """(verdict, reason) of CLAIM against one computed ratio of the run."""
    iv = _interval(comparison)
    ours = stats.fmt_ratio(iv.estimate)
    if iv.estimate is None:
        return INCONCLUSIVE, "no ratio: the baseline measured zero"
    if not iv.has_interval:
        return INCONCLUSIVE, (f"{ours} from {iv.n} repeat(s): no confidence interval "
                              "(run with repeats, not --quick)")
    span = stats.fmt_interval(iv)
    if "parity" in claim:
        return _judge_parity(claim, comparison, iv, span)
    p = published(claim)
    if iv.low <= 0:
        return INCONCLUSIVE, f"{span} reaches zero"
    # On the log scale, turned so that the claimed effect is positive.
    sign = 1.0 if p > 1.0 else -1.0
    target = abs(math.log(p))
    lo, hi = sorted((sign * math.log(iv.low), sign * math.log(iv.high)))
    claimed = stats.fmt_ratio(p)
    if hi < 0:
        return NOT_REPRODUCED, f"{span}: the opposite direction of the published {claimed}"
    if lo <= 0:
        if hi < target:
            return NOT_REPRODUCED, f"{span} holds 1 (no effect) and excludes {claimed}"
        distance = max(abs(math.log(iv.estimate)), abs(math.log(iv.estimate) - math.log(p)))
        return INCONCLUSIVE, f"{span} holds both 1 and {claimed}; " + _needed(iv, distance)
    if hi < target:
        return SMALLER, f"{span} is above 1 but below {claimed}" if sign > 0 else \
            f"{span} is below 1 but above {claimed}"
    if lo > target:
        return REPRODUCED, f"{span}: a larger effect than the published {claimed}"
    return REPRODUCED, f"{span} holds the published {claimed}"


def _judge_parity(claim: dict, comparison: dict, iv: stats.Interval,
                  span: str) -> tuple[str, str]:
    tol = float(claim["parity"])
    better = comparison.get("better", "none")
    lo_bound, hi_bound = 1.0 - tol, 1.0 + tol
    if better == "higher":  # worse is lower: only the lower bound matters
        ok, bad = iv.low >= lo_bound, iv.high < lo_bound
        band = f"no lower than {stats.fmt_ratio(lo_bound)}"
        edge = lo_bound
    elif better == "lower":
        ok, bad = iv.high <= hi_bound, iv.low > hi_bound
        band = f"no higher than {stats.fmt_ratio(hi_bound)}"
        edge = hi_bound
    else:
        ok = lo_bound <= iv.low and iv.high <= hi_bound
        bad = iv.high < lo_bound or iv.low > hi_bound
        band = f"within {stats.fmt_ratio(lo_bound)}..{stats.fmt_ratio(hi_bound)}"
        edge = lo_bound if iv.estimate < 1 else hi_bound
    if ok:
        return REPRODUCED, f"{span} is {band}"
    if bad:
        return NOT_REPRODUCED, f"{span} is beyond the tolerance ({band})"
    gap = abs(math.log(iv.estimate) - math.log(edge)) or math.log1p(tol) / 4
    return INCONCLUSIVE, f"{span} straddles the tolerance ({band}); " + _needed(iv, gap)


def _why_unmeasured(scenario: dict, comp_spec: dict, at: dict) -> str:
    status, reason = scenario.get("status"), scenario.get("reason") or ""
    if status == "skipped":
        return f"the scenario was skipped: {reason}" if reason else "the scenario was skipped"
    names = {str(v) for side in ("of", "to") for k, v in comp_spec.get(side, {}).items()
             if k == "config"}
    for c in scenario.get("configs", []):
        if c["name"] in names and c.get("status") == "skipped":
            return f"config {c['name']} was skipped: {c.get('reason', '')}".rstrip(": ")
    if status in ("error", "interrupted"):
        return f"the scenario ended ({status}) before measuring it: {reason}"
    where = " ".join(f"{k}={v}" for k, v in at.items())
    quick = " (--quick leaves it out)" if scenario.get("quick") else ""
    return f"not measured in this run{f' at {where}' if where else ''}{quick}"


def _expected_points(scenario: dict, spec: dict, at: dict) -> list[dict]:
    """The points the ratio would have had at AT (a row each, so runs match row by row)."""
    dims = {k: v for k, v in scenario.get("dimensions", {}).items() if k not in spec["to"]}
    where = {k: v for k, v in spec.get("where", {}).items() if k in dims}
    points = [dict(zip(dims, values)) for values in itertools.product(*dims.values())]
    return [p for p in points if matches(p, at) and matches(p, where)]


def evaluate(scenario: dict, specs: list[dict]) -> list[dict]:
    """The claim rows of one scenario document (its comparisons computed) for the `compare:`
    entries SPECS of its file."""
    rows = []
    for index, spec in enumerate(specs):
        for claim in spec.get("claims", []):
            at = claim.get("at", {})
            found = [c for c in scenario.get("comparisons", [])
                     if c.get("spec") == index and matches(c["point"], at)]
            base = {"id": claim["id"], "scenario": scenario["name"], "claim": claim["claim"],
                    "published": published(claim), "source": claim["source"],
                    "metric": spec["metric"], "of": spec["of"], "to": spec["to"]}
            for key in ("parity", "conditions"):
                if key in claim:
                    base[key] = claim[key]
            if not found:
                why = _why_unmeasured(scenario, spec, at)
                for point in _expected_points(scenario, spec, at) or [at]:
                    rows.append({**base, "point": point, "ratio": None, "ci_low": None,
                                 "ci_high": None, "n": 0, "verdict": NOT_MEASURABLE,
                                 "reason": why})
                continue
            for c in found:
                verdict, reason = judge(claim, c)
                rows.append({**base, "point": c["point"], "ratio": c["ratio"],
                             "ci_low": c.get("ci_low"), "ci_high": c.get("ci_high"),
                             "n": c["n"], "verdict": verdict, "reason": reason})
    return rows


def emulated(execution: dict[str, Any] | None) -> bool:
    """Timings from a VM without KVM are emulated: never judged against hardware figures."""
    return bool(execution) and execution.get("mode") == "vm" and execution.get("accel") != "kvm"


def mark_emulated(rows: list[dict], environment: dict) -> None:
    """Claim rows measured under emulation become `not measurable here`, figures kept."""
    execution = environment.get("execution", {})
    if not emulated(execution):
        return
    where = (f"measured in a {execution.get('accel') or 'software-emulated'} VM (kernel "
             f"{environment.get('kernel', {}).get('release', '?')}): emulated timings are "
             "compared only with each other, never with a figure from hardware")
    for row in rows:
        if row["ratio"] is not None and row["verdict"] != NOT_MEASURABLE:
            row["verdict"], row["reason"] = NOT_MEASURABLE, f"{where} ({row['reason']})"
