"""`lab compare OLD NEW --html OUT`: the comparison of two runs (two commits, two kernels, two
machines) as one self-contained page: what differs in the environment, the talk's claims in
both runs, then per scenario the metrics side by side (medians, NEW / OLD with its interval,
the verdict) with a chart of the changes, drawn with the run report's blocks and charts.
"""

from __future__ import annotations

import math
from pathlib import Path

from lab.scenarios import charts as ch
from lab.scenarios import compare as cmp
from lab.scenarios import render, stats
from lab.scenarios.render import Block, Cell, Details, Figure, Heading, Para, Table, verdict_cell
from lab.scenarios.report import Names, ours
from lab.scenarios.results import point_label

# Rows of a scenario's chart of changes (the largest first; all are in its table).
MAX_ROWS = 40


def _run(label: str, path: Path, doc: dict) -> str:
    env = doc["environment"]
    lab = env.get("lab", {})
    ex = env["execution"]
    where = "native" if ex["mode"] == "native" else f"VM, {ex.get('accel')}"
    return (f"{label}: `{path}`: {doc['status']}, started {doc['started']}, kernel "
            f"{env['kernel']['release']} ({where}), {env['machine']['cpu_model']} x "
            f"{env['machine']['cpus']}, commit {(lab.get('commit') or '?')[:12]}"
            f"{' (modified)' if lab.get('dirty') else ''}"
            f"{', quick' if doc['quick'] else ''}.")


def build(table: cmp.Table, old: dict, new: dict, old_path: Path, new_path: Path) -> list[Block]:
    names = Names()
    counts = table.counts()
    blocks: list[Block] = [
        Heading(1, "lab compare: does NEW hold what OLD measured?"),
        Para(_run("OLD", old_path, old)), Para(_run("NEW", new_path, new)),
        Para(f"{len(table.rows)} metrics: "
             + ", ".join(f"**{n} {v}**" for v, n in counts.items())
             + f". A change is a regression when Welch's {stats.CONFIDENCE:.0%} interval of "
               f"NEW / OLD (log samples; the runs' repeats are not paired) excludes 1 and the "
               f"change is worse than the {table.threshold:.0%} threshold; a metric OLD had "
               "and NEW lacks is missing, counted with the regressions."),
    ]
    if table.environment:
        blocks.append(Heading(2, "Environments differ"))
        blocks.append(Para("Numbers across different kernels, CPUs or emulation are not "
                           "comparable as performance; read the ratios with that in mind."))
        blocks.append(Table(["what", "OLD", "NEW"], [list(e) for e in table.environment]))
    blocks += _claims(table, names)
    failing = [r for r in table.rows if r.verdict in cmp.FAILING]
    blocks.append(Heading(2, "Regressions and missing metrics"))
    blocks.append(_rows_table(failing) if failing else Para("None."))
    scenarios = list(dict.fromkeys(r.scenario for r in table.rows))
    for name in scenarios:
        rows = [r for r in table.rows if r.scenario == name]
        blocks.append(Heading(2, name))
        c: dict[str, int] = {}
        for r in rows:
            c[r.verdict] = c.get(r.verdict, 0) + 1
        blocks.append(Para(", ".join(f"{n} {v}" for v, n in c.items()) + "."))
        chart = _changes_chart(name, rows, names)
        if chart:
            blocks.append(Figure(chart))
        blocks.append(Details(f"All {len(rows)} metrics of {name}, side by side",
                              [_rows_table(rows)]))
    return blocks


def _rows_table(rows: list[cmp.Row]) -> Table:
    return Table(["metric", "at", "OLD (n)", "NEW (n)", f"NEW / OLD ({stats.CONFIDENCE:.0%} CI)",
                  "verdict"],
                 [[f"{r.scenario}/{r.metric}", point_label(r.point) or "-",
                   f"{cmp.num(r.old, r.unit)} ({r.n_old})", f"{cmp.num(r.new, r.unit)} "
                   f"({r.n_new})",
                   f"{stats.fmt_ratio(r.ratio)} {cmp.interval(r.ci_low, r.ci_high)}",
                   verdict_cell(r.verdict, r.note)] for r in rows])


def _changes_chart(scenario: str, rows: list[cmp.Row], names: Names) -> ch.Chart | None:
    shown = [r for r in rows if r.ratio is not None and r.ratio > 0
             and r.verdict in (cmp.REGRESSION, cmp.IMPROVEMENT, cmp.TOO_NOISY)]
    shown.sort(key=lambda r: -abs(math.log(r.ratio)))
    shown = shown[:MAX_ROWS]
    forest = [ch.ForestRow(point_label(r.point) or r.metric, r.ratio, r.ci_low, r.ci_high,
                           ch.VERDICT_COLORS.get(r.verdict, "#777777"), [], [],
                           section=r.metric)
              for r in sorted(shown, key=lambda r: r.metric)]
    judged = len([r for r in rows if r.verdict in (cmp.REGRESSION, cmp.IMPROVEMENT,
                                                    cmp.TOO_NOISY)])
    title = f"{scenario}: NEW / OLD of the metrics that changed or are too noisy to tell" + \
        (f" ({len(shown)} of {judged}: the largest with a ratio; all in the table)"
         if len(shown) < judged else "")
    return ch.forest(title, names(scenario, "changes"), forest,
                     "NEW / OLD (log scale); red: regression, green: improvement, grey: too "
                     "noisy")


def _claims(table: cmp.Table, names: Names) -> list[Block]:
    if not table.claims:
        return []
    out: list[Block] = [Heading(2, "The talk's claims in both runs")]
    rows = []
    forest = []
    for c in table.claims:
        cells: list[str | Cell] = [c.claim, f"{c.scenario} {point_label(c.point)}".strip(),
                                   stats.fmt_ratio(c.published)]
        for side, label in ((c.old, "OLD"), (c.new, "NEW")):
            if side is None:
                cells += ["-", Cell("not in this run")]
                continue
            cells += [ours(side["ratio"], side["ci_low"], side["ci_high"], side["n"]),
                      verdict_cell(side["verdict"])]
            if side["ratio"] is not None:
                forest.append(ch.ForestRow(label, side["ratio"], side["ci_low"],
                                           side["ci_high"],
                                           ch.VERDICT_COLORS.get(side["verdict"], "#777777"),
                                           [], [(c.published, "published figure")],
                                           section=f"{c.id} {point_label(c.point)}".strip()))
        rows.append(cells)
    out.append(Table(["claim", "scenario, at", "published", "OLD: ours", "OLD: verdict",
                      "NEW: ours", "NEW: verdict"], rows))
    chart = ch.forest("The talk's claims, OLD and NEW", names("claims"), forest,
                      "ratio (log scale); colour: the verdict")
    if chart:
        out.append(Figure(chart))
    return out


def write(table: cmp.Table, old: dict, new: dict, old_path: Path, new_path: Path,
          out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    blocks = build(table, old, new, old_path, new_path)
    render.write(blocks, "lab compare", out)
    return out
