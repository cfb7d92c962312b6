"""A kernel matrix: the same scenarios on several kernels, one results document.

`lab run --kernels host,6.12,7.2,7.3 SCENARIO...` runs the scenarios natively for `host` and,
for every other entry, in one `lab vm` boot of that kernel (a version prefix, as `lab vm
--kernel` takes it). Each kernel first says what it can do (`lab doctor --json` in that
kernel), then runs the scenarios as `lab run` would, skipping what it lacks with doctor's
reason. The per-kernel results stay in DIR/kernels/LABEL/; DIR/results.json holds every
kernel's scenarios, each named SCENARIO@LABEL and carrying a `kernel` record (label, release,
suite, native or emulated, IPv6 BIG TCP form, what it lacks), from which the report's kernel
matrix (lab/scenarios/matrix.py) is drawn. Figures measured under TCG emulation are only ever
compared with others of the same kernel: the matrix sets kernels side by side, ratios within
each.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError, UsageError
from lab.scenarios import claims, environment
from lab.scenarios import results as results_mod
from lab.scenarios.model import Scenario
from lab.scenarios.progress import Progress

HOST = "host"
CHECKOUT = Path(__file__).resolve().parents[2]


def parse_kernels(text: str) -> list[str]:
    """`host,6.12,7.3` -> labels, in order, each once; bad entries are a UsageError."""
    labels = [k.strip() for k in text.split(",") if k.strip()]
    if not labels:
        raise UsageError("--kernels needs at least one kernel (host, or a version such as 7.3)")
    for label in labels:
        if label != HOST and not all(part.isdigit() for part in label.split(".")[:2]):
            raise UsageError(f"--kernels: {label!r} is neither 'host' nor a kernel version "
                             "(6.12, 7.3, 7.2.12, or a release as `lab vm --list` shows it)")
    if len(set(labels)) != len(labels):
        raise UsageError(f"--kernels lists a kernel twice: {text}")
    return labels


@dataclass
class KernelRun:
    """What one kernel of the matrix was and did."""

    label: str
    release: str
    suite: str
    execution: str  # "native" or "vm"
    accel: str | None  # "kvm" or "tcg" in a VM
    capabilities: list[dict]
    results_path: Path | None
    error: str = ""

    def record(self) -> dict:
        caps = {c["name"]: c for c in self.capabilities}
        form = caps.get("big_tcp_ipv6_form", {})
        return {"label": self.label, "release": self.release, "suite": self.suite,
                "execution": self.execution, "accel": self.accel,
                "emulated": self.execution == "vm" and self.accel != "kvm",
                "big_tcp_ipv6_form": form.get("detail", "").split(":", 1)[0]
                if form.get("ok") else None,
                "lacks": [{"name": c["name"], "detail": c["detail"]}
                          for c in self.capabilities if not c["ok"]],
                "error": self.error}


def _doctor() -> list[dict]:
    from lab import features

    return [c.as_dict() for c in features.collect()]


class KernelMatrix:
    def __init__(self, out_dir: Path, labels: list[str], *, quick: bool = False,
                 repeats: int | None = None, progress: Progress | None = None,
                 command: list[str] | None = None, vm_timeout: float | None = None):
        self.out_dir = Path(out_dir)
        self.labels = labels
        self.quick, self.repeats = quick, repeats
        self.progress = progress or Progress()
        self.command = command or sys.argv
        self.vm_timeout = vm_timeout

    def run(self, scenarios: list[Scenario]) -> dict:
        """Each kernel in turn; DIR/results.json is rewritten after each, so an interrupted
        matrix keeps the kernels it finished."""
        runs: list[KernelRun] = []
        doc: dict = {}
        for label in self.labels:
            try:
                runs.append(self._host(scenarios) if label == HOST else
                            self._vm(label, scenarios))
            except LabError as e:
                runs.append(KernelRun(label, "?", "", "vm", None, [], None, str(e)))
                self.progress.message(f"kernel {label}: {e}")
            doc = merge(runs, scenarios, self.command, self.quick)
            results_mod.validate(doc)
            tmp = self.out_dir / "results.json.tmp"
            tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
            tmp.replace(self.out_dir / "results.json")
        return doc

    def _dir(self, label: str) -> Path:
        d = (self.out_dir / "kernels" / label).resolve()
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _host(self, scenarios: list[Scenario]) -> KernelRun:
        from lab.scenarios.runner import Runner

        out = self._dir(HOST)
        self.progress.message(f"kernel host ({platform.release()}): native")
        caps = _doctor()
        (out / "doctor.json").write_text(json.dumps(
            {"kernel": platform.release(), "capabilities": caps}, indent=1))
        # No --vm here: what this kernel lacks is reported as such, not run elsewhere.
        Runner(out, quick=self.quick, repeats=self.repeats, progress=self.progress,
               command=self.command).run(scenarios)
        return KernelRun(HOST, platform.release(), "", "native", None, caps,
                         out / "results.json")

    def _vm(self, label: str, scenarios: list[Scenario]) -> KernelRun:
        from lab import vm
        from lab.traffic import rr

        kernel = vm.KernelCache().kernel(label)
        # Built and byte-compiled here: the guest sees the host's files read-only.
        rr.binary()
        vm.precompile(CHECKOUT / "lab")
        out = self._dir(label)
        py = shlex.quote(sys.executable)
        run = [py, "-m", "lab", "run", "--out", shlex.quote(str(out))]
        if self.quick:
            run.append("--quick")
        if self.repeats:
            run += ["--repeat", str(self.repeats)]
        run += [shlex.quote(str(Path(sc.file).resolve())) for sc in scenarios]
        # One boot: doctor's verdict on this kernel, then the scenarios. The guest's lab run
        # may exit non-zero (a failed scenario; drawing charts needs CPU features the
        # emulated CPU lacks): its results.json is what counts.
        script = (f"{py} -m lab doctor --json > {shlex.quote(str(out / 'doctor.json'))}; "
                  + " ".join(run))
        visible = [str(CHECKOUT), sys.prefix,
                   *{str(Path(sc.file).resolve().parent) for sc in scenarios},
                   *{str(c.topology_file.resolve().parent) for sc in scenarios
                     for c in sc.configs}]
        self.progress.message(f"kernel {label}: {kernel.release} ({kernel.suite or '?'}) "
                              "in a VM, one boot")
        res = vm.run(["sh", "-c", script], kernel=kernel, shares=[str(out)], visible=visible,
                     env={**os.environ, "CI": "true"}, cwd=str(CHECKOUT), text=True,
                     timeout=self.vm_timeout, mem_mib=2048)
        try:
            doctor = json.loads((out / "doctor.json").read_text())
            caps = doctor["capabilities"]
        except (OSError, ValueError, KeyError):
            caps = []
        results = out / "results.json"
        error = ""
        if not results.exists():
            tail = " | ".join((res.stderr or res.stdout or "").strip().splitlines()[-5:])
            error = f"the run in the VM exited with {res.returncode} and wrote no results: " \
                    f"{tail}"
        return KernelRun(label, res.kernel, kernel.suite, "vm", res.accel, caps,
                         results if results.exists() else None, error)


def merge(runs: list[KernelRun], scenarios_run: list[Scenario], command: list[str],
          quick: bool) -> dict:
    """One results document of every kernel's scenarios, SCENARIO@LABEL, each with its
    kernel record (and the environment it ran in). A kernel that could not run gives each
    scenario an error entry saying why."""
    scenarios = []
    started = finished = None
    duration = 0.0
    for kr in runs:
        record = kr.record()
        if kr.results_path is None:
            for sc in scenarios_run:
                entry = {
                    "name": f"{sc.name}@{kr.label}", "scenario": sc.name, "file": sc.file,
                    "description": sc.description, "status": "error",
                    "reason": f"kernel {kr.label}: {kr.error}", "quick": quick,
                    "repeats": sc.repeats, "dimensions": {}, "metrics": [], "assertions": [],
                    "checks": [], "comparisons": [], "facts": [], "captures": [],
                    "claims": [], "distributions": [], "timelines": [], "kernel": record}
                entry["claims"] = claims.evaluate(entry, sc.comparisons)  # not measurable
                scenarios.append(entry)
            continue
        doc = results_mod.load(kr.results_path)
        started = started or doc["started"]
        finished = doc["finished"] or finished
        duration += doc["duration_s"]
        rel = Path("kernels") / kr.label
        for s in doc["scenarios"]:
            s = dict(s)
            s["scenario"] = s["name"]
            s["name"] = f"{s['name']}@{kr.label}"
            s["kernel"] = record
            s.setdefault("environment", doc["environment"])
            s["claims"] = [{**c, "scenario": s["name"]} for c in s.get("claims", [])]
            for cap in s.get("captures", []):
                cap["file"] = str(rel / cap["file"])
            scenarios.append(s)
    bad = [s for s in scenarios if s["status"] in ("failed", "error")]
    return {"schema_version": results_mod.SCHEMA_VERSION, "tool": "datapath-lab",
            "command": list(command), "status": "failed" if bad else "passed",
            "quick": quick, "started": started, "finished": finished,
            "duration_s": round(duration, 3), "environment": environment.collect(),
            "scenarios": scenarios}


def kernel_runs_of(doc: dict) -> list[dict]:
    """The kernel records of a matrix document, in the order they ran."""
    seen: dict[str, dict] = {}
    for s in doc["scenarios"]:
        k = s.get("kernel")
        if k and k["label"] not in seen:
            seen[k["label"]] = k
    return list(seen.values())
