"""What a step kind's function gets: the StepContext (documented in docs/scenarios.md).

    def my_step(ctx: StepContext, p: dict) -> None:
        node = ctx.node(p["client"])                   # a NodeHandle of the running lab
        server = ctx.service(("iperf3", "server"), lambda: iperf3.start(...))  # once per lab
        placement = ctx.placement(p["placement"])      # CPUs for client and server
        with ctx.capture("router", "eth-server", filter="tcp"):   # a pcap in the results
            ...
        ctx.placement_used(placement, client_cpus, server_cpus)
        ctx.record("throughput", 12.3)                 # a metric the kind declared
        ctx.distribution(Distribution("us", ...))      # a latency distribution (records.py)
        ctx.timeline("throughput", times, values)      # a metric per interval
        ctx.check(loss == 0, "no packet lost", measured=loss, expected=0)
        ctx.fact("jumbo_encoding", "hop-by-hop")       # anything else worth keeping

A step raises LabError when it cannot measure (the scenario then errors); a measured outcome
that is wrong is a failed check, and the run goes on collecting the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lab.errors import LabError
from lab.lab import Lab, NodeHandle
from lab.scenarios.progress import Progress
from lab.scenarios.records import Distribution, Timeline
from lab.scenarios.registry import StepKind
from lab.scenarios.results import ScenarioResult
from lab.traffic import placement as placement_mod
from lab.traffic.capture import Capture
from lab.traffic.placement import Placement

T = TypeVar("T")


@dataclass
class Services:
    """Background servers of one lab, started on first use and kept for the whole scenario
    (the lab stops them at teardown)."""

    started: dict[Any, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def get(self, key: Any, start: Callable[[], T]) -> T:
        if key not in self.started:
            self.started[key] = start()
        return self.started[key]

    def port(self, node: str, base: int) -> int:
        """A port not yet given out on NODE, from BASE upwards."""
        key = f"{node}:{base}"
        n = self.ports.get(key, 0)
        self.ports[key] = n + 1
        return base + n


@dataclass
class StepContext:
    lab: Lab  # the running lab of this point's config
    params: dict  # the step's parameters: ${...} substituted, defaults filled, validated
    point: dict  # the matrix point, with `config` when the scenario has configs
    repeat: int  # 0-based
    step: str  # the step's name in the scenario
    kind: StepKind
    scenario: str
    quick: bool  # lab run --quick
    out_dir: Path  # the run's results directory
    capture_dir: Path  # DIR/captures/<scenario>
    log_dir: Path  # DIR/logs: server logs
    result: ScenarioResult
    services: Services
    progress: Progress
    _placement: dict | None = None
    captures: list[Capture] = field(default_factory=list)

    # -- the lab ----------------------------------------------------------------------------------

    def node(self, name: str) -> NodeHandle:
        return self.lab.node(name)

    def service(self, key: Any, start: Callable[[], T]) -> T:
        """The server KEY of this lab, started by START() the first time it is asked for."""
        return self.services.get(key, start)

    def port(self, node: str, base: int) -> int:
        return self.services.port(node, base)

    # -- CPU placement ----------------------------------------------------------------------------

    def placement(self, name: str) -> Placement:
        return placement_mod.resolve(name)

    def placement_used(self, placement: Placement, client_cpus: list[int] | None,
                       server_cpus: list[int] | None) -> None:
        """Record where the measurement really ran; later record() calls carry it."""
        self._placement = {"name": placement.name, "client_cpus": client_cpus,
                           "server_cpus": server_cpus}

    # -- results ----------------------------------------------------------------------------------

    def record(self, metric: str, value: float) -> None:
        meta = self.kind.metrics.get(metric)
        if meta is None:
            raise LabError(f"step kind '{self.kind.name}' recorded '{metric}', which it does "
                           f"not declare (declared: {', '.join(self.kind.metrics)})")
        value = float(value)
        if not math.isfinite(value):
            raise LabError(f"{self.step}: {metric} measured as {value}")
        self.result.record(self.step, metric, meta, self.point, self.repeat, value,
                           self._placement)

    def distribution(self, dist: Distribution) -> None:
        """The latency distribution of this measurement (the kind declares `distribution=`)."""
        meta = self.kind.distribution
        if meta is None:
            raise LabError(f"step kind '{self.kind.name}' recorded a distribution, which it "
                           "does not declare (distribution=)")
        if dist.unit != meta.unit:
            raise LabError(f"step kind '{self.kind.name}' declares its distribution in "
                           f"{meta.unit}, not {dist.unit}")
        self.result.distribution(self.step, self.point, self.repeat, dist)

    def timeline(self, name: str, times: list[float], values: list[float]) -> None:
        """NAME per interval of this measurement (the kind declares it in `timelines=`)."""
        meta = self.kind.timelines.get(name)
        if meta is None:
            raise LabError(f"step kind '{self.kind.name}' recorded a timeline '{name}', which "
                           f"it does not declare (timelines: "
                           f"{', '.join(self.kind.timelines) or 'none'})")
        self.result.timeline(self.step, self.point, self.repeat,
                             Timeline(name, meta.unit, list(times), list(values)))

    def check(self, ok: bool, description: str, measured: Any = None,
              expected: Any = None) -> bool:
        """A measured outcome that must hold; a failed one fails the scenario."""
        self.result.check(self.step, self.point, self.repeat, description, ok, measured,
                          expected)
        if not ok:
            detail = f" (measured {measured}, expected {expected})" if measured is not None \
                else ""
            self.progress.message(f"  check failed: {self.step}: {description}{detail}")
        return bool(ok)

    def fact(self, key: str, value: Any) -> None:
        self.result.fact(self.step, self.point, self.repeat, key, value)

    def attach_mode(self, mode: str) -> None:
        """Name a BPF attach mode this step used (tc, tcx, xdp, netkit, ...)."""
        self.result.attach_modes.add(mode)

    def status(self, text: str) -> None:
        """Say what the step is doing now (shown after the step's name)."""
        self.progress.step(f"{self.progress.current.split(' · ')[0]} · {text}")

    # -- captures ---------------------------------------------------------------------------------

    def capture(self, node: str, ifname: str, filter: str | None = None,
                label: str | None = None) -> Capture:
        """A tcpdump on NODE's IFNAME, saved under the capture dir; use it as a context
        manager around the traffic. It is listed in the results with its packet count."""
        parts = [self.step, *(f"{k}-{v}" for k, v in self.point.items()), f"r{self.repeat}",
                 node, ifname] + ([label] if label else [])
        name = re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(str(p) for p in parts))
        cap = Capture(self.node(node), ifname, self.capture_dir / f"{name}.pcap", filter)
        self.captures.append(cap)
        return cap

    def finish_captures(self) -> None:
        for cap in self.captures:
            cap.stop()
            self.result.captures.append({
                "file": str(cap.path.relative_to(self.out_dir)), "step": self.step,
                "point": self.point, "repeat": self.repeat, "node": cap.node.name,
                "ifname": cap.ifname, "filter": cap.filter, "packets": cap.packets})
        self.captures = []
