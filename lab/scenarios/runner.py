"""Running scenarios: requirements, labs side by side, repeats, steps, results.

For each scenario: requirements are checked (missing ones skip it with the reason, or with
--vm run it inside a kernel VM that has them); every config's lab is brought up, all at once;
then each repeat walks the matrix points and, at each point, the configs one right after the
other, so that what is compared is measured side by side in time. Results are written after
every scenario; Ctrl-C (or SIGTERM) stops at once, the labs are torn down by their context
managers, and what was measured so far is kept.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from lab.errors import InputError, LabError
from lab.lab import Lab
from lab.scenarios import environment
from lab.scenarios import results as results_mod
from lab.scenarios.context import Services, StepContext
from lab.scenarios.model import Config, Scenario
from lab.scenarios.progress import Progress
from lab.scenarios.requirements import Requirements
from lab.scenarios.results import RunResults, ScenarioResult, point_label
from lab.topology import Topology
from lab.topology.model import HOST_LINK_KINDS

log = logging.getLogger("lab")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(
        timespec="seconds")


def datapath_summary(topo: Topology) -> dict:
    """The device kinds and BPF attachments a topology asks for."""
    kinds = sorted({link.kind for link in topo.links})
    bpf = [{"interface": f"{i.node}:{i.ifname}", "object": b.object, "program": b.program,
            "hook": b.hook}
           for link in topo.links for i in (link.a, link.b) for b in i.bpf]
    return {"links": kinds, "bpf": bpf, **({"datapath": topo.datapath} if topo.datapath else {})}


def units(sc: Scenario, configs: list[Config] | None = None) -> int:
    """Steps the scenario will run (what the progress bar counts)."""
    n = 0
    for config in configs if configs is not None else sc.configs:
        for point in sc.points():
            n += len(sc.steps_at(sc.full_point(config, point)))
    return n * sc.repeats


class Runner:
    def __init__(self, out_dir: Path, *, quick: bool = False, repeats: int | None = None,
                 vm: bool = False, vm_kernel: str | None = None,
                 progress: Progress | None = None, command: list[str] | None = None):
        self.out_dir = Path(out_dir)
        self.quick, self.repeats = quick, repeats
        self.vm, self.vm_kernel = vm, vm_kernel
        self.progress = progress or Progress()
        self.command = command or sys.argv
        self.requirements = Requirements()
        self.lab_prefix = f"r{os.getpid() % 100000}"

    def check_requirement_names(self, scenarios: list[Scenario]) -> None:
        """Names no probe knows are input errors, reported before anything runs."""
        for sc in scenarios:
            _, unknown = self.requirements.missing(sc.all_requires())
            for name in unknown:
                if name in sc.requires:
                    raise sc.doc.error(("requires", sc.requires.index(name)),
                                       f"unknown requirement '{name}': use a name `lab doctor` "
                                       "lists, or a CONFIG_ option")
                raise InputError(f"a step kind of this scenario requires '{name}', which "
                                 "`lab doctor` does not know", sc.file)

    def run(self, scenarios: list[Scenario], shard: dict | None = None,
            configs: list[str] | None = None) -> RunResults:
        """Run SCENARIOS; with SHARD (a shard's record, lab/scenarios/shard.py), only the
        configs of each scenario that its `points` give it; with CONFIGS, only those."""
        variants = [sc.variant(self.quick, self.repeats) for sc in scenarios]
        if configs is not None:
            variants = [sc.restrict(configs) for sc in variants]
        if shard is not None:
            mine: dict[str, list[str]] = {}
            for scenario, config in shard["points"]:
                mine.setdefault(scenario, []).append(config)
            variants = [sc.restrict(mine[sc.name]) for sc in variants if sc.name in mine]
        self.check_requirement_names(variants)
        results = RunResults(environment.collect(), list(self.command), self.quick)
        results.shard = shard
        results.started = now()
        started = time.monotonic()
        for sc in variants:
            self.progress.add_total(units(sc))
        current = None
        try:
            for index, sc in enumerate(variants):
                current = ScenarioResult(sc)
                results.scenarios.append(current)
                self._run_scenario(index, sc, current, results)
                results.write(self.out_dir)
        except KeyboardInterrupt:
            results.status = "interrupted"
            if current is not None and current.status in ("pending", "running"):
                current.status, current.reason = "interrupted", "interrupted (Ctrl-C)"
                current.evaluate()
            self.progress.message("lab run: interrupted; the labs are torn down, partial "
                                  f"results are in {self.out_dir}")
        finally:
            results.finished = now()
            results.duration_s = time.monotonic() - started
            if results.status == "running":
                bad = [s for s in results.scenarios if s.status in ("failed", "error")]
                results.status = "failed" if bad else "passed"
            results.write(self.out_dir)
            self.progress.finish()
        return results

    # -- one scenario -----------------------------------------------------------------------------

    def _run_scenario(self, index: int, sc: Scenario, sr: ScenarioResult,
                      results: RunResults) -> None:
        sr.started = now()
        t0 = time.monotonic()
        try:
            lacking, _ = self.requirements.missing(sc.all_requires())
            if lacking:
                reason = "; ".join(f"{c.name}: {c.detail}" for c in lacking)
                if self.vm and os.environ.get("LAB_VM") != "1":
                    self._run_in_vm(sc, sr, results, reason)
                else:
                    sr.status, sr.reason = "skipped", f"requires {reason}"
                    self.progress.advance(units(sc))
                    self.progress.message(f"{sc.name}: skipped: {sr.reason}")
                return
            active = []
            for config in sc.configs:
                missing, _ = self.requirements.missing(config.requires)
                if missing:
                    why = "; ".join(f"{c.name}: {c.detail}" for c in missing)
                    sr.configs.append({"name": config.name, "status": "skipped",
                                       "reason": f"requires {why}",
                                       "topology": str(config.topology_file)})
                    self.progress.advance(units(sc, [config]))
                    self.progress.message(f"{sc.name}: config {config.name} skipped: "
                                          f"requires {why}")
                else:
                    active.append(config)
            if not active:
                sr.status, sr.reason = "skipped", "every config lacks a requirement"
                return
            sr.status = "running"
            self._measure(index, sc, sr, active)
            sr.evaluate()
            failures = sr.failures()
            if failures:
                sr.status = "failed"
                sr.reason = failures[0] + (f" (and {len(failures) - 1} more)"
                                           if len(failures) > 1 else "")
            else:
                sr.status = "passed"
        except LabError as e:
            sr.status, sr.reason = "error", str(e)
            sr.evaluate()
        except Exception as e:  # noqa: BLE001 - a broken step kind must not stop the suite
            sr.status, sr.reason = "error", f"internal error: {type(e).__name__}: {e}"
            self.progress.message(traceback.format_exc().rstrip())
            sr.evaluate()
        finally:
            sr.finished = now()
            sr.duration_s = time.monotonic() - t0
        if sr.status != "skipped":
            line = f"{sc.name}: {sr.status} in {sr.duration_s:.0f} s"
            if sr.status == "failed":
                line += "\n  " + "\n  ".join(sr.failures())
            elif sr.status == "error":
                line += f"\n  {sr.reason}"
            self.progress.message(line)

    def _measure(self, index: int, sc: Scenario, sr: ScenarioResult,
                 configs: list[Config]) -> None:
        # Configs are measured side by side, their labs up at once; but links that leave the
        # machine (vxlan, phys) hold what their hosts have one of (a VNI on the underlay, a
        # NIC), so configs with them are measured one after the other.
        numbered = list(enumerate(configs))
        if any(link.kind in HOST_LINK_KINDS for c in configs for link in c.topology.links):
            if len(configs) > 1:
                self.progress.message(f"{sc.name}: its links leave the machine (vxlan/phys): "
                                      "configs measured one after the other")
            for one in numbered:
                self._measure_together(index, sc, sr, [one])
        else:
            self._measure_together(index, sc, sr, numbered)

    def _measure_together(self, index: int, sc: Scenario, sr: ScenarioResult,
                          configs: list[tuple[int, Config]]) -> None:
        capture_dir = self.out_dir / "captures" / sc.name
        log_dir = self.out_dir / "logs"
        # Seconds spent on each config (bringing its lab up, its steps): what a later
        # `lab run --shard` weighs the shards by.
        entries: dict[str, dict] = {}
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: [e.update(duration_s=round(e["duration_s"], 3))
                                    for e in entries.values()])
            labs: dict[str, Lab] = {}
            for ci, config in configs:
                t0 = time.monotonic()
                name = f"{self.lab_prefix}s{index}c{ci}"
                self.progress.step(f"{sc.name}: bringing up {config.name} ({name})")
                topo = config.load_topology(name)
                labs[config.name] = stack.enter_context(Lab(topo, datapaths=config.datapaths))
                summary = datapath_summary(topo)
                entries[config.name] = {"name": config.name, "status": "up", "lab": name,
                                        "topology": str(config.topology_file),
                                        "description": config.description,
                                        "datapath": summary, "duration_s": 0.0}
                sr.configs.append(entries[config.name])
                sr.attach_modes |= {b["hook"] for b in summary["bpf"]}
                sr.attach_modes |= {f"link:{k}" for k in summary["links"]}
                entries[config.name]["duration_s"] += time.monotonic() - t0
            services = {name: Services() for name in labs}
            for repeat in range(sc.repeats):
                for point in sc.points():
                    for _, config in configs:
                        t0 = time.monotonic()
                        full = sc.full_point(config, point)
                        try:
                            for step in sc.steps_at(full):
                                self._step(sc, sr, step, full, repeat, labs[config.name],
                                           services[config.name], capture_dir, log_dir)
                        finally:
                            entries[config.name]["duration_s"] += time.monotonic() - t0

    def _step(self, sc, sr, step, point, repeat, lab, services, capture_dir, log_dir) -> None:
        params = sc.resolve(step, point)
        where = point_label(point)
        self.progress.step(f"{sc.name} r{repeat + 1}/{sc.repeats} {where} · {step.name}")
        ctx = StepContext(lab=lab, params=params, point=point, repeat=repeat, step=step.name,
                          kind=step.kind, scenario=sc.name, quick=sc.quick,
                          out_dir=self.out_dir, capture_dir=capture_dir, log_dir=log_dir,
                          result=sr, services=services, progress=self.progress)
        try:
            for cap in step.capture:
                ctx.capture(cap["node"], cap["ifname"], cap.get("filter")).start()
            step.kind.run(ctx, params)
        except LabError as e:
            raise LabError(f"step {step.name} ({step.kind.name}) at [{where}] repeat "
                           f"{repeat}: {e}") from e
        finally:
            ctx.finish_captures()
        sr.steps_run += 1
        self.progress.advance()

    # -- in a kernel VM ---------------------------------------------------------------------------

    def _run_in_vm(self, sc: Scenario, sr: ScenarioResult, results: RunResults,
                   reason: str) -> None:
        try:
            from lab import vm
        except ImportError:
            sr.status = "skipped"
            sr.reason = f"requires {reason}; --vm: the kernel VM runner (lab.vm) is not " \
                        "part of this checkout"
            self.progress.advance(units(sc))
            self.progress.message(f"{sc.name}: skipped: {sr.reason}")
            return
        from lab.traffic import rr

        # Built and byte-compiled here: the guest sees the host's files read-only.
        rr.binary()
        checkout = Path(__file__).resolve().parents[2]
        vm.precompile(checkout / "lab")
        sub = (self.out_dir / "vm" / sc.name).resolve()
        argv = [sys.executable, "-m", "lab", "run", str(Path(sc.file).resolve()),
                "--out", str(sub), "--repeat", str(sc.repeats)]
        if sc.quick:
            argv.append("--quick")
        for config in sc.configs if sc.has_configs else ():  # a shard's part of it
            argv += ["--config", config.name]
        # The guest sees the host's files read-only, except under its own tmpfs (/tmp, /run,
        # /var): the results directory is shared writable; the scenario and topology files,
        # this checkout and its Python stay visible wherever they are.
        visible = [str(Path(sc.file).resolve().parent), sys.prefix, str(checkout),
                   *(str(c.topology_file.resolve().parent) for c in sc.configs)]
        self.progress.step(f"{sc.name}: in a kernel VM (here: {reason})")
        env = {**os.environ, "CI": "true"}
        res = vm.run(argv, kernel=self.vm_kernel, shares=[str(self.out_dir.resolve())],
                     visible=visible, env=env, text=True)
        self.progress.advance(units(sc))
        path = sub / "results.json"
        if not path.exists():
            tail = " | ".join((res.stderr or res.stdout or "").strip().splitlines()[-5:])
            raise LabError(f"the run in the VM (kernel {res.kernel}, {res.accel}) exited with "
                           f"{res.returncode} and wrote no results: {tail}")
        doc = results_mod.load(path)
        entry = doc["scenarios"][0]
        entry["environment"] = doc["environment"]
        for cap in entry["captures"]:
            cap["file"] = str(Path("vm") / sc.name / cap["file"])
        results.imported.append(entry)
        sr.status, sr.reason = entry["status"], entry["reason"]
        note = " (emulated: TCG timings are not comparable with native ones)" \
            if res.accel != "kvm" else ""
        self.progress.message(f"{sc.name}: {sr.status} in a VM, kernel {res.kernel}, "
                              f"{res.accel}{note}")
