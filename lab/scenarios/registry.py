"""Step kinds: the things a scenario step can do, written in Python, known by name.

    from lab.scenarios import Metric, step

    @step("iperf3", requires=["iperf3"],
          schema={"type": "object", "required": ["client", "server"],
                  "properties": {"client": {"type": "string"}, ...}},
          metrics={"throughput": Metric("Gbit/s", "higher", "received by the server")},
          timelines={"throughput": Metric("Gbit/s", "higher", "sent per interval")})
    def iperf3(ctx, p):
        ...
        ctx.record("throughput", result.throughput_gbps)

A step kind declares the JSON Schema of its parameters (a scenario file is checked against it,
for every point of its matrix, before anything runs), the metrics it records (unit and which
direction is better, used by reports and `lab compare`), what it requires (names of
`lab doctor`), optionally a check of its parameters against the topology (nodes it
names), and what it keeps besides numbers: a latency distribution per measurement
(`distribution=`, ctx.distribution()) or series over time (`timelines=`, ctx.timeline()).
Its function gets a StepContext (lab/scenarios/context.py) and the parameters.

`@step` makes the function a StepKind; nothing is registered anywhere by importing a module.
A scenario is loaded against a `Catalogue`: the step kinds it may use (the built-in ones of
lab/scenarios/steps.py, and those each datapath feature offers) and the datapath features its
topologies may configure, handed in by the caller (`lab run`: the registry of lab/datapath/).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from lab.lab import LabHooks

BETTER = ("higher", "lower", "none")


@dataclass(frozen=True)
class Metric:
    """What a recorded number means: its unit and which direction is an improvement."""

    unit: str
    better: str = "none"  # higher | lower | none (not a performance figure: no regression)
    description: str = ""

    def __post_init__(self):
        if self.better not in BETTER:
            raise ValueError(f"Metric.better must be one of {BETTER}, not {self.better!r}")


@dataclass
class StepKind:
    name: str
    run: Callable[..., Any]
    schema: dict
    metrics: dict[str, Metric] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    module: str = ""
    # check(params, topology) -> (parameter, message) when the parameters do not fit the
    # topology (e.g. a node it does not have); run at load time for every point and config.
    check: Callable[[dict, Any], tuple[str, str] | None] | None = None
    # What it keeps beyond scalar metrics (lab/scenarios/records.py): a latency distribution
    # per measurement (`cdf:` charts draw it) and series per interval (`timeline:` charts).
    distribution: Metric | None = None
    timelines: dict[str, Metric] = field(default_factory=dict)

    @property
    def description(self) -> str:
        doc = (self.run.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def with_defaults(self, params: dict) -> dict:
        """PARAMS with the schema's top-level defaults filled in."""
        out = dict(params)
        for key, prop in self.schema.get("properties", {}).items():
            if key not in out and isinstance(prop, dict) and "default" in prop:
                out[key] = prop["default"]
        return out


def step(name: str, *, schema: dict, metrics: dict[str, Metric] | None = None,
         requires: list[str] | tuple[str, ...] = (),
         check: Callable[[dict, Any], tuple[str, str] | None] | None = None,
         distribution: Metric | None = None,
         timelines: dict[str, Metric] | None = None) -> Callable[[Callable], StepKind]:
    """Make the decorated function step kind NAME (see the module's docstring)."""
    jsonschema.Draft202012Validator.check_schema(schema)

    def make(func: Callable) -> StepKind:
        return StepKind(name, func, schema, dict(metrics or {}), tuple(requires),
                        func.__module__, check, distribution, dict(timelines or {}))

    return make


def by_name(*groups: Iterable[StepKind]) -> dict[str, StepKind]:
    """The step kinds of GROUPS by name, in order; one name offered twice is a mistake."""
    out: dict[str, StepKind] = {}
    for k in (k for group in groups for k in group):
        existing = out.get(k.name)
        if existing is not None:
            raise ValueError(f"step kind '{k.name}' is offered twice: by {existing.module} "
                             f"and by {k.module}")
        out[k.name] = k
    return out


@dataclass(frozen=True)
class Catalogue:
    """What scenarios may use: step kinds by name, and the datapath features (lab.lab.LabHooks)
    their topologies may configure and their labs run."""

    kinds: Mapping[str, StepKind]
    datapaths: Sequence[LabHooks] = ()


def builtin() -> Catalogue:
    """The built-in step kinds and no datapath feature (what the scenario layer has alone)."""
    from lab.scenarios import netem, steps   # they build on this module

    return Catalogue(by_name(steps.STEP_KINDS, (netem.netem,)))
