"""Sharding a suite across CI runners: `lab run --shard K/N` runs shard K of N.

The suite's points are its (scenario, configuration) pairs. Configs that a scenario compares
with each other (`compare:` naming `config` in `of`/`to`) form one unit, never split: a ratio
is measured side by side, in one run on one machine, or it is not a ratio. Units are dealt to
the N shards longest first, each to the shard with the least work so far (LPT scheduling:
within 4/3 of the best possible longest shard), so every runner of a CI matrix computes the
same plan from the same suite, with nothing shared but the inputs.

A unit's work is estimated from an earlier run's results.json when it has the scenario
(`--durations`, or the newest run in the results directory): the seconds it recorded per
config, scaled by the static estimate of this run over that of the recorded one (so a
--quick run's durations still weigh a full run's shards). Otherwise the static estimate: the
seconds each step is told to run (its `seconds` and `warmup`) plus an overhead per step and
the bring-up of each config's lab.

Every shard's results.json records its place (`shard`: K, N, its points, the suite's digest
and the plan's), which is what `lab merge` (lab/scenarios/merge.py) checks before joining
shards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import UsageError
from lab.scenarios.model import CONFIG, Scenario

BRINGUP_S = 3.0  # one lab up and down, as this machine does it (reachability: ~1.5 s each)
STEP_OVERHEAD_S = 1.0  # servers started, tools spawned, results parsed
STATIC = "static"


@dataclass(frozen=True)
class Shard:
    """K of N, 1-based as CI matrices count (`--shard 1/4` .. `--shard 4/4`)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        k, sep, n = text.partition("/")
        if not sep or not (k.isascii() and k.isdigit() and n.isascii() and n.isdigit()):
            raise UsageError(f"--shard {text!r}: expected K/N with whole numbers, e.g. 2/4")
        index, count = int(k), int(n)
        if count < 1 or count > 1000:
            raise UsageError(f"--shard {text}: N must be 1 to 1000")
        if not 1 <= index <= count:
            raise UsageError(f"--shard {text}: K must be 1 to N ({count})")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Unit:
    """Configs of one scenario that run together, on one shard, with their estimated work."""

    scenario: str
    configs: tuple[str, ...]
    seconds: float

    @property
    def points(self) -> list[tuple[str, str]]:
        return [(self.scenario, c) for c in self.configs]


def units_of(sc: Scenario) -> list[tuple[str, ...]]:
    """The scenario's configs grouped by the comparisons between them, in file order."""
    names = [c.name for c in sc.configs]
    group = {n: n for n in names}

    def root(n: str) -> str:
        while group[n] != n:
            n = group[n]
        return n

    for comp in sc.comparisons:
        linked = [str(side[CONFIG]) for side in (comp["of"], comp["to"])
                  if CONFIG in side and str(side[CONFIG]) in group]
        if not linked:
            continue
        # A comparison over another dimension with `where: {config: x}` stays within x;
        # one whose sides name configs links them (and through them, what they compare).
        first = root(linked[0])
        for n in linked[1:]:
            group[root(n)] = first
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(root(n), []).append(n)
    return [tuple(g) for g in out.values()]


def _seconds(value) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def static_estimate(sc: Scenario, config: str) -> float:
    """Seconds CONFIG of SC (a variant: its repeats and matrix as run) should take."""
    cfg = next(c for c in sc.configs if c.name == config)
    per_repeat = 0.0
    for point in sc.points():
        full = sc.full_point(cfg, point)
        for step in sc.steps_at(full):
            try:
                params = sc.resolve(step, full)
            except Exception:  # noqa: BLE001 - an estimate; the run itself reports bad params
                params = {}
            per_repeat += STEP_OVERHEAD_S + _seconds(params.get("seconds")) + \
                _seconds(params.get("warmup"))
    return BRINGUP_S + sc.repeats * per_repeat


class Durations:
    """Seconds per (scenario, config) recorded by an earlier run, and how it was run."""

    def __init__(self, source: str, recorded: dict[str, dict]):
        self.source = source
        self.recorded = recorded  # scenario -> {"quick", "repeats", "total", "configs": {}}

    @classmethod
    def none(cls) -> Durations:
        return cls(STATIC, {})

    @classmethod
    def from_results(cls, doc: dict, source: str) -> Durations:
        recorded: dict[str, dict] = {}
        for s in doc.get("scenarios", []):
            name = s.get("scenario") or s["name"]  # a kernel matrix names them NAME@KERNEL
            if name in recorded or s.get("environment", {}).get("execution", {}).get(
                    "mode") == "vm":
                continue  # emulated timings say nothing of a native run's
            configs = {c["name"]: float(c["duration_s"]) for c in s.get("configs", [])
                       if "duration_s" in c}
            recorded[name] = {"quick": s["quick"], "repeats": s["repeats"],
                              "total": float(s.get("duration_s", 0.0)), "configs": configs}
        return cls(source, recorded)

    @classmethod
    def load(cls, path: Path) -> Durations:
        from lab.scenarios import results

        return cls.from_results(results.load(path), str(path))

    def estimate(self, base: Scenario, run: Scenario, config: str) -> float:
        """Seconds CONFIG of RUN (BASE's variant as this run makes it) should take."""
        static = static_estimate(run, config)
        rec = self.recorded.get(base.name)
        if rec is None or config not in {c.name for c in base.configs}:
            return static
        then = base.variant(rec["quick"], rec["repeats"])
        if config not in {c.name for c in then.configs}:
            return static
        then_static = static_estimate(then, config)
        if config in rec["configs"]:
            seconds = rec["configs"][config]
        else:  # results without per-config times: the scenario's, shared as estimated
            total = sum(static_estimate(then, c.name) for c in then.configs)
            seconds = rec["total"] * then_static / total if total else 0.0
        return seconds * static / then_static if then_static else static


def find_durations(option: str | None, results_dir: Path) -> Durations:
    """--durations FILE, `static`, or by default the newest run in RESULTS_DIR (its `latest`
    link, as `lab run` leaves it) when there is one."""
    if option == STATIC:
        return Durations.none()
    if option is not None:
        return Durations.load(Path(option))
    latest = results_dir / "latest" / "results.json"
    if latest.is_file():
        return Durations.load(latest)
    return Durations.none()


def suite_record(runs: Sequence[Scenario]) -> dict:
    """The suite as run (scenario and topology files, variants, points) and its digest: shards
    of one suite have the same (`lab run --topology` on one runner and not on another, or an
    edited file, makes another suite)."""
    def file_digest(path: str) -> str:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return ""

    points = [[sc.name, c.name] for sc in runs for c in sc.configs]
    ident = [{"name": sc.name, "file": file_digest(sc.file), "quick": sc.quick,
              "repeats": sc.repeats, "matrix": sc.matrix, "params": sc.params,
              "configs": [c.name for c in sc.configs],
              "topologies": [file_digest(str(c.topology_file)) for c in sc.configs]}
             for sc in runs]
    text = json.dumps(ident, sort_keys=True, default=str)
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16], "points": points}


@dataclass
class Plan:
    """Which units each of N shards runs."""

    count: int
    shards: list[list[Unit]]  # index 0 is shard 1
    suite: dict
    durations: str  # where the estimates came from

    @property
    def digest(self) -> str:
        text = json.dumps([[[u.scenario, list(u.configs)] for u in units]
                           for units in self.shards])
        return hashlib.sha256(f"{self.count}:{text}".encode()).hexdigest()[:16]

    def load(self, index: int) -> float:
        return sum(u.seconds for u in self.shards[index - 1])

    def configs(self, index: int) -> dict[str, list[str]]:
        """Scenario -> the configs shard INDEX runs of it."""
        out: dict[str, list[str]] = {}
        for u in self.shards[index - 1]:
            out.setdefault(u.scenario, []).extend(u.configs)
        return out

    def record(self, index: int) -> dict:
        """The `shard` record of shard INDEX's results.json."""
        return {"index": index, "count": self.count, "plan": self.digest,
                "suite": self.suite, "durations": self.durations,
                "estimate_s": round(self.load(index), 1),
                "points": [list(p) for u in self.shards[index - 1] for p in u.points]}


def plan(scenarios: Sequence[Scenario], count: int, *, quick: bool = False,
         repeats: int | None = None, durations: Durations | None = None) -> Plan:
    """Deal SCENARIOS' units to COUNT shards, longest first to the least loaded."""
    durations = durations or Durations.none()
    names = [sc.name for sc in scenarios]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--shard: scenario name(s) {', '.join(twice)} appear twice in the "
                         "suite; a shard's points are named by scenario and config")
    runs = [sc.variant(quick, repeats) for sc in scenarios]
    units = []
    for order, (base, run) in enumerate(zip(scenarios, runs)):
        for group in units_of(run):
            seconds = sum(durations.estimate(base, run, c) for c in group)
            units.append((order, Unit(run.name, group, round(seconds, 3))))
    shards: list[list[Unit]] = [[] for _ in range(count)]
    loads = [0.0] * count
    # Longest first; equal estimates in suite order, so every runner deals the same hand.
    for _, unit in sorted(units, key=lambda ou: (-ou[1].seconds, ou[0], ou[1].configs)):
        k = min(range(count), key=lambda i: (loads[i], i))
        shards[k].append(unit)
        loads[k] += unit.seconds
    suite_order = {(u.scenario, u.configs): i for i, (_, u) in enumerate(units)}
    for units_k in shards:  # each shard runs its units in suite order
        units_k.sort(key=lambda u: suite_order[(u.scenario, u.configs)])
    return Plan(count, shards, suite_record(runs), durations.source)
