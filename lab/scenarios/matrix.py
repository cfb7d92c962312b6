"""The kernel matrix section of a report: kernels side by side (lab run --kernels).

Drawn from a results document whose scenarios carry a `kernel` record (lab/scenarios/
kernels.py). Kept apart from report.py's scenario sections: it only adds blocks, in the same
block vocabulary, and report.build() places them after the run's summary.

What is set side by side per kernel: what it is (release, suite, native or emulated), what
it lacks (doctor's reasons), each scenario's status, its ratios (each measured side by side
within one kernel, so comparable across kernels as ratios) and its medians (absolute values:
comparable across kernels only between native runs, never with emulated ones).
"""

from __future__ import annotations

from typing import Any

from lab.scenarios import stats
from lab.scenarios.render import Block, Heading, Para, Table
from lab.scenarios.results import point_label

EMULATION_NOTE = (
    "Every kernel ran the same scenarios, natively (host) or in one `lab vm` boot. Kernels "
    "marked TCG ran under software emulation: their figures are compared only within their "
    "own kernel. The ratios below are each measured side by side in one kernel and one run, "
    "so a row reads across kernels; the medians are absolute, and an emulated kernel's are "
    "never comparable with the native one's or another kernel's.")


def has_matrix(doc: dict) -> bool:
    return any(s.get("kernel") for s in doc["scenarios"])


def _kernels(doc: dict) -> list[dict]:
    seen: dict[str, dict] = {}
    for s in doc["scenarios"]:
        k = s.get("kernel")
        if k and k["label"] not in seen:
            seen[k["label"]] = k
    return list(seen.values())


def _runs(k: dict) -> str:
    if k["execution"] == "native":
        return "native"
    return f"VM, {k.get('accel') or '?'}" + (" (emulated)" if k.get("emulated") else "")


def _lack(k: dict, name: str) -> str:
    for c in k["lacks"]:
        if c["name"] == name:
            return f"no: {c['detail']}"
    return "yes"


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return f"{text} {unit}".strip()


def blocks(doc: dict) -> list[Block]:
    """The matrix's blocks (empty when the run is not a kernel matrix)."""
    if not has_matrix(doc):
        return []
    kernels = _kernels(doc)
    labels = [k["label"] for k in kernels]
    out: list[Block] = [Heading(2, "Kernel matrix"), Para(EMULATION_NOTE)]
    rows = []
    for k in kernels:
        other = [f"{c['name']} ({c['detail']})" for c in k["lacks"]
                 if c["name"] not in ("netkit", "netem")]
        rows.append([k["label"], k["release"], k.get("suite") or "-", _runs(k),
                     k.get("big_tcp_ipv6_form") or "-", _lack(k, "netkit"), _lack(k, "netem"),
                     "; ".join(other) or "-", k.get("error") or ""])
    out.append(Table(["kernel", "release", "suite", "runs", "IPv6 BIG TCP form", "netkit",
                      "netem", "also lacks", "error"], rows))
    by_scenario: dict[str, dict[str, dict]] = {}
    for s in doc["scenarios"]:
        if s.get("kernel"):
            by_scenario.setdefault(s.get("scenario") or s["name"].split("@")[0], {})[
                s["kernel"]["label"]] = s
    for name, per_kernel in by_scenario.items():
        out += _scenario(name, per_kernel, labels)
    return out


def _scenario(name: str, per_kernel: dict[str, dict], labels: list[str]) -> list[Block]:
    out: list[Block] = [Heading(3, f"{name} across kernels")]
    status = []
    for label in labels:
        s = per_kernel.get(label)
        if s is None:
            status.append("-")
        elif s["status"] in ("passed",):
            status.append(f"passed ({s['repeats']} repeat(s))")
        else:
            status.append(f"{s['status']}: {s['reason']}" if s["reason"] else s["status"])
    out.append(Table(["", *labels], [["status", *status]]))
    ratios: dict[tuple, dict[str, str]] = {}
    for label, s in per_kernel.items():
        for c in s.get("comparisons", []):
            if c["ratio"] is None:
                continue
            title = c.get("title") or f"{c['metric']}: {point_label(c['of'])} / " \
                                      f"{point_label(c['to'])}"
            key = (title, point_label(c["point"]))
            interval = (f" [{stats.fmt_ratio(c['ci_low'])}, {stats.fmt_ratio(c['ci_high'])}]"
                        if c.get("ci_low") is not None else "")
            ratios.setdefault(key, {})[label] = (
                f"{stats.fmt_ratio(c['ratio'])}{interval} (n={c['n']}): {c['verdict']}")
    if ratios:
        out.append(Para("Ratios (geometric mean of the paired repeats, 95% confidence "
                        "interval, verdict), each within its kernel:"))
        out.append(Table(["ratio", "at", *labels],
                         [[title, at or "-", *(cells.get(label, "-") for label in labels)]
                          for (title, at), cells in ratios.items()]))
    medians: dict[tuple, dict[str, str]] = {}
    for label, s in per_kernel.items():
        for m in s.get("metrics", []):
            key = (f"{m['step']}.{m['metric']}", point_label(m["point"]))
            medians.setdefault(key, {})[label] = f"{_fmt(m['median'], m['unit'])} (n={m['n']})"
    if medians:
        out.append(Para("Medians (absolute: across kernels only between native runs):"))
        out.append(Table(["metric", "at", *labels],
                         [[metric, at or "-", *(cells.get(label, "-") for label in labels)]
                          for (metric, at), cells in medians.items()]))
    forms = {label: _big_forms(s) for label, s in per_kernel.items()}
    if any(forms.values()):
        out.append(Table(["packets above 64 KiB, marked as", *labels],
                         [["IPv6", *(", ".join(sorted(forms.get(label, {}).get(6, ()))) or "-"
                                     for label in labels)],
                          ["IPv4", *(", ".join(sorted(forms.get(label, {}).get(4, ()))) or "-"
                                     for label in labels)]]))
    return out


def _big_forms(s: dict) -> dict[int, set[str]]:
    """How the big packet counter saw packets above 64 KiB marked, per IP version, from the
    facts of the bigtcp (ipvN_above_64k) and translator (above_64k) step kinds."""
    found: dict[int, set[str]] = {}
    for f in s.get("facts", []):
        v = f["value"]
        if f["key"] in ("ipv4_above_64k", "ipv6_above_64k") and isinstance(v, dict):
            found.setdefault(int(f["key"][3]), set()).update(v.get("marked_as", []))
        elif f["key"] == "above_64k" and isinstance(v, dict):
            for where, seen in v.items():
                family = 6 if where.endswith("IPv6") else 4
                found.setdefault(family, set()).update(seen.get("marked_as", []))
    return found
