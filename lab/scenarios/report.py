"""Reports of a run: DIR/report.md (charts in DIR/charts/) and DIR/report.html
(self-contained), both drawn from the results document alone, so `lab report results.json`
redraws them.

What a reader meets first answers "does the talk hold here?": the talk's claims, each with the
published figure, ours with its confidence interval and a verdict (lab/scenarios/claims.py),
and one chart of them; then a line per scenario. Each scenario then says its question, how
many of its ratios are real (lab/scenarios/stats.py), one chart of its ratios, the charts its
file asks for (bars per metric across configurations, latency CDFs, throughput over time),
and, folded, every ratio, metric, repeat, config, fact and capture. The environment, the
method and the logs close the page, folded too. Every chart is drawn from what the scenario
files declare, so a new scenario needs no report code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.scenarios import charts as ch
from lab.scenarios import matrix, render, stats
from lab.scenarios.model import matches
from lab.scenarios.records import Distribution
from lab.scenarios.render import (Block, Bullets, Cell, Details, Figure, Heading, Para, Table,
                                  verdict_cell)
from lab.scenarios.results import point_eq, point_label

TITLE = "Datapath lab run"
# A scenario's headline chart shows at most this many ratios (the rest are in its details).
HEADLINE_ROWS = 24


class Names:
    """Chart names unique within one report."""

    def __init__(self):
        self.taken: set[str] = set()

    def __call__(self, *parts: str) -> str:
        name = "-".join(ch.slug(p) for p in parts if p)
        while name in self.taken:
            name += "-"
        self.taken.add(name)
        return name


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ch.fmt(v)
    return "-" if v is None else str(v)


def _placement(m: dict) -> str:
    out = []
    for p in m.get("placement", []):
        cpus = ""
        if p.get("client_cpus") is not None or p.get("server_cpus") is not None:
            cpus = (f" (client CPU {','.join(map(str, p.get('client_cpus') or ['?']))}, "
                    f"server CPU {','.join(map(str, p.get('server_cpus') or ['?']))})")
        out.append(p["name"] + cpus)
    return "; ".join(out) or "-"


def varying(point: dict, dimensions: dict[str, list]) -> str:
    """POINT by the dimensions that have more than one value (the others say nothing)."""
    return point_label({k: v for k, v in point.items() if len(dimensions.get(k, [])) != 1})


def ours(ratio: float | None, low: float | None, high: float | None, n: int) -> str:
    if ratio is None:
        return "-"
    if low is None or high is None:
        return f"{stats.fmt_ratio(ratio)} (n={n}, no interval)"
    return f"{stats.fmt_ratio(ratio)} [{stats.fmt_ratio(low)}, {stats.fmt_ratio(high)}] (n={n})"


# -- the page -------------------------------------------------------------------------------------

def build(doc: dict, base: Path) -> list[Block]:
    names = Names()
    env = doc["environment"]
    ex = env["execution"]
    counts: dict[str, int] = {}
    for s in doc["scenarios"]:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    where = "natively" if ex["mode"] == "native" else \
        f"in a VM ({ex.get('accel')}, kernel {ex.get('vm_kernel')})"
    lab = env.get("lab", {})
    blocks: list[Block] = [
        Heading(1, f"{TITLE}: does the talk hold here?"),
        Para(f"Status: **{doc['status']}** ({', '.join(f'{n} {k}' for k, n in counts.items())}"
             f"); {doc['duration_s']:.0f} s from {doc['started']}"
             f"{', quick (one repeat: nothing can be judged)' if doc['quick'] else ''}. "
             f"Kernel {env['kernel']['release']} {where} on {env['machine']['cpu_model']} x "
             f"{env['machine']['cpus']}; lab commit {lab.get('commit') or '?'}"
             f"{' (modified)' if lab.get('dirty') else ''}. "
             f"Command: `{' '.join(doc['command'])}`"),
    ]
    blocks += _shard_note(doc)
    blocks += claims_section(doc, names)
    blocks.append(Heading(2, "Scenarios"))
    blocks.append(Table(["scenario", "question", "status", "ratios (95% confidence)",
                         "claims", "time"],
                        [[s["name"], (s.get("description") or "").strip(),
                          Cell(s["status"], s["status"]), _ratio_counts(s) or "-",
                          _claim_counts(s) or "-", f"{s.get('duration_s', 0):.0f} s"]
                         for s in doc["scenarios"]]))
    blocks += matrix.blocks(doc)  # a kernel matrix (lab run --kernels): kernels side by side
    for s in doc["scenarios"]:
        blocks += scenario_section(s, names)
    blocks += closing_details(doc, base)
    return blocks


def _points(n: int) -> str:
    return f"{n} point{'' if n == 1 else 's'}"


def _shard_note(doc: dict) -> list[Block]:
    """Which part of a sharded run this is, or which shards a merged run was joined from."""
    if "shard" in doc:
        sh = doc["shard"]
        return [Para(f"Shard {sh['index']}/{sh['count']}: {len(sh['points'])} of the suite's "
                     f"{len(sh['suite']['points'])} (scenario, config) points (plan "
                     f"{sh['plan']}, weighed by {sh.get('durations', 'static')}); `lab merge` "
                     "joins the shards into the whole run's results.")]
    if "shards" in doc:
        parts = []
        for sh in doc["shards"]:
            env = sh.get("environment", {})
            host = env.get("machine", {}).get("hostname", "?")
            kernel = env.get("kernel", {}).get("release", "?")
            parts.append(f"{sh['index']}/{sh['count']} ({sh['status']}, "
                         f"{sh.get('duration_s', 0):.0f} s, {_points(len(sh['points']))}, on "
                         f"{host}, kernel {kernel})")
        return [Para(f"Merged from {len(parts)} shards (`lab merge`; the time is the longest "
                     f"shard's): {'; '.join(parts)}.")]
    return []


def _ratio_counts(s: dict) -> str:
    counts: dict[str, int] = {}
    for c in s["comparisons"]:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def _claim_counts(s: dict) -> str:
    counts: dict[str, int] = {}
    for c in s.get("claims", []):
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


# -- the talk's claims ----------------------------------------------------------------------------

CLAIMS_INTRO = (
    "One row per claim of the talk (or of the publication it quotes) that this run's scenarios "
    "test. Ours: the ratio of the configurations compared, the geometric mean of the paired "
    "repeats, with its 95% confidence interval. **reproduced**: the interval reaches the "
    "published figure or lies beyond it; **same direction, smaller**: it excludes no effect but "
    "falls short; **not reproduced**: it excludes the published figure and holds no effect, or "
    "points the other way; **inconclusive**: too noisy to tell (the row says how many repeats "
    "would); **not measurable here**: not measured, or only under emulation.")


def claim_rows(doc: dict) -> list[dict]:
    return [c for s in doc["scenarios"] for c in s.get("claims", [])]


def claims_section(doc: dict, names: Names) -> list[Block]:
    rows = claim_rows(doc)
    out: list[Block] = [Heading(2, "The talk's claims")]
    if not rows:
        out.append(Para("No scenario of this run tests a claim of the talk."))
        return out
    out.append(Para(CLAIMS_INTRO))
    dims = {s["name"]: s["dimensions"] for s in doc["scenarios"]}
    table = []
    for c in rows:
        at = varying(c["point"], dims.get(c["scenario"], {}))
        published = ("parity: no worse than " f"{c['parity']:.0%}" if "parity" in c
                     else stats.fmt_ratio(c["published"]))
        source = c["source"] + (f" ({c['conditions']})" if c.get("conditions") else "")
        table.append([c["claim"], f"{published}: {source}",
                      f"{ours(c['ratio'], c['ci_low'], c['ci_high'], c['n'])}; "
                      f"{c['scenario']}{f' at {at}' if at else ''}",
                      verdict_cell(c["verdict"]), c["reason"]])
    out.append(Table(["claim", "published", "ours (95% CI)", "verdict", "why"], table))
    chart = claims_chart(rows, dims, names)
    if chart:
        out.append(Figure(chart))
    return out


def claims_chart(rows: list[dict], dims: dict[str, dict], names: Names) -> ch.Chart | None:
    forest_rows = []
    for c in rows:
        if c["ratio"] is None:
            continue
        at = varying(c["point"], dims.get(c["scenario"], {}))
        label = f"{c['id']}{f' ({at})' if at else ''}"
        band = None
        if "parity" in c:
            band = (1.0 - c["parity"], 1.0 + c["parity"])
        forest_rows.append(ch.ForestRow(
            label, c["ratio"], c["ci_low"], c["ci_high"],
            ch.VERDICT_COLORS.get(c["verdict"], "#777777"), [],
            [] if "parity" in c else [(c["published"], "published figure")], band))
    return ch.forest("The talk's claims: our ratio (95% CI) against the published figure",
                     names("claims"), forest_rows,
                     "ratio (log scale); colour: the verdict; a wide grey bar: a parity "
                     "claim's tolerance")


# -- a scenario -----------------------------------------------------------------------------------

def scenario_section(s: dict, names: Names) -> list[Block]:
    out: list[Block] = [Heading(2, f"{s['name']}: {s['status']}")]
    if s.get("description"):
        out.append(Para(s["description"].strip()))
    if s["reason"]:
        out.append(Para(f"{s['status'].capitalize()}: {s['reason']}"))
    if s.get("environment"):
        ex = s["environment"]["execution"]
        out.append(Para(f"Ran in a VM: kernel {s['environment']['kernel']['release']}, "
                        f"{ex.get('accel')}" + (" (software emulation: timings are compared "
                                                "only within this scenario, never with native "
                                                "runs or published figures)"
                                                if ex.get("accel") != "kvm" else "")))
    if s["status"] == "skipped" and not s["metrics"]:
        return out
    failed = [a["message"] for a in s["assertions"] if not a["ok"]]
    failed += [f"{c['step']} [{point_label(c['point'])}] repeat {c['repeat']}: "
               f"{c['description']} (measured {c.get('measured')}, expected "
               f"{c.get('expected')})" for c in s["checks"] if not c["ok"]]
    if failed:
        out.append(Heading(3, "Failures"))
        out.append(Bullets(failed))
    comps = s["comparisons"]
    headline: list[dict] = []
    if comps:
        out.append(Para(_ratio_summary(comps)))
        headline, subset = _headline(comps, s.get("claims", []))
        title = s["name"] + ": ratios" + (f" ({subset}; all {len(comps)} below)" if subset
                                          else "")
        chart = ch.forest(title, names(s["name"], "ratios"), _forest_rows(headline, s),
                          "ratio of the configurations compared (log scale); green: the first "
                          "better, red: worse")
        if chart:
            out.append(Figure(chart))
    for chart in declared_charts(s, names):
        out.append(Figure(chart))
    if comps:
        details: list[Block] = []
        # the headline chart holds every ratio unless there are many: then one per metric
        for metric, rows in (_by_metric(comps) if len(headline) < len(comps) else {}).items():
            chart = ch.forest(f"{s['name']}: {metric}", names(s["name"], metric),
                              _forest_rows(rows, s), "ratio (log scale)")
            if chart:
                details.append(Figure(chart))
        details.append(ratio_table(comps))
        out.append(Details(f"All {len(comps)} ratios of {s['name']}, with their intervals "
                           "and verdicts", details))
    out.append(Details(f"Every metric and repeat of {s['name']}; configs, facts, captures",
                       _data(s)))
    return out


def _ratio_summary(comps: list[dict]) -> str:
    counts: dict[str, int] = {}
    for c in comps:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    need = [c["repeats_needed"] for c in comps if c.get("repeats_needed")]
    text = (f"{len(comps)} ratios, each over the paired repeats at 95% confidence: "
            + ", ".join(f"**{n} {v}**" for v, n in counts.items()))
    if counts.get(stats.TOO_WIDE):
        span = f"{min(need)}" if need and min(need) == max(need) else \
            f"{min(need)} to {max(need)}" if need else ""
        text += (f". Too wide to judge: about {span} repeats would decide "
                 f"{'it' if counts[stats.TOO_WIDE] == 1 else 'them'}" if span else
                 f". Too wide to judge: more than {stats.MAX_REPEATS} repeats would be needed")
    return text + "."


def _claim_key(c: dict) -> tuple:
    return (c["metric"], point_label(c["of"]), point_label(c["to"]), point_label(c["point"]))


def _headline(comps: list[dict], claims: list[dict]) -> tuple[list[dict], str]:
    """The ratios of a scenario's headline chart: all when few, else those the claims and
    anchors rest on."""
    if len(comps) <= HEADLINE_ROWS:
        return comps, ""
    keys = {_claim_key(c) for c in claims}
    claimed = [c for c in comps if _claim_key(c) in keys]
    anchored = [c for c in comps if c["anchors"] or _claim_key(c) in keys]
    if 2 <= len(anchored) <= HEADLINE_ROWS:
        return anchored, "those with published or earlier figures"
    if 2 <= len(claimed) <= HEADLINE_ROWS:
        return claimed, "those the claims rest on"
    return comps[:HEADLINE_ROWS], f"the first {HEADLINE_ROWS}"


def _by_metric(comps: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in comps:
        out.setdefault(c["metric"], []).append(c)
    return out


def _ratio_color(c: dict) -> str:
    v, better = c["verdict"], c.get("better", "none")
    if v in (stats.HIGHER, stats.LOWER) and better in ("higher", "lower"):
        good = (v == stats.HIGHER) == (better == "higher")
        return ch.VERDICT_COLORS["better" if good else "worse"]
    if v in (stats.HIGHER, stats.LOWER):
        return "#1f77b4"
    return ch.VERDICT_COLORS.get(v, "#777777")


def _paired(c: dict, s: dict) -> list[float]:
    """The paired ratios of C's repeats, from the scenario's samples."""
    step, metric = c["metric"].split(".", 1)

    def series(side: dict) -> dict | None:
        want = {**c["point"], **side}
        return next((m for m in s["metrics"] if m["step"] == step and m["metric"] == metric
                     and point_eq(m["point"], want)), None)

    of, to = series(c["of"]), series(c["to"])
    if of is None or to is None:
        return []
    by = dict(zip(of["repeats"], of["samples"]))
    return [by[r] / v for v, r in zip(to["samples"], to["repeats"]) if r in by and v]


def _forest_rows(comps: list[dict], s: dict) -> list[ch.ForestRow]:
    claims_of: dict[tuple, list[dict]] = {}
    for cl in s.get("claims", []):
        claims_of.setdefault(_claim_key(cl), []).append(cl)
    rows = []
    for c in comps:
        title = c.get("title") or f"{c['metric']}: {point_label(c['of'])} / {point_label(c['to'])}"
        at = varying(c["point"], s["dimensions"])
        marks = [(a["value"], a["label"]) for a in c["anchors"]]
        for cl in claims_of.get(_claim_key(c), []):
            if "parity" not in cl:
                marks.append((cl["published"], f"claim {cl['id']}: {cl['claim']}"))
        rows.append(ch.ForestRow(at or title, c["ratio"], c.get("ci_low"), c.get("ci_high"),
                                 _ratio_color(c), _paired(c, s), marks,
                                 section=title if at else ""))
    return rows


def ratio_table(comps: list[dict]) -> Table:
    rows = []
    for c in comps:
        anchors = "; ".join(f"{a['label']}: {a['value']:.2f}x" for a in c["anchors"])
        rows.append([c.get("title") or c["metric"], point_label(c["point"]) or "-",
                     f"{point_label(c['of'])} / {point_label(c['to'])}",
                     f"{_fmt(c.get('of_median'))} / {_fmt(c.get('to_median'))} "
                     f"{c.get('unit', '')}",
                     ours(c["ratio"], c.get("ci_low"), c.get("ci_high"), c["n"]),
                     f"{stats.fmt_ratio(c.get('ratio_min'))} .. "
                     f"{stats.fmt_ratio(c.get('ratio_max'))}",
                     verdict_cell(c["verdict"], c.get("verdict_note", "")), anchors or "-"])
    return Table(["ratio", "at", "of / to", "medians", "ratio (95% CI)", "paired repeats",
                  "verdict", "anchors"], rows)


def _data(s: dict) -> list[Block]:
    out: list[Block] = []
    dims = ", ".join(f"{k} ({', '.join(map(str, v))})" for k, v in s["dimensions"].items())
    out.append(Para(f"{s['repeats']} repeat(s){', quick' if s['quick'] else ''}; matrix: "
                    f"{dims or 'none'}; file `{s['file']}`."
                    + (f" Attach modes: {', '.join(s['attach_modes'])}."
                       if s.get("attach_modes") else "")))
    if s.get("configs"):
        rows = []
        for c in s["configs"]:
            dp = c.get("datapath", {})
            bpf = ", ".join(f"{b['program']}@{b['interface']} ({b['hook']})"
                            for b in dp.get("bpf", [])) or "none"
            rows.append([c["name"], c["status"], c.get("description") or c.get("reason", ""),
                         Path(c.get("topology") or "-").name,
                         ", ".join(dp.get("links", [])) or "-", bpf])
        out.append(Table(["config", "", "what", "topology", "links", "BPF"], rows))
    if s["metrics"]:
        out.append(Table(["metric", "at", "median", "min", "max", "unit", "n",
                          "every repeat", "placement (CPUs as read back)"],
                         [[f"{m['step']}.{m['metric']}", point_label(m["point"]) or "-",
                           _fmt(m["median"]), _fmt(m["min"]), _fmt(m["max"]), m["unit"],
                           str(m["n"]), ", ".join(_fmt(v) for v in m["samples"]),
                           _placement(m)] for m in s["metrics"]]))
    checks = s["checks"]
    if checks:
        ok = sum(1 for c in checks if c["ok"])
        out.append(Para(f"Checks: {ok} of {len(checks)} held."))
    if s["captures"]:
        out.append(Bullets([f"`{c['file']}`: {c['node']}:{c['ifname']}"
                            f"{' (' + c['filter'] + ')' if c.get('filter') else ''}, "
                            f"{_fmt(c.get('packets'))} packets" for c in s["captures"]]))
    facts = s.get("facts", [])
    if facts:
        out.append(Table(["step", "at", "repeat", "fact", "value"],
                         [[f["step"], point_label(f["point"]) or "-", str(f["repeat"]),
                           f["key"], _fmt(f["value"])] for f in facts[:200]]))
    return out


# -- the charts a scenario declares ---------------------------------------------------------------

def declared_charts(s: dict, names: Names) -> list[ch.Chart]:
    out = []
    for spec in s.get("charts", []):
        kind = spec.get("kind", "bars")
        if kind == "bars":
            chart = _bars(s, spec, names)
        elif kind == "cdf":
            chart = _cdf(s, spec, names)
        else:
            chart = _timeline(s, spec, names)
        if chart is not None:
            out.append(chart)
    return out


# Bars spanning more than this factor get a log axis (`log: true` asks for one anyway).
LOG_SPAN = 30


def _x_label(point: dict, dims: list[str], metric: str, dimensions: dict) -> str:
    parts = []
    for d in dims:
        if d == "metric":
            parts.append(metric.split(".", 1)[1])
        elif d in point and len(dimensions.get(d, [])) != 1:  # one value: says nothing
            parts.append(f"IPv{point[d]}" if d == "family" else f"{point[d]}")
    return "\n".join(parts) or point_label(point)


def _bars(s: dict, spec: dict, names: Names) -> ch.Chart | None:
    dims = list(s["dimensions"])
    series_dim = spec.get("series") or ("config" if "config" in dims else None)
    x_dims = list(spec.get("x") or [d for d in dims if d != series_dim])
    if len(spec["metrics"]) > 1 and "metric" not in x_dims and series_dim != "metric":
        x_dims.insert(0, "metric")
    fixed = set(spec.get("where", {}))
    # Dimensions neither on x nor as series nor fixed would hide points: put them on x.
    x_dims += [d for d in dims if d not in x_dims and d != series_dim and d not in fixed]
    groups: list[str] = []
    series: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for ref in spec["metrics"]:
        step, metric = ref.split(".", 1)
        for m in s["metrics"]:
            if m["step"] == step and m["metric"] == metric and \
                    matches(m["point"], spec.get("where")):
                g = _x_label(m["point"], x_dims, ref, s["dimensions"])
                sv = (metric if series_dim == "metric" else
                      str(m["point"].get(series_dim, "")) if series_dim else "")
                if g not in groups:
                    groups.append(g)
                if sv not in series:
                    series.append(sv)
                cells[(g, sv)] = m
    if not cells:
        return None
    anchors = []
    for a in spec.get("anchors", []):
        idx = [i for i, g in enumerate(groups)
               if any(matches(m["point"], a.get("where")) for (gg, _), m in cells.items()
                      if gg == g)]
        anchors.append((a["value"], a["label"], idx))
    unit = next(iter(cells.values()))["unit"]
    values = [m["median"] for m in cells.values()]
    log = spec.get("log") or (min(values) > 0 and max(values) / min(values) > LOG_SPAN)
    return ch.bars(spec["title"], names(s["name"], spec["title"]), groups, series, cells, unit,
                   anchors, series_dim or "", log)


def _groups(s: dict, records: list[dict], where: dict) -> list[tuple[str, list[dict]]]:
    """RECORDS matching WHERE, grouped by point (repeats together), each labelled by the
    dimensions that vary among the groups."""
    by: dict[str, tuple[dict, list[dict]]] = {}
    for r in records:
        if matches(r["point"], where):
            by.setdefault(point_label(r["point"]), (r["point"], []))[1].append(r)
    points = [p for p, _ in by.values()]
    varying = [d for d in s["dimensions"]
               if len({str(p.get(d)) for p in points}) > 1]
    return [(" ".join(f"{p[d]}" if d == "config" else f"{d}={p[d]}" for d in varying
                      if d in p) or point_label(p) or "all", recs) for p, recs in by.values()]


def _cdf(s: dict, spec: dict, names: Names) -> ch.Chart | None:
    records = [d for d in s.get("distributions", []) if d["step"] == spec["step"]]
    lines = []
    unit = "us"
    for label, recs in _groups(s, records, spec.get("where", {})):
        merged = Distribution.merge([Distribution.from_json(r) for r in recs])
        xs, ys = merged.cdf()
        unit = merged.unit
        lines.append((label, xs, ys, merged.count))
    if not lines:
        return None
    return ch.cdf(spec["title"], names(s["name"], spec["title"]), lines, unit)


def _timeline(s: dict, spec: dict, names: Names) -> ch.Chart | None:
    records = [t for t in s.get("timelines", [])
               if t["step"] == spec["step"] and t["metric"] == spec["metric"]]
    groups = [(label, [(r["times"], r["values"]) for r in recs])
              for label, recs in _groups(s, records, spec.get("where", {}))]
    if not groups:
        return None
    return ch.timeline(spec["title"], names(s["name"], spec["title"]), groups,
                       records[0]["unit"], spec["metric"])


# -- environment, method, logs --------------------------------------------------------------------

METHOD = (
    "Every ratio pairs the repeats: both configurations are measured one right after the other "
    "in each repeat, so repeat i of one side and repeat i of the other share what the machine "
    "did then. The ratio is the geometric mean of the paired ratios, and its 95% confidence "
    "interval Student's t over their logarithms (n repeats, n - 1 degrees of freedom): "
    "throughputs and latencies change by factors, their noise is close to symmetric on a log "
    "scale, and with 3 to 5 repeats a bootstrap could never give an interval wider than the "
    "observed pairs, so it would call noise a difference. A ratio is **higher** or **lower** "
    "when its interval excludes 1, **no difference** when it lies within 1 +- 5%, and **too "
    "wide to judge** otherwise, with the repeats that would narrow it enough at the spread "
    "seen. `lab compare` judges two runs the same way, with Welch's interval (the runs' "
    "repeats are not paired): a regression must lie outside the interval and beyond the "
    "threshold (lab/scenarios/stats.py).")


def closing_details(doc: dict, base: Path) -> list[Block]:
    env = doc["environment"]
    m, ex = env["machine"], env["execution"]
    execution = "native" if ex["mode"] == "native" else \
        f"in a VM ({ex.get('accel')}, kernel {ex.get('vm_kernel')})"
    tools = "; ".join(f"{k}: {v}" for k, v in env["tools"].items() if v) or "-"
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    lab = env.get("lab", {})
    out: list[Block] = [Heading(2, "Details")]
    out.append(Details("Environment", [Table(["environment", ""], [
        ["kernel", f"{env['kernel']['release']} ({execution}) {env['kernel']['version']}"],
        ["CPU", f"{m['cpu_model']} x {m['cpus']} (this run may use CPUs "
                f"{','.join(map(str, m['cpus_allowed']))})"],
        ["memory", f"{m['memory_mib']} MiB"],
        ["tools", tools], ["Python", f"{env['python']}; {libs}"],
        ["lab", f"{lab.get('version', '?')} commit {lab.get('commit') or '?'}"
                f"{' (modified)' if lab.get('dirty') else ''}"],
        ["command", " ".join(doc["command"])],
    ])]))
    out.append(Details("Statistics: how ratios and claims are judged", [Para(METHOD)]))
    logs = sorted((base / "logs").glob("*")) if (base / "logs").is_dir() else []
    if logs:
        out.append(Details(f"Logs ({len(logs)} files in logs/)",
                           [Bullets([f"`logs/{p.name}` ({p.stat().st_size:,} bytes)"
                                     for p in logs])]))
    return out


def write_reports(doc: dict, out_dir: Path) -> list[Path]:
    """Write report.md (charts in charts/*.svg) and report.html (charts embedded)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build(doc, out_dir)
    return render.write(blocks, TITLE, out_dir / "report.html", out_dir / "report.md",
                        out_dir / "charts")

