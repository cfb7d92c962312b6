"""Step kinds: the things a scenario step can do, written in Python and registered by name.

    from lab.scenarios import Metric, step

    @step("iperf3", requires=["iperf3"],
          schema={"type": "object", "required": ["client", "server"],
                  "properties": {"client": {"type": "string"}, ...}},
          metrics={"throughput": Metric("Gbit/s", "higher", "received by the server")})
    def iperf3(ctx, p):
        ...
        ctx.record("throughput", result.throughput_gbps)

A step kind declares the JSON Schema of its parameters (a scenario file is checked against it,
for every point of its matrix, before anything runs), the metrics it records (unit and which
direction is better, used by reports and `lab compare`), what it requires (names of
`lab doctor`) and optionally a check of its parameters against the topology (nodes it
names). Its function gets a StepContext (lab/scenarios/context.py) and the parameters.

Modules that register step kinds are listed in STEP_MODULES and imported on first use;
a team member's module adds itself there (as command modules do in lab/cli.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

BETTER = ("higher", "lower", "none")

# Modules whose import registers step kinds, in the order `lab run --list` shows them.
STEP_MODULES: list[str] = [
    "lab.scenarios.steps",
    "lab.scenarios.bigtcp",
    "lab.scenarios.translator",
    "lab.datapath.kubeproxy.steps",
]


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


_registry: dict[str, StepKind] = {}
_loaded = False


def step(name: str, *, schema: dict, metrics: dict[str, Metric] | None = None,
         requires: list[str] | tuple[str, ...] = (),
         check: Callable[[dict, Any], tuple[str, str] | None] | None = None) -> Callable:
    """Register the decorated function as step kind NAME (see the module's docstring)."""
    jsonschema.Draft202012Validator.check_schema(schema)

    def register(func: Callable) -> Callable:
        existing = _registry.get(name)
        if existing is not None and existing.module != func.__module__:
            raise ValueError(f"step kind '{name}' is registered twice: by {existing.module} "
                             f"and by {func.__module__}")
        _registry[name] = StepKind(name, func, schema, dict(metrics or {}), tuple(requires),
                                   func.__module__, check)
        return func

    return register


def kinds() -> dict[str, StepKind]:
    """Every registered step kind, after importing STEP_MODULES."""
    global _loaded
    if not _loaded:
        for module in STEP_MODULES:
            importlib.import_module(module)
        _loaded = True
    return _registry


def kind(name: str) -> StepKind | None:
    return kinds().get(name)
