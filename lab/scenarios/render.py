"""Pages of blocks (headings, paragraphs, tables, charts, folded sections) rendered twice: as
Markdown with the charts as files beside it, and as one self-contained HTML file with the
charts embedded as SVG data URLs and one shared stylesheet (`lab run`'s report and
`lab compare --html` use the same blocks).
"""

from __future__ import annotations

import html
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from lab.scenarios.charts import VERDICT_COLORS, Chart


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # **bold** and `code` are marked up


@dataclass
class Cell:
    text: str
    cls: str = ""  # a CSS class: verdicts are coloured


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str | Cell]]


@dataclass
class Figure:
    chart: Chart


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Details:
    """A section folded away (HTML <details>), opened by the reader."""

    summary: str
    blocks: list = field(default_factory=list)


Block = Heading | Para | Table | Figure | Bullets | Details


def verdict_cell(verdict: str, note: str = "") -> Cell:
    return Cell(verdict + (f": {note}" if note else ""), "v-" + _class(verdict))


def _class(verdict: str) -> str:
    return re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")


def charts(blocks: list[Block]) -> list[Chart]:
    out = []
    for b in blocks:
        if isinstance(b, Figure):
            out.append(b.chart)
        elif isinstance(b, Details):
            out += charts(b.blocks)
    return out


# -- Markdown -------------------------------------------------------------------------------------

def _md_cell(text) -> str:
    text = text.text if isinstance(text, Cell) else str(text)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(blocks: list[Block], chart_dir: str = "charts") -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "---|" * len(b.headers))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
        elif isinstance(b, Figure):
            out.append(f"![{b.chart.title}]({chart_dir}/{b.chart.name}.svg)")
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items]
        elif isinstance(b, Details):
            out.append(f"<details><summary>{html.escape(b.summary)}</summary>\n")
            out.append(markdown(b.blocks, chart_dir))
            out.append("</details>")
        out.append("")
    return "\n".join(out)


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.82em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
details { margin: 0.6em 0; border-left: 3px solid #ddd; padding-left: 0.8em; }
summary { cursor: pointer; color: #0550ae; }
.passed { color: #1a7f37; } .failed, .error { color: #cf222e; } .skipped { color: #9a6700; }
"""


def _css() -> str:
    verdicts = "\n".join(f"td.v-{_class(v)} {{ border-left: 4px solid {c}; }}"
                         for v, c in VERDICT_COLORS.items())
    return _CSS + verdicts + "\n"


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def svg_data_url(svg: bytes) -> str:
    """An SVG as a data: URL for a single-quoted attribute: percent-encoded only where a URL
    or the attribute needs it (a third smaller than base64)."""
    text = svg.decode()
    return "data:image/svg+xml," + urllib.parse.quote(text, safe=" \"<>=/:;,.-_()!*+?@[]$~{}|^")


def _html(blocks: list[Block]) -> list[str]:
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            text = _inline(b.text)
            for status in ("passed", "failed", "error", "skipped", "interrupted"):
                text = re.sub(rf": {status}$", f': <span class="{status}">{status}</span>', text)
            anchor = re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-")
            body.append(f'<h{b.level} id="{anchor}">{text}</h{b.level}>')
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.headers)
            rows = []
            for row in b.rows:
                cells = []
                for c in row:
                    if isinstance(c, Cell):
                        cls = f' class="{c.cls}"' if c.cls else ""
                        cells.append(f"<td{cls}>{_inline(c.text)}</td>")
                    else:
                        cells.append(f"<td>{_inline(str(c))}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
                        "</tbody></table>")
        elif isinstance(b, Figure):
            c = b.chart
            body.append(f'<figure id="chart-{c.name}"><img alt="{html.escape(c.title)}" '
                        f"src='{svg_data_url(c.svg)}'>"
                        f"<figcaption>{html.escape(c.title)}</figcaption></figure>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Details):
            body.append(f"<details><summary>{_inline(b.summary)}</summary>")
            body += _html(b.blocks)
            body.append("</details>")
    return body


def page(blocks: list[Block], title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_css()}</style></head>"
            f"<body>\n" + "\n".join(_html(blocks)) + "\n</body></html>\n")


def write(blocks: list[Block], title: str, html_path: Path, md_path: Path | None = None,
          chart_dir: Path | None = None) -> list[Path]:
    """The HTML page, and with MD_PATH the Markdown with its charts in CHART_DIR."""
    written = []
    if md_path is not None:
        chart_dir = chart_dir or md_path.parent / "charts"
        chart_dir.mkdir(parents=True, exist_ok=True)
        for c in charts(blocks):
            (chart_dir / f"{c.name}.svg").write_bytes(c.svg)
        rel = chart_dir.relative_to(md_path.parent) if chart_dir.is_relative_to(
            md_path.parent) else chart_dir
        md_path.write_text(markdown(blocks, str(rel)))
        written.append(md_path)
    html_path.write_text(page(blocks, title))
    written.append(html_path)
    return written
