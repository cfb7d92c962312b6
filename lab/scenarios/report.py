"""Reports of a run: DIR/report.md and DIR/report.html (self-contained), with charts.

Both are drawn from the results document alone (so `lab report results.json` redraws them):
one list of blocks (headings, tables, charts) is built once and rendered twice. Charts are
matplotlib PNGs: written to DIR/charts/ for the Markdown, embedded as data: URLs in the HTML.

  - a scenario's `charts:` are grouped bars, one group per x value, one bar per series value
    (default: per config), the bar the median of the repeats, the whisker their min..max,
    the metric's unit on the y axis, anchors drawn as dashed lines over the groups they apply to;
  - each `compare:` becomes a ratio chart: median / median per point, whiskers from the
    ratios of paired repeats, 1.0 drawn, and the published anchors for comparison.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.scenarios import matrix
from lab.scenarios.model import matches
from lab.scenarios.results import point_label

# -- content --------------------------------------------------------------------------------------


@dataclass
class Chart:
    title: str
    file: str  # relative to the results dir
    png: bytes


Block = tuple  # ("h", level, text) | ("p", text) | ("table", headers, rows) | ("chart", Chart)
#              | ("ul", items) | ("pre", text)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e3:
            return f"{v:,.0f}"
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.3e}"
    return str(v)


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}x"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "chart"


def _placement(m: dict) -> str:
    out = []
    for p in m.get("placement", []):
        cpus = ""
        if p.get("client_cpus") is not None or p.get("server_cpus") is not None:
            cpus = (f" (client CPU {','.join(map(str, p.get('client_cpus') or ['?']))}, "
                    f"server CPU {','.join(map(str, p.get('server_cpus') or ['?']))})")
        out.append(p["name"] + cpus)
    return "; ".join(out) or "-"


def build(doc: dict, chart_dir: Path, base: Path) -> list[Block]:
    env = doc["environment"]
    m, ex = env["machine"], env["execution"]
    blocks: list[Block] = [("h", 1, "Datapath lab run")]
    counts: dict[str, int] = {}
    for s in doc["scenarios"]:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    blocks.append(("p", f"Status: **{doc['status']}** ({summary}); {doc['duration_s']:.0f} s, "
                        f"started {doc['started']}{', quick' if doc['quick'] else ''}. "
                        f"Command: `{' '.join(doc['command'])}`"))
    execution = "native" if ex["mode"] == "native" else \
        f"in a VM ({ex.get('accel')}, kernel {ex.get('vm_kernel')})"
    tools = "; ".join(f"{k}: {v}" for k, v in env["tools"].items() if v) or "-"
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    lab = env.get("lab", {})
    blocks.append(("table", ["environment", ""], [
        ["kernel", f"{env['kernel']['release']} ({execution})"],
        ["CPU", f"{m['cpu_model']} x {m['cpus']} (this run may use CPUs "
                f"{','.join(map(str, m['cpus_allowed']))})"],
        ["memory", f"{m['memory_mib']} MiB"],
        ["tools", tools], ["Python", f"{env['python']}; {libs}"],
        ["lab", f"{lab.get('version', '?')} commit {lab.get('commit') or '?'}"
                f"{' (modified)' if lab.get('dirty') else ''}"],
    ]))
    blocks.append(("table", ["scenario", "status", "time", "note"], [
        [s["name"], s["status"], f"{s.get('duration_s', 0):.0f} s", s["reason"] or ""]
        for s in doc["scenarios"]]))
    blocks += matrix.blocks(doc)  # a kernel matrix (lab run --kernels): kernels side by side
    for s in doc["scenarios"]:
        blocks += _scenario(s, chart_dir, base)
    return blocks


def _scenario(s: dict, chart_dir: Path, base: Path) -> list[Block]:
    out: list[Block] = [("h", 2, f"{s['name']}: {s['status']}")]
    if s.get("description"):
        out.append(("p", s["description"].strip()))
    if s["reason"]:
        out.append(("p", f"{s['status'].capitalize()}: {s['reason']}"))
    if s.get("environment"):
        ex = s["environment"]["execution"]
        out.append(("p", f"Ran in a VM: kernel {s['environment']['kernel']['release']}, "
                         f"{ex.get('accel')}" + (" (software emulation: timings are not "
                                                 "comparable with native runs)"
                                                 if ex.get("accel") != "kvm" else "")))
    if s["status"] == "skipped" and not s["metrics"]:
        return out
    dims = ", ".join(f"{k} ({', '.join(map(str, v))})" for k, v in s["dimensions"].items())
    out.append(("p", f"{s['repeats']} repeat(s){', quick' if s['quick'] else ''}; "
                     f"matrix: {dims or 'none'}; file `{s['file']}`."
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
        out.append(("table", ["config", "", "what", "topology", "links", "BPF"], rows))
    failed = [a["message"] for a in s["assertions"] if not a["ok"]]
    failed += [f"{c['step']} [{point_label(c['point'])}] repeat {c['repeat']}: "
               f"{c['description']} (measured {c.get('measured')}, expected "
               f"{c.get('expected')})" for c in s["checks"] if not c["ok"]]
    if failed:
        out.append(("h", 3, "Failures"))
        out.append(("ul", failed))
    if s["comparisons"]:
        out.append(("h", 3, "Ratios, side by side"))
        rows = []
        for c in s["comparisons"]:
            anchors = "; ".join(f"{a['label']}: {a['value']:.2f}x" for a in c["anchors"])
            rows.append([c["metric"], point_label(c["point"]) or "-",
                         f"{point_label(c['of'])} / {point_label(c['to'])}",
                         f"{_fmt(c['of_median'])} / {_fmt(c['to_median'])} {c.get('unit', '')}",
                         _ratio(c["ratio"]),
                         f"{_ratio(c['ratio_min'])} .. {_ratio(c['ratio_max'])}",
                         anchors or "-"])
        out.append(("table", ["metric", "at", "ratio of", "medians", "ratio",
                              "paired repeats", "anchors"], rows))
        for chart in ratio_charts(s, chart_dir, base):
            out.append(("chart", chart))
    for chart in bar_charts(s, chart_dir, base):
        out.append(("chart", chart))
    if s["metrics"]:
        out.append(("h", 3, "Metrics"))
        rows = [[f"{m['step']}.{m['metric']}", point_label(m["point"]) or "-",
                 _fmt(m["median"]), _fmt(m["min"]), _fmt(m["max"]), m["unit"], str(m["n"]),
                 _placement(m)] for m in s["metrics"]]
        out.append(("table", ["metric", "at", "median", "min", "max", "unit", "n",
                              "placement (CPUs as read back)"], rows))
    if s["captures"]:
        out.append(("h", 3, "Packet captures"))
        out.append(("ul", [f"`{c['file']}`: {c['node']}:{c['ifname']}"
                           f"{' (' + c['filter'] + ')' if c.get('filter') else ''}, "
                           f"{_fmt(c.get('packets'))} packets" for c in s["captures"]]))
    facts = s.get("facts", [])
    if facts:
        out.append(("h", 3, "Facts"))
        out.append(("table", ["step", "at", "repeat", "fact", "value"],
                    [[f["step"], point_label(f["point"]) or "-", str(f["repeat"]), f["key"],
                      _fmt(f["value"])] for f in facts[:200]]))
    return out


# -- charts ---------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, title: str, scenario: str, chart_dir: Path, base: Path, taken: set) -> Chart:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    name = f"{scenario}-{_slug(title)}"
    while name in taken:
        name += "-"
    taken.add(name)
    chart_dir.mkdir(parents=True, exist_ok=True)
    path = chart_dir / f"{name}.png"
    path.write_bytes(buf.getvalue())
    return Chart(title, str(path.relative_to(base)), buf.getvalue())


def _x_label(point: dict, dims: list[str], metric: str) -> str:
    parts = []
    for d in dims:
        if d == "metric":
            parts.append(metric.split(".", 1)[1])
        elif d in point:
            parts.append(f"IPv{point[d]}" if d == "family" else f"{point[d]}")
    return "\n".join(parts)


ANCHOR_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def bar_charts(s: dict, chart_dir: Path, base: Path) -> list[Chart]:
    charts, taken = [], set()
    dims = list(s["dimensions"])
    for spec in s.get("charts", []):
        series_dim = spec.get("series") or ("config" if "config" in dims else None)
        x_dims = list(spec.get("x") or [d for d in dims if d != series_dim])
        if len(spec["metrics"]) > 1 and "metric" not in x_dims and series_dim != "metric":
            x_dims.insert(0, "metric")
        fixed = set(spec.get("where", {}))
        # Dimensions neither on x nor as series nor fixed would hide points: put them on x.
        x_dims += [d for d in dims if d not in x_dims and d != series_dim and d not in fixed]
        rows = []
        for ref in spec["metrics"]:
            step, metric = ref.split(".", 1)
            for m in s["metrics"]:
                if m["step"] == step and m["metric"] == metric and \
                        matches(m["point"], spec.get("where")):
                    rows.append((ref, m))
        if not rows:
            continue
        groups: list[str] = []
        series: list[str] = []
        cells: dict[tuple[str, str], dict] = {}
        for ref, m in rows:
            g = _x_label(m["point"], x_dims, ref)
            sv = (ref.split(".", 1)[1] if series_dim == "metric" else
                  str(m["point"].get(series_dim, "")) if series_dim else "")
            if g not in groups:
                groups.append(g)
            if sv not in series:
                series.append(sv)
            cells[(g, sv)] = m
        unit = rows[0][1]["unit"]
        charts.append(_grouped_bars(spec["title"], groups, series, cells, unit,
                                    spec.get("anchors", []), x_dims, series_dim,
                                    spec.get("log", False), s, chart_dir, base, taken))
    return charts


def _grouped_bars(title, groups, series, cells, unit, anchors, x_dims, series_dim, log, s,
                  chart_dir, base, taken) -> Chart:
    plt = _pyplot()
    n_series = max(1, len(series))
    width = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + len(groups) * (0.45 * n_series + 0.5)),
                                    4.2))
    for j, sv in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, g in enumerate(groups):
            m = cells.get((g, sv))
            if m is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(m["median"])
            lo.append(m["median"] - m["min"])
            hi.append(m["max"] - m["median"])
        label = f"{series_dim} {sv}" if series_dim and series_dim != "config" else sv
        bars = ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=3, label=label or None,
                      color=f"C{j}", edgecolor="black", linewidth=0.4)
        for rect, y in zip(bars, ys):
            ax.annotate(_fmt(y), (rect.get_x() + rect.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    for k, anchor in enumerate(anchors):
        color = ANCHOR_COLORS[k % len(ANCHOR_COLORS)]
        idx = [i for i, g in enumerate(groups)
               if any(matches(m["point"], anchor.get("where"))
                      for (gg, _), m in cells.items() if gg == g)]
        for n, i in enumerate(idx):
            ax.hlines(anchor["value"], i - 0.45, i + 0.45, colors=color, linestyles="dashed",
                      linewidth=1.5, label=f"anchor: {anchor['label']}" if n == 0 else None)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(unit)
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if any(series) or anchors:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.text(1.01, 0.0, "bar: median of repeats\nwhisker: min..max", transform=ax.transAxes,
            fontsize=7, va="bottom", color="#555555")
    return _save(fig, title, s["name"], chart_dir, base, taken)


def ratio_charts(s: dict, chart_dir: Path, base: Path) -> list[Chart]:
    plt = _pyplot()
    charts, taken = [], set()
    groups: dict[tuple, list[dict]] = {}
    for c in s["comparisons"]:
        key = (c["metric"], point_label(c["of"]), point_label(c["to"]), c.get("title", ""))
        groups.setdefault(key, []).append(c)
    for (metric, of, to, title), comps in groups.items():
        comps = [c for c in comps if c["ratio"] is not None]
        if not comps:
            continue
        title = title or f"{metric}: {of} / {to}"
        labels = [_x_label(c["point"], list(c["point"]), metric) or "all" for c in comps]
        fig, ax = plt.subplots(figsize=(max(6.0, 1.5 + 1.1 * len(comps)), 4.0))
        ys = [c["ratio"] for c in comps]
        lo = [c["ratio"] - c["ratio_min"] for c in comps]
        hi = [c["ratio_max"] - c["ratio"] for c in comps]
        better = comps[0].get("better", "none")
        colors = ["#2ca02c" if (better == "higher" and y >= 1) or (better == "lower" and y <= 1)
                  else "#1f77b4" for y in ys]
        bars = ax.bar(range(len(comps)), ys, 0.6, yerr=[lo, hi], capsize=4, color=colors,
                      edgecolor="black", linewidth=0.4, label=f"measured: {of} / {to}")
        for rect, y in zip(bars, ys):
            ax.annotate(f"{y:.2f}x", (rect.get_x() + rect.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.axhline(1.0, color="black", linewidth=0.8)
        colors_of: dict[str, str] = {}
        for i, c in enumerate(comps):
            for a in c["anchors"]:
                first = a["label"] not in colors_of
                color = colors_of.setdefault(a["label"],
                                             ANCHOR_COLORS[len(colors_of) % len(ANCHOR_COLORS)])
                ax.hlines(a["value"], i - 0.4, i + 0.4, colors=color, linestyles="dashed",
                          linewidth=1.8, label=f"anchor: {a['label']}" if first else None)
        ax.set_xticks(range(len(comps)), labels, fontsize=8)
        ax.set_ylabel(f"ratio of {comps[0].get('unit', '')}: {of} / {to}", fontsize=8)
        direction = {"higher": "higher is better", "lower": "lower is better"}.get(better, "")
        ax.set_title(f"{title}" + (f" ({direction})" if direction else ""), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.text(1.01, 0.0, "bar: median / median\nwhisker: paired repeats", fontsize=7,
                transform=ax.transAxes, va="bottom", color="#555555")
        charts.append(_save(fig, f"ratio {title}", s["name"], chart_dir, base, taken))
    return charts


# -- rendering ------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            out.append("|" + "---|" * len(headers))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        elif b[0] == "chart":
            out.append(f"![{b[1].title}]({b[1].file})")
        elif b[0] == "ul":
            out += [f"- {item}" for item in b[1]]
        elif b[0] == "pre":
            out.append("```\n" + b[1] + "\n```")
        out.append("")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
.passed { color: #1a7f37; } .failed, .error { color: #cf222e; } .skipped { color: #9a6700; }
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_html(blocks: list[Block], title: str = "Datapath lab run") -> str:
    body = []
    for b in blocks:
        if b[0] == "h":
            text = _inline(b[2])
            for status in ("passed", "failed", "error", "skipped", "interrupted"):
                text = re.sub(rf": {status}$", f': <span class="{status}">{status}</span>', text)
            body.append(f"<h{b[1]}>{text}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row)
                           + "</tr>" for row in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "chart":
            data = base64.b64encode(b[1].png).decode()
            body.append(f'<figure><img alt="{html.escape(b[1].title)}" '
                        f'src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b[1].title)}</figcaption></figure>")
        elif b[0] == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif b[0] == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_reports(doc: dict, out_dir: Path) -> list[Path]:
    """Write report.md (with charts/*.png) and report.html (charts embedded) into OUT_DIR."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build(doc, out_dir / "charts", out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(blocks))
    page.write_text(render_html(blocks))
    return [md, page]
