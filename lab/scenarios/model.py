"""Scenario files: YAML under scenarios/ -> a checked Scenario (schema in schema.yaml).

Everything that can be checked without running is checked at load, each error reported as
`file:line:col: what is wrong`: the file's schema; the topology files (with each config's
patch applied); each step's kind and, for every point of the matrix (also the --quick one),
its parameters against the step kind's schema after ${...} substitution; the metrics, matrix
values and nodes that assertions, comparisons, charts and captures name.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lab import topology as topology_mod
from lab import yamlfile
from lab.errors import InputError, UsageError
from lab.lab import LabHooks
from lab.scenarios.registry import Catalogue, Metric, StepKind, builtin
from lab.topology import Topology

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
CONFIG = "config"  # the matrix dimension of `configs`
MAX_POINTS = 1000  # of a scenario's matrix: the default suite's largest has 20
_TEMPLATE = re.compile(r"\$\{([a-z][a-z0-9_-]*)\}")
_schema: dict | None = None


def schema() -> dict:
    global _schema
    if _schema is None:
        _schema = yamlfile.load_schema(SCHEMA_PATH)
    return _schema


@dataclass
class Config:
    """One datapath configuration: a topology (file plus patch), brought up as its own lab."""

    name: str
    topology_file: Path
    patch: dict
    requires: list[str]
    description: str
    topology: Topology  # as loaded at check time (the runner loads it again, renamed)
    datapaths: Sequence[LabHooks] = ()  # the features its sections may configure

    def load_topology(self, lab_name: str) -> Topology:
        return _load_topology(self.topology_file, self.patch, self.datapaths, lab_name)


@dataclass
class Step:
    kind: StepKind
    name: str
    params: dict  # as written, ${...} not yet substituted
    when: dict[str, Any]
    capture: list[dict]
    path: tuple  # in the document, for errors


@dataclass
class Scenario:
    name: str
    description: str
    file: str
    suite: str
    requires: list[str]
    configs: list[Config]
    has_configs: bool  # False: one implicit config, no `config` dimension in points
    params: dict[str, Any]
    matrix: dict[str, list]
    repeats: int
    steps: list[Step]
    assertions: list[dict]
    comparisons: list[dict]
    charts: list[dict]
    quick_spec: dict
    doc: yamlfile.Document = field(repr=False)
    catalogue: Catalogue = field(repr=False, default_factory=builtin)
    quick: bool = False

    # -- views ------------------------------------------------------------------------------

    @property
    def dimensions(self) -> dict[str, list]:
        dims = {CONFIG: [c.name for c in self.configs]} if self.has_configs else {}
        dims.update(self.matrix)
        return dims

    def points(self) -> list[dict[str, Any]]:
        """Matrix points without the config dimension, in the order the file gives values."""
        keys = list(self.matrix)
        return [dict(zip(keys, values))
                for values in itertools.product(*(self.matrix[k] for k in keys))]

    def full_point(self, config: Config, point: dict) -> dict[str, Any]:
        return {CONFIG: config.name, **point} if self.has_configs else dict(point)

    def steps_at(self, point: dict) -> list[Step]:
        return [s for s in self.steps if matches(point, s.when)]

    def metric(self, ref: str) -> tuple[Step, Metric]:
        step_name, metric = ref.split(".", 1)
        step = next(s for s in self.steps if s.name == step_name)
        return step, step.kind.metrics[metric]

    def all_requires(self) -> list[str]:
        names = list(self.requires)
        for s in self.steps:
            names += [r for r in s.kind.requires if r not in names]
        return names

    def resolve(self, step: Step, point: dict) -> dict:
        """STEP's parameters at POINT: ${...} substituted, the kind's defaults filled in."""
        values = {**self.params, **point}
        return step.kind.with_defaults(_substitute(step.params, values))

    def variant(self, quick: bool = False, repeats: int | None = None) -> Scenario:
        """This scenario as --quick and --repeat N make it."""
        s = replace(self, quick=quick)
        if quick:
            q = self.quick_spec
            s.repeats = q.get("repeats", 1)
            s.params = {**self.params, **q.get("params", {})}
            s.matrix = {**self.matrix, **q.get("matrix", {})}
            if "configs" in q:
                s.configs = [c for c in self.configs if c.name in q["configs"]]
        if repeats is not None:
            s.repeats = repeats
        return s

    def restrict(self, names: Sequence[str]) -> Scenario:
        """This scenario with only the configs NAMES (a shard's part of it, lab/scenarios/
        shard.py). An assertion that can match only the other configs' series is left to the
        shard that runs them, or it would fail here as 'nothing was measured'; one that can
        match no config at all stays with the scenario's first config, so it still fails
        once."""
        keep = [c for c in self.configs if c.name in names]
        s = replace(self, configs=keep)
        s.assertions = [a for a in self.assertions if self._can_match(a, keep) or (
            not self._can_match(a, self.configs) and self.configs[0] in keep)]
        return s

    def _can_match(self, assertion: dict, configs: list[Config]) -> bool:
        step = assertion["metric"].split(".", 1)[0]
        for config in configs:
            for point in self.points():
                full = self.full_point(config, point)
                if matches(full, assertion.get("where")) and \
                        any(s.name == step for s in self.steps_at(full)):
                    return True
        return False


def matches(point: dict, where: dict | None) -> bool:
    return all(k in point and _same(point[k], v) for k, v in (where or {}).items())


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


# -- ${...} templates ---------------------------------------------------------------------------

class _Unknown(Exception):
    def __init__(self, name: str):
        self.name = name


def _substitute(value: Any, values: dict) -> Any:
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:  # "${x}" alone keeps x's type (an int stays an int)
            if whole.group(1) not in values:
                raise _Unknown(whole.group(1))
            return values[whole.group(1)]

        def one(m: re.Match) -> str:
            if m.group(1) not in values:
                raise _Unknown(m.group(1))
            return str(values[m.group(1)])

        return _TEMPLATE.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    return value


def _template_paths(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    if isinstance(value, str):
        return [(path, m.group(1)) for m in _TEMPLATE.finditer(value)]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _template_paths(v, path + (i,))]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _template_paths(v, path + (k,))]
    return []


# -- topology with a patch ----------------------------------------------------------------------

def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(patch)


def _load_topology(path: Path, patch: dict, datapaths: Sequence[LabHooks],
                   name: str | None = None) -> Topology:
    doc = yamlfile.load(path)
    if patch:
        doc.data = _merge(doc.data, patch)
    return topology_mod.from_document(doc, name, "lab", datapaths)


# -- loading ------------------------------------------------------------------------------------

class _Loader:
    def __init__(self, doc: yamlfile.Document, catalogue: Catalogue):
        self.doc, self.catalogue = doc, catalogue
        self.data = doc.data
        self.base = Path(doc.file).resolve().parent

    def err(self, path: tuple, message: str, key: bool = False) -> InputError:
        return self.doc.error(path, message, key)

    def topology_path(self, text: str, path: tuple) -> Path:
        p = (self.base / text).resolve()
        if not p.is_file():
            raise self.err(path, f"topology file {text} not found (looked for {p})")
        return p

    def configs(self, default_topology: Path) -> tuple[list[Config], bool]:
        specs = self.data.get("configs")
        if not specs:
            topo = _load_topology(default_topology, {}, self.catalogue.datapaths)
            return [Config("default", default_topology, {}, [], "", topo,
                           self.catalogue.datapaths)], False
        out = []
        for name, spec in specs.items():
            spec = spec or {}
            path = ("configs", name)
            file = (self.topology_path(spec["topology"], path + ("topology",))
                    if "topology" in spec else default_topology)
            try:
                topo = _load_topology(file, spec.get("patch", {}), self.catalogue.datapaths)
            except InputError as e:
                if not spec.get("patch"):
                    raise
                raise self.err(path + ("patch",), f"with this patch, {e}") from None
            out.append(Config(name, file, spec.get("patch", {}), spec.get("requires", []),
                              spec.get("description", ""), topo, self.catalogue.datapaths))
        return out, True

    def steps(self) -> list[Step]:
        registry = self.catalogue.kinds
        steps, names = [], {}
        for i, spec in enumerate(self.data["steps"]):
            path = ("steps", i)
            kind = registry.get(spec["kind"])
            if kind is None:
                hint = difflib.get_close_matches(spec["kind"], list(registry), n=1)
                raise self.err(path + ("kind",), f"unknown step kind '{spec['kind']}'"
                               + (f" (did you mean '{hint[0]}'?)" if hint else
                                  f" (known: {', '.join(sorted(registry))})"))
            name = spec.get("name", spec["kind"])
            if not re.fullmatch(schema()["$defs"]["name"]["pattern"], name):
                raise self.err(path + ("kind",), f"step kind '{name}' is not a valid step "
                                                 "name: give the step a `name`")
            if name in names:
                raise self.err(path + ("name",) if "name" in spec else path,
                               f"two steps named '{name}' (the other is steps[{names[name]}]): "
                               "give one a distinct `name`")
            names[name] = i
            steps.append(Step(kind, name, spec.get("with", {}), spec.get("when", {}),
                              spec.get("capture", []), path))
        return steps


def load(path: str | Path, catalogue: Catalogue | None = None,
         topology: str | Path | None = None) -> Scenario:
    """Load and check a scenario file against CATALOGUE (default: the built-in step kinds, no
    datapath feature); raises InputError (file:line:col) on bad input. TOPOLOGY: run it on
    that topology file instead of its own `topology:` (the same nodes, elsewhere: e.g. split
    across hosts); configs naming their own topology keep it."""
    return from_document(yamlfile.load(path), catalogue, topology)


def parse(text: str, file: str = "<string>", catalogue: Catalogue | None = None) -> Scenario:
    """Like load(), from a string; relative topology paths are taken from the current dir."""
    return from_document(yamlfile.parse(text, file), catalogue)


def from_document(doc: yamlfile.Document, catalogue: Catalogue | None = None,
                  topology: str | Path | None = None) -> Scenario:
    catalogue = catalogue or builtin()
    yamlfile.validate(doc, schema())
    data = doc.data
    ld = _Loader(doc, catalogue)
    if topology is not None:
        topology_file = Path(topology).resolve()
        if not topology_file.is_file():
            raise UsageError(f"--topology {topology}: no such file")
    else:
        topology_file = ld.topology_path(data["topology"], ("topology",))
    configs, has_configs = ld.configs(topology_file)
    default_name = re.sub(r"[^a-z0-9_-]", "-", Path(doc.file).stem.lower())
    scenario = Scenario(
        name=data.get("name", default_name), description=data.get("description", ""),
        file=doc.file, suite=data.get("suite", "default"), requires=data.get("requires", []),
        configs=configs, has_configs=has_configs, params=data.get("params", {}),
        matrix=data.get("matrix", {}), repeats=data.get("repeats", 3), steps=ld.steps(),
        assertions=data.get("assert", []), comparisons=data.get("compare", []),
        charts=data.get("charts", []), quick_spec=data.get("quick", {}), doc=doc,
        catalogue=catalogue)
    _check(scenario, ld)
    return scenario


# -- checks across the file ---------------------------------------------------------------------

def _check(sc: Scenario, ld: _Loader) -> None:
    _check_quick_names(sc, ld)
    for label, variant in (("", sc), (" (under --quick)", sc.variant(quick=True))):
        _check_size(variant, ld, label)
        dims = variant.dimensions
        for step in sc.steps:
            _check_point_keys(ld, step.path + ("when",), step.when, dims)
            for j, cap in enumerate(step.capture):
                _check_node(ld, sc, step.path + ("capture", j), cap["node"], cap["ifname"])
        for config in variant.configs:
            for point in variant.points():
                full = variant.full_point(config, point)
                for step in variant.steps_at(full):
                    _check_params(variant, ld, step, full, label)
    dims = sc.dimensions
    claim_ids: dict[str, tuple] = {}
    for i, a in enumerate(sc.assertions):
        _check_metric(sc, ld, ("assert", i, "metric"), a["metric"])
        _check_point_keys(ld, ("assert", i, "where"), a.get("where", {}), dims)
        if "equals" not in a and "min" not in a and "max" not in a:
            raise ld.err(("assert", i), "an assertion needs min, max or equals")
    for i, c in enumerate(sc.comparisons):
        _check_metric(sc, ld, ("compare", i, "metric"), c["metric"])
        for key in ("of", "to", "where"):
            _check_point_keys(ld, ("compare", i, key), c.get(key, {}), dims)
        if set(c["of"]) != set(c["to"]):
            raise ld.err(("compare", i, "to"), "`of` and `to` must set the same dimensions "
                                               f"({', '.join(sorted(c['of']))})")
        for j, anchor in enumerate(c.get("anchors", [])):
            _check_point_keys(ld, ("compare", i, "anchors", j, "where"),
                              anchor.get("where", {}), dims)
        for j, claim in enumerate(c.get("claims", [])):
            _check_claim(sc, ld, ("compare", i, "claims", j), c, claim, claim_ids)
    for i, ch in enumerate(sc.charts):
        if "cdf" in ch or "timeline" in ch:
            _check_record_chart(sc, ld, ("charts", i), ch)
            continue
        refs = ch.get("metrics") or [ch["metric"]]
        key = "metrics" if "metrics" in ch else "metric"
        units = set()
        for j, ref in enumerate(refs):
            where = ("charts", i, key, j) if key == "metrics" else ("charts", i, key)
            _check_metric(sc, ld, where, ref)
            units.add(sc.metric(ref)[1].unit)
        if len(units) > 1:
            raise ld.err(("charts", i, key), f"a chart's metrics must share a unit, these have "
                                             f"{', '.join(sorted(units))}")
        xs = ch.get("x", [])
        for dim in [xs] if isinstance(xs, str) else xs:
            if dim not in dims and dim != "metric":
                raise ld.err(("charts", i, "x"), f"'{dim}' is not a dimension of this scenario "
                                                 f"(dimensions: {', '.join(dims) or 'none'})")
        if "series" in ch and ch["series"] not in dims and ch["series"] != "metric":
            raise ld.err(("charts", i, "series"), f"'{ch['series']}' is not a dimension of this "
                                                  f"scenario ({', '.join(dims) or 'none'})")
        _check_point_keys(ld, ("charts", i, "where"), ch.get("where", {}), dims)


# Lines on one CDF or timeline chart beyond which it stops being readable.
MAX_LINES = 8


def _check_claim(sc: Scenario, ld: _Loader, path: tuple, comp: dict, claim: dict,
                 ids: dict[str, tuple]) -> None:
    if claim["id"] in ids:
        raise ld.err(path + ("id",), f"claim id '{claim['id']}' is used twice (also at "
                                     f"{'/'.join(map(str, ids[claim['id']]))})")
    ids[claim["id"]] = path
    if "parity" in claim and claim.get("published", 1.0) != 1.0:
        raise ld.err(path + ("published",), "a parity claim compares with 1: leave out "
                                            "`published`, or give 1")
    at = claim.get("at", {})
    _check_point_keys(ld, path + ("at",), at, sc.dimensions)
    for k in at:
        if k in comp["to"]:
            raise ld.err(path + ("at", k), f"'{k}' is what the ratio compares (of/to): `at` "
                                           "names the points of the other dimensions", key=True)
    # at least one point of the ratio (its other dimensions) matches `at`, in the full matrix
    others = {k: v for k, v in sc.dimensions.items() if k not in comp["to"]}
    points = [dict(zip(others, vals)) for vals in itertools.product(*others.values())]
    if not any(matches(p, at) and matches(p, {k: v for k, v in comp.get("where", {}).items()
                                             if k in others}) for p in points):
        raise ld.err(path + ("at",), "no point of this ratio matches `at` (with the "
                                     "comparison's `where`)")


def _check_record_chart(sc: Scenario, ld: _Loader, path: tuple, ch: dict) -> None:
    """A `cdf:` or `timeline:` chart: the step keeps such records, and it draws few lines."""
    key = "cdf" if "cdf" in ch else "timeline"
    for extra in ("x", "series", "anchors", "metric", "metrics"):
        if extra in ch:
            raise ld.err(path + (extra,), f"a {key} chart draws a line per point (fix the "
                                          f"others with `where`): `{extra}` does not apply",
                         key=True)
    name, series = (ch["cdf"], None) if key == "cdf" else ch["timeline"].split(".", 1)
    step = next((s for s in sc.steps if s.name == name), None)
    if step is None:
        raise ld.err(path + (key,), f"no step named '{name}' (steps: "
                                    f"{', '.join(s.name for s in sc.steps)})")
    if key == "cdf" and step.kind.distribution is None:
        keeps = [s.name for s in sc.steps if s.kind.distribution is not None]
        raise ld.err(path + (key,), f"step '{name}' ({step.kind.name}) keeps no latency "
                                    f"distribution (steps that do: {', '.join(keeps) or 'none'})")
    if key == "timeline" and series not in step.kind.timelines:
        known = ", ".join(step.kind.timelines) or "none"
        raise ld.err(path + (key,), f"step '{name}' ({step.kind.name}) keeps no series "
                                    f"'{series}' per interval (it keeps: {known})")
    where = ch.get("where", {})
    _check_point_keys(ld, path + ("where",), where, sc.dimensions)
    free = [len(v) for k, v in sc.dimensions.items() if k not in where]
    lines = math.prod(free) if free else 1
    if lines > MAX_LINES:
        raise ld.err(path, f"this {key} chart would draw {lines} lines (a line per point of "
                           f"{', '.join(k for k in sc.dimensions if k not in where)}): fix "
                           f"dimensions with `where` to at most {MAX_LINES}")


def _check_size(sc: Scenario, ld: _Loader, label: str) -> None:
    """The number of points, counted before anything is expanded: a matrix of 12 dimensions
    of 10 values has 10^12 of them."""
    sizes = {k: len(v) for k, v in sc.dimensions.items()}
    points = math.prod(sizes.values())
    if points > MAX_POINTS:
        where = ("quick", "matrix") if label and "matrix" in sc.quick_spec else ("matrix",)
        shape = " x ".join(f"{n} {k}" for k, n in sizes.items())
        raise ld.err(where, f"the matrix has {points:,} points ({shape}){label}: at most "
                            f"{MAX_POINTS:,}, each is a measurement", key=True)


def _check_quick_names(sc: Scenario, ld: _Loader) -> None:
    names = [c.name for c in sc.configs]
    for i, name in enumerate(sc.quick_spec.get("configs", [])):
        if name not in names:
            raise ld.err(("quick", "configs", i), f"no config named '{name}' (configs: "
                                                  f"{', '.join(names)})")
    for key in sc.quick_spec.get("matrix", {}):
        if key not in sc.matrix:
            raise ld.err(("quick", "matrix", key), f"'{key}' is not in the scenario's matrix",
                         key=True)


def _check_point_keys(ld: _Loader, path: tuple, where: dict, dims: dict) -> None:
    for k, v in where.items():
        if k not in dims:
            raise ld.err(path + (k,), f"'{k}' is not a dimension of this scenario (dimensions: "
                                      f"{', '.join(dims) or 'none'})", key=True)
        if not any(_same(v, d) for d in dims[k]):
            raise ld.err(path + (k,), f"{k} has no value {v!r} (values: "
                                      f"{', '.join(str(d) for d in dims[k])})")


def _check_metric(sc: Scenario, ld: _Loader, path: tuple, ref: str) -> None:
    step_name, metric = ref.split(".", 1)
    step = next((s for s in sc.steps if s.name == step_name), None)
    if step is None:
        raise ld.err(path, f"no step named '{step_name}' (steps: "
                           f"{', '.join(s.name for s in sc.steps)})")
    if metric not in step.kind.metrics:
        known = ", ".join(sorted(step.kind.metrics)) or "none"
        raise ld.err(path, f"step '{step_name}' ({step.kind.name}) records no metric "
                           f"'{metric}' (it records: {known})")


def _check_node(ld: _Loader, sc: Scenario, path: tuple, node: str, ifname: str) -> None:
    for config in sc.configs:
        topo = config.topology
        if node not in topo.nodes:
            raise ld.err(path + ("node",), f"no node '{node}' in the topology of config "
                                           f"'{config.name}' ({topo.file})")
        if ifname not in topo.nodes[node].interfaces and ifname not in ("any", "lo"):
            raise ld.err(path + ("ifname",), f"node '{node}' has no interface '{ifname}' "
                                             f"(it has: {', '.join(topo.nodes[node].interfaces)})")


def _check_params(sc: Scenario, ld: _Loader, step: Step, point: dict, label: str) -> None:
    at = step.path + ("with",)
    try:
        resolved = sc.resolve(step, point)
    except _Unknown as e:
        where = next((p for p, n in _template_paths(step.params) if n == e.name), ())
        known = ", ".join(sorted({**sc.params, **point})) or "none"
        raise ld.err(at + where, f"${{{e.name}}} is neither a param nor a matrix dimension "
                                 f"(known: {known})") from None
    shown = ", ".join(f"{k}={v}" for k, v in point.items())
    note = f" (at {shown}{label})" if shown and _template_paths(step.params) else label
    yamlfile.validate(ld.doc, step.kind.schema, at=at, data=resolved, note=note)
    check = step.kind.check
    if check is not None:  # the step kind's own checks against the topology
        for config in sc.configs:
            if sc.has_configs and not _same(point.get(CONFIG), config.name):
                continue
            problem = check(resolved, config.topology)
            if problem:
                key, message = problem
                raise ld.err(at + ((key,) if key in step.params else ()), message + note)
