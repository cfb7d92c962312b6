"""What one measurement saw beyond its scalar metrics, as kept in results.json: the latency
distribution of a request/response test and the per-interval series of a throughput test.

A Distribution holds what its tool can give, and the report draws whatever is there:
  - `buckets`: counts in log-spaced buckets (lab-rr sees every transaction): bucket k holds the
    values in [10^(k/per_decade), 10^((k+1)/per_decade)) of the unit, counts[i] is bucket
    first + i. 20 buckets per decade is a 12% step, finer than the run-to-run noise, and one
    decade of latencies costs 20 integers;
  - `quantiles`: exact values at fractions ("0" the minimum, "0.5" the median, "1" the maximum);
    a tool that reports percentiles only (netperf -j: P50/P90/P99_LATENCY, MIN, MAX) fills these
    alone, and its CDF is drawn through those points.
A Timeline is a metric sampled per interval of one measurement (iperf3 --interval): a stall
shows as a dip that the mean over the whole run hides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Distribution:
    unit: str
    count: int  # transactions the distribution describes
    quantiles: dict[str, float] = field(default_factory=dict)  # fraction (as text) -> value
    per_decade: int = 0  # 0: no buckets
    first: int = 0  # bucket index of counts[0] (negative below 1 unit)
    counts: list[int] = field(default_factory=list)
    mean: float | None = None
    source: str = ""  # the tool: lab-rr, netperf

    def __post_init__(self):
        for q, v in self.quantiles.items():
            if not 0.0 <= float(q) <= 1.0 or not math.isfinite(v):
                raise ValueError(f"quantile {q}: {v} is not a quantile and a finite value")
        if self.counts and self.per_decade <= 0:
            raise ValueError("bucket counts need per_decade > 0")
        if any(c < 0 for c in self.counts):
            raise ValueError("bucket counts must not be negative")

    @property
    def has_buckets(self) -> bool:
        return self.per_decade > 0 and sum(self.counts) > 0

    def edge(self, k: int) -> float:
        """The lower edge of bucket K."""
        return 10.0 ** (k / self.per_decade)

    def cdf(self) -> tuple[list[float], list[float]]:
        """Points (value, fraction at or below it): bucket upper edges, else the quantiles."""
        if self.has_buckets:
            total = sum(self.counts)
            xs, ys, seen = [self.edge(self.first)], [0.0], 0
            for i, c in enumerate(self.counts):
                seen += c
                xs.append(self.edge(self.first + i + 1))
                ys.append(seen / total)
            return xs, ys
        pts = sorted((float(q), v) for q, v in self.quantiles.items())
        return [v for _, v in pts], [q for q, _ in pts]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"unit": self.unit, "count": self.count, "source": self.source,
                             "quantiles": dict(self.quantiles)}
        if self.mean is not None:
            d["mean"] = self.mean
        if self.per_decade:
            d["buckets"] = {"per_decade": self.per_decade, "first": self.first,
                            "counts": list(self.counts)}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Distribution:
        b = d.get("buckets") or {}
        return cls(unit=d["unit"], count=d["count"], quantiles=dict(d.get("quantiles", {})),
                   per_decade=b.get("per_decade", 0), first=b.get("first", 0),
                   counts=list(b.get("counts", [])), mean=d.get("mean"),
                   source=d.get("source", ""))

    @classmethod
    def merge(cls, parts: list[Distribution]) -> Distribution:
        """Several measurements as one (the repeats of a point): bucket counts add up; without
        buckets, each quantile is the median of the parts' (a summary, not an exact merge)."""
        if not parts:
            raise ValueError("nothing to merge")
        unit = parts[0].unit
        if any(p.unit != unit for p in parts):
            raise ValueError(f"distributions in different units: {sorted({p.unit for p in parts})}")
        count = sum(p.count for p in parts)
        bucketed = [p for p in parts if p.has_buckets]
        if bucketed and len(bucketed) == len(parts) and \
                len({p.per_decade for p in parts}) == 1:
            lo = min(p.first for p in parts)
            hi = max(p.first + len(p.counts) for p in parts)
            counts = [0] * (hi - lo)
            for p in parts:
                for i, c in enumerate(p.counts):
                    counts[p.first - lo + i] += c
            return cls(unit, count, {}, parts[0].per_decade, lo, counts,
                       source=parts[0].source)
        keys = set.intersection(*(set(p.quantiles) for p in parts))
        quantiles = {k: sorted(p.quantiles[k] for p in parts)[len(parts) // 2] for k in keys}
        return cls(unit, count, quantiles, source=parts[0].source)


def buckets_of(values: list[float], per_decade: int) -> tuple[int, list[int]]:
    """(first, counts) of VALUES (all > 0) in log-spaced buckets; for tools that give raw
    samples (lab-rr computes its own in C with the same rule)."""
    if not values:
        return 0, []
    index = [math.floor(math.log10(v) * per_decade) for v in values]
    first = min(index)
    counts = [0] * (max(index) - first + 1)
    for k in index:
        counts[k - first] += 1
    return first, counts


@dataclass
class Timeline:
    metric: str  # what is sampled (e.g. throughput)
    unit: str
    times: list[float]  # end of each interval, seconds from the start of the measurement
    values: list[float]

    def __post_init__(self):
        if len(self.times) != len(self.values):
            raise ValueError("a timeline needs one value per interval")
        if not all(math.isfinite(v) for v in [*self.times, *self.values]):
            raise ValueError("a timeline's times and values must be finite")

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "unit": self.unit,
                "times": [round(t, 3) for t in self.times],
                "values": [float(f"{v:.4g}") for v in self.values]}

    @classmethod
    def from_json(cls, d: dict) -> Timeline:
        return cls(d["metric"], d["unit"], list(d["times"]), list(d["values"]))
