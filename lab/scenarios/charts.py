"""The reports' charts, drawn with matplotlib as small SVG (text kept as text, coordinates
rounded, no metadata), so a report of the default suite embeds them all within 2 MB.

  forest     ratios with their confidence intervals, one row each, 1.0 drawn, the paired
             repeats as dots, published figures as diamonds: a scenario's ratios per metric,
             and the talk's claims
  bars       grouped bars: a metric (or several of one unit) per point, one bar per series
             value, the whisker the repeats' min..max
  cdf        latency CDFs (lab/scenarios/records.py), one line per configuration
  timeline   a metric per interval of each measurement, one line per repeat

Each returns a Chart, or None when there is too little to draw (a chart of one bar says
nothing a table does not).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

ANCHOR_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
# Verdicts' colours, shared by the charts and the HTML tables.
VERDICT_COLORS = {
    "reproduced": "#2ca02c", "same direction, smaller": "#e69500",
    "not reproduced": "#d62728", "inconclusive": "#7f7f7f", "not measurable here": "#b0b0b0",
    "better": "#2ca02c", "worse": "#d62728", "no difference": "#1f77b4",
    "too wide to judge": "#9a9a9a", "not judged": "#b0b0b0",
    "regression": "#d62728", "improvement": "#2ca02c", "unchanged": "#1f77b4",
    "too noisy": "#9a9a9a", "missing": "#d62728", "new": "#b0b0b0",
}


@dataclass
class Chart:
    title: str
    name: str  # file name stem, unique in a report
    svg: bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text in the SVG, in the one font matplotlib measured it with (else every
    # label carries matplotlib's whole list of fallback families).
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 8, "font.family": "sans-serif",
                         "font.sans-serif": ["DejaVu Sans"], "svg.hashsalt": "datapath-lab"})
    return plt


_NUMBER = re.compile(r"-?\d+\.\d+")
_GEOMETRY = re.compile(r'(\s(?:d|x|y|x1|x2|y1|y2|cx|cy|r|width|height|points|viewBox|'
                       r'transform)=")([^"]*)"')


def _minify(svg: str) -> str:
    """matplotlib's SVG without metadata and with coordinates to 0.1 pt (the text stays)."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)

    def geometry(m: re.Match) -> str:
        values = _NUMBER.sub(lambda n: f"{float(n.group()):.1f}".rstrip("0").rstrip("."),
                             m.group(2))
        return f'{m.group(1)}{" ".join(values.split())}"'

    svg = _GEOMETRY.sub(geometry, svg)
    svg = re.sub(r' transform="rotate\(-?0 [^"]*\)"', "", svg)
    # matplotlib names every group (patch_1, line2d_7, ...); keep the ids something uses
    used = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', svg))
    svg = re.sub(r' id="([^"]+)"', lambda m: m.group(0) if m.group(1) in used else "", svg)
    svg = re.sub(r">\s+<", "><", svg)
    return _styles_to_classes(_unwrap_groups(svg)).strip()


def _unwrap_groups(svg: str) -> str:
    """Drop the <g> elements without attributes (they group nothing a reader sees)."""
    out, stack, pos = [], [], 0
    for m in re.finditer(r"<g>|<g\s[^>]*>|</g>", svg):
        out.append(svg[pos:m.start()])
        pos = m.end()
        tag = m.group()
        if tag == "</g>":
            if stack.pop():
                out.append(tag)
        else:
            stack.append(tag != "<g>")
            if tag != "<g>":
                out.append(tag)
    out.append(svg[pos:])
    return "".join(out)


def _styles_to_classes(svg: str) -> str:
    """Inline styles used more than twice become classes of the SVG's own stylesheet."""
    counts: dict[str, int] = {}
    for style in re.findall(r' style="([^"]*)"', svg):
        counts[style] = counts.get(style, 0) + 1
    classes = {style: f"s{i}" for i, style in enumerate(st for st, n in counts.items() if n > 2)}
    if not classes:
        return svg
    svg = re.sub(r' style="([^"]*)"', lambda m: f' class="{classes[m.group(1)]}"'
                 if m.group(1) in classes else m.group(0), svg)
    rules = "".join(f".{name}{{{style}}}" for style, name in classes.items())
    return svg.replace("</style>", rules + "</style>", 1)


def save(fig, title: str, name: str) -> Chart:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    return Chart(title, name, _minify(buf.getvalue()).encode())


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "chart"


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if abs(v) >= 1e3:
        return f"{v:,.0f}"
    return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.3e}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}x" if v < 10 else f"{v:.1f}x")


# -- forest: ratios with intervals ----------------------------------------------------------------

@dataclass
class ForestRow:
    label: str
    estimate: float | None
    low: float | None
    high: float | None
    color: str
    dots: list[float]  # the paired ratios of the repeats
    marks: list[tuple[float, str]]  # (value, label): published figures, anchors
    band: tuple[float, float] | None = None  # a tolerance (parity claims)
    section: str = ""  # rows of one section are drawn under its name


def forest(title: str, name: str, rows: list[ForestRow], xlabel: str) -> Chart | None:
    rows = [r for r in rows if r.estimate is not None]
    if len(rows) < 2:
        return None
    plt = _pyplot()
    from matplotlib import transforms

    lines: list[tuple[str, ForestRow | None]] = []
    section = None
    for r in rows:
        if r.section and r.section != section:
            lines.append((r.section, None))
            section = r.section
        lines.append((r.label, r))
    height = 0.9 + 0.24 * len(lines)
    fig, ax = plt.subplots(figsize=(9.0, height))
    values = [v for r in rows for v in (r.estimate, r.low, r.high, *r.dots,
                                        *(m for m, _ in r.marks)) if v and v > 0]
    lo, hi = min(values + [1.0]), max(values + [1.0])
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.15, hi * 1.15)
    ax.axvspan(0.95, 1 / 0.95, color="#eeeeee", zorder=0)
    ax.axvline(1.0, color="black", linewidth=0.8, zorder=1)
    mark_colors: dict[str, str] = {}
    n = len(lines)
    for i, (label, r) in enumerate(lines):
        y = n - 1 - i
        if r is None:
            ax.text(0.0, y, label, transform=ax.get_yaxis_transform(), ha="right",
                    va="center", fontweight="bold", fontsize=8)
            ax.axhline(y - 0.5, color="#dddddd", linewidth=0.5)
            continue
        if r.band:
            ax.plot(r.band, [y, y], color="#cccccc", linewidth=6, solid_capstyle="butt",
                    zorder=1)
        if r.low is not None and r.high is not None:
            ax.plot([max(r.low, lo / 1.15), r.high], [y, y], color=r.color, linewidth=2.2,
                    zorder=2)
        ax.plot(r.dots, [y] * len(r.dots), linestyle="none", marker="|", color="#444444",
                markersize=5, zorder=3)
        ax.plot([r.estimate], [y], marker="o", color=r.color, markersize=5, zorder=4)
        for value, mlabel in r.marks:
            first = mlabel not in mark_colors
            color = mark_colors.setdefault(mlabel,
                                           ANCHOR_COLORS[len(mark_colors) % len(ANCHOR_COLORS)])
            ax.plot([value], [y], marker="D", color=color, markersize=5, zorder=5,
                    markeredgecolor="black", markeredgewidth=0.4, linestyle="none",
                    label=mlabel if first else None)
        text = fmt_ratio(r.estimate)
        if r.low is not None:
            text += f"  [{fmt_ratio(r.low)}, {fmt_ratio(r.high)}]"
        ax.text(1.01, y, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.set_yticks([n - 1 - i for i, (_, r) in enumerate(lines) if r is not None],
                  [label for label, r in lines if r is not None], fontsize=7)
    ax.set_ylim(-0.7, n - 0.3)
    candidates = ((0.001, 0.01, 0.1, 0.5, 1, 2, 10, 100) if hi / lo > 50 else
                  (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if hi / lo > 6 else
                  (0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 4))
    ticks = [t for t in candidates if lo / 1.15 <= t <= hi * 1.15]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    below = transforms.offset_copy(ax.transAxes, fig, y=-30, units="points")
    ax.text(0.0, 0.0, "dot: the ratio; bar: its 95% confidence interval; ticks: the paired "
            "repeats; grey: 1 +- 5%", transform=below, fontsize=6, color="#555555", va="top")
    if mark_colors:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.0), frameon=False,
                  bbox_transform=transforms.offset_copy(ax.transAxes, fig, y=-38,
                                                        units="points"))
    return save(fig, title, name)


# -- grouped bars ---------------------------------------------------------------------------------

def bars(title: str, name: str, groups: list[str], series: list[str],
         cells: dict[tuple[str, str], dict], unit: str, anchors: list[tuple[float, str, list]],
         series_label: str, log: bool) -> Chart | None:
    """CELLS[(group, series)] is a metric record (median, min, max); ANCHORS are (value,
    label, the groups they apply to)."""
    if len(cells) < 2:
        return None
    plt = _pyplot()
    n_series = max(1, len(series))
    width = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(min(11.0, max(6.0, 1.2 + len(groups) *
                                                  (0.45 * n_series + 0.5))), 3.6))
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
        label = f"{series_label} {sv}" if series_label and series_label != "config" else sv
        drawn = ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=2, label=label or None,
                       color=f"C{j}", edgecolor="black", linewidth=0.4,
                       error_kw={"elinewidth": 0.8})
        if len(groups) * n_series <= 24:
            for rect, y in zip(drawn, ys):
                ax.annotate(fmt(y), (rect.get_x() + rect.get_width() / 2, y), ha="center",
                            va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    for k, (value, label, idx) in enumerate(anchors):
        color = ANCHOR_COLORS[k % len(ANCHOR_COLORS)]
        for n, i in enumerate(idx):
            ax.hlines(value, i - 0.45, i + 0.45, colors=color, linestyles="dashed",
                      linewidth=1.4, label=f"anchor: {label}" if n == 0 else None)
    ax.set_xticks(range(len(groups)), groups, fontsize=7)
    ax.set_ylabel(unit)
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if any(series) or anchors:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.text(1.01, 0.0, "bar: median of repeats\nwhisker: min..max", transform=ax.transAxes,
            fontsize=6, va="bottom", color="#555555")
    return save(fig, title, name)


# -- latency CDFs ---------------------------------------------------------------------------------

def cdf(title: str, name: str, lines: list[tuple[str, list[float], list[float], int]],
        unit: str, log: bool = True) -> Chart | None:
    """LINES: (label, values, fractions, transactions); the CDF of each, on one chart."""
    lines = [ln for ln in lines if len(ln[1]) >= 2]
    if len(lines) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for j, (label, xs, ys, count) in enumerate(lines):
        ax.step(xs, ys, where="post", color=f"C{j}", linewidth=1.3,
                label=f"{label} ({count:,} transactions)")
    for q in (0.5, 0.99):
        ax.axhline(q, color="#999999", linewidth=0.6, linestyle="dotted")
        ax.text(1.0, q, f" p{q * 100:g}", transform=ax.get_yaxis_transform(), fontsize=6,
                va="center", color="#555555")
    if log:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel(f"latency of a transaction ({unit})")
    ax.set_ylabel("fraction of transactions at or below")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, title, name)


# -- per-interval series --------------------------------------------------------------------------

def timeline(title: str, name: str, groups: list[tuple[str, list[tuple[list, list]]]],
             unit: str, what: str) -> Chart | None:
    """GROUPS: (label, [(times, values) per repeat]); a colour per group, a line per repeat."""
    if sum(len(runs) for _, runs in groups) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for j, (label, runs) in enumerate(groups):
        for k, (times, values) in enumerate(runs):
            ax.plot([0.0, *times], [values[0] if values else 0, *values], color=f"C{j}",
                    linewidth=1.0, alpha=0.85, drawstyle="steps-pre",
                    label=f"{label} ({len(runs)} repeats)" if k == 0 else None)
    ax.set_xlabel("seconds into the measurement")
    ax.set_ylabel(f"{what} ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, title, name)

