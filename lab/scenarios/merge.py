"""`lab merge`: the shards of one sharded run (lab/scenarios/shard.py) as one results document.

Shards join only when they are parts of one run: the same N and plan, the same suite, the
same commit and kernel (figures from two kernels or two versions of the datapath are not one
run's), every point exactly once and every point there. Each refusal names the files and
what differs; `allow_mixed` accepts other commits, kernels, suites and plans (each scenario
then carries the environment it ran in), `allow_missing` a partial merge. A point measured
twice is never merged: which of the two would the series be?

The merged document is what `lab run` would have written for the whole suite: scenarios in
suite order, a scenario split over shards joined again (its configs, series, checks and
claims, in the order one run records them), and `shards` saying which shard ran what.
"""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path

from lab.errors import UsageError
from lab.scenarios import claims as claims_mod
from lab.scenarios import results as results_mod
from lab.scenarios.model import CONFIG

# A scenario split over shards has the status of its worst part; `passed` beats `skipped`
# (one config skipped for a missing feature does not skip the scenario).
_STATUS_ORDER = ("interrupted", "error", "failed", "running", "pending", "passed", "skipped")


class Shards:
    """Shard documents read from files, with the checks that they are one run's."""

    def __init__(self, docs: list[tuple[Path, dict]]):
        self.docs = docs

    @classmethod
    def load(cls, paths: list[Path]) -> Shards:
        docs = []
        for p in paths:
            path = p / "results.json" if p.is_dir() else p
            doc = results_mod.load(path)
            if "shard" not in doc:
                raise UsageError(f"{path}: not a shard's results (it has no `shard` record: "
                                 "run with `lab run --shard K/N`)")
            docs.append((path, doc))
        if not docs:
            raise UsageError("nothing to merge: give the shards' results.json")
        docs.sort(key=lambda pd: pd[1]["shard"]["index"])
        return cls(docs)

    def problems(self, allow_mixed: bool = False, allow_missing: bool = False) -> list[str]:
        """What keeps these shards from being one run, one sentence each."""
        out = []
        if not allow_mixed:
            out += self._differing("N", lambda d: d["shard"]["count"])
            out += self._differing("suite (scenario files, --quick, --repeat)",
                                   lambda d: d["shard"]["suite"]["digest"])
            if not out:
                out += self._differing(
                    "plan (they were weighed by different durations: give every shard the "
                    "same --durations FILE, or --durations static)",
                    lambda d: f"{d['shard']['plan']} (durations: {d['shard'].get('durations')})")
            out += self._differing("commit", _commit)
            out += self._differing("kernel", _kernel)
        seen: dict[str, Path] = {}
        for path, doc in self.docs:
            label = _label(doc)
            if label in seen:
                out.append(f"shard {label} is given twice: {seen[label]} and {path}")
            seen[label] = path
        ran: dict[tuple[str, str], Path] = {}
        for path, doc in self.docs:
            for point in sorted(self.covered(doc)):
                if point in ran and ran[point] != path:
                    out.append(f"{point[0]} config {point[1]} is in two shards: {ran[point]} "
                               f"and {path}")
                ran.setdefault(point, path)
        if not allow_missing:
            counts = {d["shard"]["count"] for _, d in self.docs}
            for n in sorted(counts):
                given = {d["shard"]["index"] for _, d in self.docs if d["shard"]["count"] == n}
                lacking = [f"{k}/{n}" for k in range(1, n + 1) if k not in given]
                if lacking:
                    out.append(f"shard(s) {', '.join(lacking)} missing")
            missing = [p for p in self.expected() if p not in ran]
            if missing:
                shown = ", ".join(f"{s}/{c}" for s, c in missing[:8])
                more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
                out.append(f"{len(missing)} point(s) of the suite are in no shard's results "
                           f"(a shard missing or interrupted): {shown}{more}")
        return out

    def _differing(self, what: str, key) -> list[str]:
        values: dict[str, list[str]] = {}
        for path, doc in self.docs:
            values.setdefault(str(key(doc)), []).append(f"{path} ({_label(doc)})")
        if len(values) < 2:
            return []
        detail = "; ".join(f"{v}: {', '.join(files)}" for v, files in values.items())
        return [f"the shards are of different {what}: {detail}"]

    @staticmethod
    def covered(doc: dict) -> set[tuple[str, str]]:
        """The points a shard has results for: its points of the scenarios it reached."""
        reached = {s["name"] for s in doc["scenarios"]}
        return {(s, c) for s, c in doc["shard"]["points"] if s in reached}

    def expected(self) -> list[tuple[str, str]]:
        """Every point of the suite(s), in suite order."""
        out: dict[tuple[str, str], None] = {}
        for _, doc in self.docs:
            for s, c in doc["shard"]["suite"]["points"]:
                out[(s, c)] = None
        return list(out)


def _label(doc: dict) -> str:
    return f"{doc['shard']['index']}/{doc['shard']['count']}"


def _commit(doc: dict) -> str:
    lab = doc["environment"].get("lab", {})
    return f"{lab.get('commit')}{' (modified)' if lab.get('dirty') else ''}"


def _kernel(doc: dict) -> str:
    k = doc["environment"]["kernel"]
    return f"{k['release']} {k['version']}"


def _when(text: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def merge(shards: Shards, out_dir: Path, command: list[str], *, allow_mixed: bool = False,
          allow_missing: bool = False) -> dict:
    """The merged results document; UsageError listing every problem unless allowed. Capture
    files are copied beside it (OUT/shards/K-of-N/...)."""
    problems = shards.problems(allow_mixed, allow_missing)
    for path, _ in shards.docs:
        if path.parent.resolve() == Path(out_dir).resolve():
            problems.append(f"--out {out_dir} holds the shard {path}: merging there would "
                            "overwrite it")
    if problems:
        hint = []
        if any("different" in p for p in problems):
            hint.append("--allow-mixed")
        if any("missing" in p or "in no shard" in p for p in problems):
            hint.append("--allow-missing")
        raise UsageError("cannot merge these shards:\n  " + "\n  ".join(problems) + (
            f"\n(to merge anyway: {' '.join(hint)})" if hint else ""))
    docs = shards.docs
    first = docs[0][1]
    mixed = len({(_commit(d), _kernel(d)) for _, d in docs}) > 1
    order = {p: i for i, p in enumerate(shards.expected())}
    parts: dict[str, list[tuple[dict, dict]]] = {}
    for path, doc in docs:
        for s in doc["scenarios"]:
            s = _relocate(s, path, doc, out_dir)
            if mixed:
                s.setdefault("environment", doc["environment"])
            parts.setdefault(s["name"], []).append((doc, s))
    first_point = {}
    for (s, c), i in order.items():
        first_point.setdefault(s, i)
    names = sorted(parts, key=lambda n: (first_point.get(n, len(order)), n))
    suite_configs: dict[str, list[str]] = {}
    for s, c in order:
        suite_configs.setdefault(s, []).append(c)
    scenarios = [_join(parts[n], suite_configs.get(n, [])) for n in names]

    statuses = [d["status"] for _, d in docs]
    if "interrupted" in statuses:
        status = "interrupted"
    elif any(s["status"] in ("failed", "error") for s in scenarios) or "error" in statuses:
        status = "failed"
    else:
        status = "passed"
    starts = [t for t in (_when(d["started"]) for _, d in docs) if t]
    ends = [_when(d["finished"]) for _, d in docs]
    return {
        "schema_version": results_mod.SCHEMA_VERSION, "tool": "datapath-lab",
        "command": list(command), "status": status, "quick": first["quick"],
        "started": min(starts).isoformat() if starts else first["started"],
        "finished": max(ends).isoformat() if ends and all(ends) else None,
        # The shards ran side by side: the run took as long as its longest shard.
        "duration_s": max(d["duration_s"] for _, d in docs),
        "environment": first["environment"], "scenarios": scenarios,
        "shards": [{"index": d["shard"]["index"], "count": d["shard"]["count"],
                    "file": str(path), "status": d["status"], "started": d["started"],
                    "finished": d["finished"], "duration_s": d["duration_s"],
                    "points": d["shard"]["points"], "environment": d["environment"]}
                   for path, d in docs],
    }


def _relocate(s: dict, path: Path, doc: dict, out_dir: Path) -> dict:
    """The scenario with its capture files copied into OUT/shards/K-of-N/ and named there."""
    if not s.get("captures"):
        return s
    sub = Path("shards") / f"{doc['shard']['index']}-of-{doc['shard']['count']}"
    captures = []
    for cap in s["captures"]:
        src = path.parent / cap["file"]
        dst = out_dir / sub / cap["file"]
        if src.is_file():
            if src.resolve() != dst.resolve():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            captures.append({**cap, "file": str(sub / cap["file"])})
        else:
            print(f"lab merge: {src}: capture file missing (kept as named)", file=sys.stderr)
            captures.append(cap)
    return {**s, "captures": captures}


def _join(parts: list[tuple[dict, dict]], suite_configs: list[str]) -> dict:
    """One scenario document from its parts (one per shard that ran some of its configs)."""
    label = {id(s): f"{d['shard']['index']}/{d['shard']['count']}" for d, s in parts}
    docs = [s for _, s in parts]
    if len(docs) == 1:
        s = dict(docs[0])
        s["configs"] = [{**c, "shard": label[id(docs[0])]} for c in s.get("configs", [])]
        return s
    base = docs[0]
    dims = dict(base.get("dimensions", {}))
    if CONFIG in dims:
        present = {c for s in docs for c in s.get("dimensions", {}).get(CONFIG, [])}
        dims[CONFIG] = [c for c in suite_configs if c in present] + sorted(
            present - set(suite_configs))
    key = _point_key(dims)

    def joined(field: str, sort=True) -> list:
        items = [x for s in docs for x in s.get(field, [])]
        return sorted(items, key=lambda x: (x.get("repeat", 0), key(x.get("point", {})))) \
            if sort else items

    rank = {s: i for i, s in enumerate(_STATUS_ORDER)}
    status = min((s["status"] for s in docs), key=lambda st: rank.get(st, 0))
    reasons = list(dict.fromkeys(s["reason"] for s in docs if s["status"] == status and
                                 s["reason"]))
    starts = [t for t in (_when(s.get("started")) for s in docs) if t]
    ends = [_when(s.get("finished")) for s in docs]
    configs = [{**c, "shard": label[id(s)]} for s in docs for c in s.get("configs", [])]
    corder = {c: i for i, c in enumerate(dims.get(CONFIG, []))}
    configs.sort(key=lambda c: corder.get(c["name"], len(corder)))
    merged = {
        **base, "status": status, "reason": "; ".join(reasons),
        "started": min(starts).isoformat() if starts else base.get("started"),
        "finished": max(ends).isoformat() if ends and all(ends) else None,
        "duration_s": round(sum(s.get("duration_s", 0.0) for s in docs), 3),
        "dimensions": dims, "configs": configs,
        "attach_modes": sorted({m for s in docs for m in s.get("attach_modes", [])}),
        # One run records a series when first measured: repeat 0, point by point, the
        # configs one after the other at each point.
        "metrics": sorted(joined("metrics", sort=False), key=lambda m: key(m["point"])),
        "assertions": _assertions(docs, key),
        "comparisons": sorted(joined("comparisons", sort=False),
                              key=lambda c: (c.get("spec") if c.get("spec") is not None
                                             else -1, key(c["point"]))),
        "checks": joined("checks"), "facts": joined("facts"), "captures": joined("captures"),
        "distributions": joined("distributions"), "timelines": joined("timelines"),
    }
    merged["claims"] = _claims(docs, key)
    for row in merged["claims"]:
        row["scenario"] = merged["name"]
    if any("environment" in s for s in docs):
        merged["environment"] = next(s["environment"] for s in docs if "environment" in s)
    return merged


def _point_key(dims: dict):
    """Sort key of a point: the other dimensions in file order, then the config."""
    index = {k: {str(v): i for i, v in enumerate(vals)} for k, vals in dims.items()}
    others = [k for k in dims if k != CONFIG]

    def key(point: dict) -> tuple:
        def at(k):
            return index[k].get(str(point[k]), len(index[k])) if k in point else -1
        return (*(at(k) for k in others), at(CONFIG) if CONFIG in dims else -1)
    return key


def _assertions(docs: list[dict], key) -> list[dict]:
    """Each shard evaluated the assertions its configs could match (Scenario.restrict):
    grouped by assertion as one run lists them, each group's series in point order."""
    rows = [a for s in docs for a in s.get("assertions", [])]
    group: dict[tuple, int] = {}
    for a in rows:
        group.setdefault((a["metric"], a["stat"], a["expected"]), len(group))
    return sorted(rows, key=lambda a: (group[(a["metric"], a["stat"], a["expected"])],
                                       key(a["point"])))


def _claims(docs: list[dict], key) -> list[dict]:
    """Claim rows by claim: a shard without the configs a claim's ratio needs says `not
    measurable` where the shard that had them measured it. As in one run, a claim some shard
    measured keeps its measured rows only; one no shard measured keeps one row per point."""
    by_claim: dict[str, list[dict]] = {}
    for s in docs:
        for row in s.get("claims", []):
            by_claim.setdefault(row["id"], []).append(row)
    out = []
    for rows in by_claim.values():
        measured = [r for r in rows if r.get("ratio") is not None or
                    r.get("verdict") != claims_mod.NOT_MEASURABLE]
        keep = measured or rows
        seen = set()
        for r in sorted(keep, key=lambda r: key(r.get("point", {}))):
            ident = repr(sorted((k, str(v)) for k, v in r.get("point", {}).items()))
            if ident not in seen:
                seen.add(ident)
                out.append(r)
    return out
