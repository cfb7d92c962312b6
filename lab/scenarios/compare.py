"""`lab compare OLD NEW`: every metric the two runs share, as a ratio with its noise band.

For a metric with a direction (higher or lower is better, from its step kind's definition) the
change new/old - 1 is a regression when it goes the worse way by more than the threshold AND
by more than the noise band; the band is the larger relative half-range (max - min) / 2 /
median of the two runs' repeats, so a metric that swings by 30% between repeats cannot fail a
10% threshold on noise alone. Metrics without a direction (counts, sizes) are listed, never
judged. Environments that differ (kernel, CPU, native or VM) are printed first: numbers across
them are not comparable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lab.scenarios.results import point_label, series_key

ORDER = {"regression": 0, "improvement": 1, "within noise": 2, "unchanged": 3, "n/a": 4,
         "new": 5, "gone": 6}


@dataclass
class Row:
    scenario: str
    metric: str
    point: dict
    unit: str
    better: str
    old: float | None
    new: float | None
    ratio: float | None
    noise: float  # relative, e.g. 0.05 for +-5%
    verdict: str


@dataclass
class Table:
    threshold: float
    rows: list[Row] = field(default_factory=list)
    environment: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "regression"]

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "regressions": len(self.regressions),
                "environment": [{"what": w, "old": o, "new": n} for w, o, n in self.environment],
                "rows": [asdict(r) for r in self.rows]}

    def render(self, show_all: bool = False) -> str:
        lines = []
        for what, old, new in self.environment:
            lines.append(f"environment differs: {what}: {old} -> {new}")
        shown = [r for r in self.rows
                 if show_all or r.verdict not in ("unchanged", "n/a", "within noise")]
        header = ("verdict", "metric", "at", "old", "new", "ratio", "noise")
        table = [header] + [
            (r.verdict.upper() if r.verdict == "regression" else r.verdict,
             f"{r.scenario}/{r.metric}", point_label(r.point) or "-",
             _num(r.old, r.unit), _num(r.new, r.unit),
             f"{r.ratio:.3f}x" if r.ratio is not None else "-", f"+-{r.noise * 100:.1f}%")
            for r in shown]
        if len(table) > 1:
            widths = [max(len(row[i]) for row in table) for i in range(len(header))]
            for row in table:
                lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.verdict] = counts.get(r.verdict, 0) + 1
        summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(),
                                                          key=lambda kv: ORDER[kv[0]]))
        lines.append(f"{len(self.rows)} metrics compared at a {self.threshold * 100:g}% "
                     f"threshold: {summary or 'none in common'}")
        return "\n".join(lines) + "\n"


def _num(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} {unit}"


def _noise(m: dict) -> float:
    median = m["median"]
    return (m["max"] - m["min"]) / 2 / abs(median) if median else 0.0


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


def verdict(better: str, ratio: float | None, noise: float, threshold: float) -> str:
    if ratio is None:
        return "n/a"
    change = ratio - 1.0
    if better not in ("higher", "lower"):
        return "n/a"
    if abs(change) <= threshold:
        return "unchanged"
    if abs(change) <= noise:
        return "within noise"
    worse = change < 0 if better == "higher" else change > 0
    return "regression" if worse else "improvement"


def compare(old: dict, new: dict, threshold: float) -> Table:
    table = Table(threshold, environment=_environment(old, new))
    a, b = _series(old), _series(new)
    for key in dict.fromkeys([*a, *b]):
        if key not in a or key not in b:
            s, m = b[key] if key in b else a[key]
            table.rows.append(Row(s["name"], f"{m['step']}.{m['metric']}", m["point"],
                                  m["unit"], m["better"],
                                  a[key][1]["median"] if key in a else None,
                                  b[key][1]["median"] if key in b else None, None, 0.0,
                                  "new" if key in b else "gone"))
            continue
        (s, mo), (_, mn) = a[key], b[key]
        ratio = mn["median"] / mo["median"] if mo["median"] else None
        noise = max(_noise(mo), _noise(mn))
        table.rows.append(Row(s["name"], f"{mo['step']}.{mo['metric']}", mo["point"],
                              mo["unit"], mo["better"], mo["median"], mn["median"], ratio,
                              noise, verdict(mo["better"], ratio, noise, threshold)))
    table.rows.sort(key=lambda r: ORDER[r.verdict])
    return table
