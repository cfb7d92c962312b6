"""Sharding (`lab run --shard K/N`) and `lab merge`: the plan covers every point once, the
same on every machine, balanced by recorded durations; merge joins shards into the document
one run writes and refuses shards that are not one run's. Synthetic measurements, no root."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.datapath.registry import catalogue
from lab.errors import UsageError
from lab.scenarios import default_suite, environment, results
from lab.scenarios import merge as merge_mod
from lab.scenarios import shard as shard_mod
from lab.scenarios.model import load
from lab.scenarios.report import write_reports
from lab.scenarios.results import RunResults, ScenarioResult

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "bigtcp.yaml"
LAB = [sys.executable, "-m", "lab"]

# Three configs, none compared with another: each is its own point to deal. The ratio is
# over family, within each config; an assertion names one config only.
SPLIT = f"""\
name: split
topology: {TOPOLOGY}
configs:
  a: {{}}
  b: {{patch: {{defaults: {{gso_max_size: 65536}}}}}}
  c: {{patch: {{defaults: {{gro_max_size: 65536}}}}}}
matrix: {{family: [6, 4]}}
repeats: 3
quick: {{repeats: 1}}
steps:
  - {{kind: rr, name: rr, with: {{client: client, server: server, family: "${{family}}",
                                seconds: 1}}}}
assert:
  - {{metric: rr.p99, max: 500}}
  - {{metric: rr.tps, min: 1, where: {{config: b}}}}
compare:
  - metric: rr.tps
    of: {{family: 6}}
    to: {{family: 4}}
    claims:
      - {{id: v6-faster, claim: "IPv6 is faster", published: 1.2, source: "a test",
         at: {{config: b}}}}
"""

# Four configs: two pairs compared side by side, so two units of two.
PAIRED = f"""\
name: paired
topology: {TOPOLOGY}
configs:
  big: {{}}
  small: {{patch: {{defaults: {{gso_max_size: 65536}}}}}}
  x: {{patch: {{defaults: {{gro_max_size: 65536}}}}}}
  y: {{patch: {{defaults: {{gro_max_size: 32768}}}}}}
repeats: 2
steps:
  - {{kind: rr, name: rr, with: {{client: client, server: server, family: 6, seconds: 2}}}}
compare:
  - {{metric: rr.tps, of: {{config: big}}, to: {{config: small}}}}
  - {{metric: rr.tps, of: {{config: x}}, to: {{config: y}}}}
"""

SINGLE = f"""\
name: single
topology: {TOPOLOGY}
repeats: 1
steps:
  - {{kind: reach}}
"""


def scenario(tmp_path: Path, text: str, name: str | None = None):
    name = name or text.split("\n", 1)[0].split(": ")[1]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load(path, catalogue())


def one_config(tmp_path: Path, name: str, seconds: int):
    return scenario(tmp_path, f"""\
name: {name}
topology: {TOPOLOGY}
repeats: 1
steps:
  - {{kind: rr, with: {{client: client, server: server, family: 6, seconds: {seconds}}}}}
""", name)


@pytest.fixture
def suite(tmp_path):
    return [scenario(tmp_path, SPLIT), scenario(tmp_path, PAIRED),
            scenario(tmp_path, SINGLE)]


def all_points(scenarios, quick=False):
    return [(sc.name, c.name) for sc in scenarios for c in sc.variant(quick).configs]


def assert_partition(scenarios, count, **kw):
    p = shard_mod.plan(scenarios, count, **kw)
    seen = []
    for k in range(1, count + 1):
        seen += [tuple(x) for x in p.record(k)["points"]]
    expected = all_points(scenarios, kw.get("quick", False))
    assert sorted(seen) == sorted(expected), f"N={count}"
    assert len(seen) == len(set(seen)), f"N={count}: a point in two shards"
    assert p.record(1)["suite"]["points"] == [list(x) for x in expected]
    return p


# -- the plan ---------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 40])
def test_n_shards_cover_every_point_exactly_once(suite, count):
    p = assert_partition(suite, count)
    # Configs compared with each other are never split: big/small and x/y on one shard each.
    for k in range(1, count + 1):
        mine = p.configs(k).get("paired", [])
        assert ("big" in mine) == ("small" in mine) and ("x" in mine) == ("y" in mine)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_the_shipped_suite_shards_exactly_once(count, quick):
    p = assert_partition(default_suite(catalogue()), count, quick=quick)
    assert sum(len(p.record(k)["points"]) for k in range(1, count + 1)) == \
        len(p.record(1)["suite"]["points"])


def test_units_keep_compared_configs_together(suite):
    split, paired, single = suite
    assert shard_mod.units_of(split) == [("a",), ("b",), ("c",)]
    assert shard_mod.units_of(paired) == [("big", "small"), ("x", "y")]
    assert shard_mod.units_of(single) == [("default",)]


def test_the_plan_is_the_same_in_another_process(suite, tmp_path):
    here = shard_mod.plan(suite, 3)
    assert shard_mod.plan(suite, 3).shards == here.shards
    code = ("import sys; from lab.datapath.registry import catalogue; "
            "from lab.scenarios.model import load; from lab.scenarios import shard; "
            "s = [load(p, catalogue()) for p in sys.argv[1:]]; "
            "print(shard.plan(s, 3).digest)")
    files = [sc.file for sc in suite]
    for seed in ("1", "2"):  # another hash seed, another set iteration order
        out = subprocess.run([sys.executable, "-c", code, *files], capture_output=True,
                             text=True, env={**os.environ, "PYTHONHASHSEED": seed},
                             cwd=ROOT, check=True)
        assert out.stdout.strip() == here.digest


def test_shard_parsing():
    assert shard_mod.Shard.parse("2/4") == shard_mod.Shard(2, 4)
    for bad in ("0/4", "5/4", "1/0", "2", "a/b", "1/٣", "-1/2", "1/2/3", ""):
        with pytest.raises(UsageError):
            shard_mod.Shard.parse(bad)


def durations_doc(tmp_path, scenarios, seconds: dict[str, float], quick=False) -> Path:
    """A results.json as an earlier run wrote it, each scenario's config taking SECONDS."""
    run = RunResults(ENV, ["lab", "run"], quick=quick)
    run.started = run.finished = "2026-01-01T00:00:00+00:00"
    run.status = "passed"
    for sc in scenarios:
        sr = ScenarioResult(sc.variant(quick))
        sr.status = "passed"
        sr.duration_s = seconds[sc.name]
        sr.configs = [{"name": c.name, "status": "up", "duration_s": seconds[sc.name]}
                      for c in sc.configs]
        run.scenarios.append(sr)
    path = tmp_path / "earlier" / "results.json"
    run.write(path.parent)
    return path


ENV = environment.collect()


def test_balanced_by_recorded_durations(tmp_path):
    # The files say every scenario takes about as long (one 5 s step); the earlier run
    # says one of them took 100 s. By the files alone the load is even; by the record, the
    # long one gets a shard to itself and the others share the rest.
    scenarios = [one_config(tmp_path, f"s{i}", 5) for i in range(6)]
    static = shard_mod.plan(scenarios, 3)
    assert [len(u) for u in static.shards] == [2, 2, 2]
    record = durations_doc(tmp_path, scenarios, {"s0": 4, "s1": 6, "s2": 100, "s3": 5,
                                                 "s4": 7, "s5": 6})
    durations = shard_mod.Durations.load(record)
    p = shard_mod.plan(scenarios, 3, durations=durations)
    assert [u.scenario for u in p.shards[0]] == ["s2"]
    loads = sorted(p.load(k) for k in (1, 2, 3))
    # The other 28 s are dealt longest first to the less loaded: the two shards differ by
    # no more than the longest of those units (7 s), the bound of greedy dealing.
    assert loads[2] == pytest.approx(100) and loads[0] + loads[1] == pytest.approx(28)
    assert loads[1] - loads[0] <= 7
    assert p.digest != static.digest
    assert p.record(1)["durations"] == str(record)


def test_recorded_durations_scale_to_this_run(tmp_path):
    # A --quick run took 10 s with 1 repeat; a full run of 4 repeats is weighed as about 4x.
    sc = scenario(tmp_path, SPLIT)
    record = durations_doc(tmp_path, [sc], {"split": 10.0}, quick=True)
    d = shard_mod.Durations.load(record)
    quick_est = d.estimate(sc, sc.variant(True), "a")
    full_est = d.estimate(sc, sc.variant(False, 4), "a")
    assert quick_est == pytest.approx(10.0)
    # As the files' estimates scale: the steps four times, the lab's bring-up once.
    assert full_est / quick_est == pytest.approx(
        shard_mod.static_estimate(sc.variant(False, 4), "a") /
        shard_mod.static_estimate(sc.variant(True), "a"))
    assert 2.0 < full_est / quick_est < 4.0
    # Scenarios the earlier run did not have are estimated from their files.
    other = scenario(tmp_path, PAIRED)
    assert d.estimate(other, other, "big") == shard_mod.static_estimate(other, "big")


def test_durations_found_in_the_results_directory(tmp_path, suite):
    latest = durations_doc(tmp_path, suite, {"split": 50, "paired": 1, "single": 1})
    (tmp_path / "latest").symlink_to(latest.parent)
    assert shard_mod.find_durations(None, tmp_path).source == str(
        tmp_path / "latest" / "results.json")
    assert shard_mod.find_durations("static", tmp_path).source == "static"
    assert shard_mod.find_durations(None, tmp_path / "nothing").source == "static"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError):
        shard_mod.find_durations(str(tmp_path / "bad.json"), tmp_path)


def test_a_restricted_scenario_keeps_the_assertions_its_configs_can_match(suite):
    split = suite[0]
    assert [a.get("where") for a in split.restrict(["a", "c"]).assertions] == [None]
    assert [a.get("where") for a in split.restrict(["b"]).assertions] == \
        [None, {"config": "b"}]
    assert split.restrict(["c"]).dimensions == {"config": ["c"], "family": [6, 4]}


# -- shards as `lab run --shard` writes them, and the same suite unsharded ------------------------

def measure(sc, sr: ScenarioResult, noise: float = 0.0) -> None:
    """What running the (restricted) variant SC would record: every step at every point; or
    nothing, skipped, when it requires what no kernel has."""
    if "CONFIG_LAB_NO_SUCH_OPTION" in sc.requires:
        sr.status, sr.reason = "skipped", "requires CONFIG_LAB_NO_SUCH_OPTION: not set"
        return
    meta = sc.steps[0].kind.metrics
    for r in range(sc.repeats):
        for point in sc.points():
            for config in sc.configs:
                full = sc.full_point(config, point)
                for step in sc.steps_at(full):
                    if step.kind.name != "rr":
                        continue
                    tps = 1000.0 * (1.2 if full.get("family", 6) == 6 else 1.0) + r + noise
                    sr.record(step.name, "tps", meta["tps"], full, r, tps)
                    sr.record(step.name, "p99", meta["p99"], full, r, 100.0 + noise)
                    sr.check(step.name, full, r, "transactions completed", True)
    sr.configs = [{"name": c.name, "status": "up", "duration_s": 1.0} for c in sc.configs]
    sr.status = "passed"
    sr.evaluate()


def run_doc(scenarios, shard: dict | None = None, noise: float = 0.0,
            env: dict | None = None, configs: list[str] | None = None) -> dict:
    run = RunResults(copy.deepcopy(env or ENV), ["lab", "run"], quick=False)
    run.started, run.finished, run.status = "2026-01-01T00:00:00+00:00", \
        "2026-01-01T00:01:00+00:00", "passed"
    run.duration_s = 60.0
    variants = [sc.variant() for sc in scenarios]
    if configs is not None:
        variants = [v.restrict(configs) for v in variants]
    if shard is not None:
        mine: dict[str, list[str]] = {}
        for s, c in shard["points"]:
            mine.setdefault(s, []).append(c)
        variants = [v.restrict(mine[v.name]) for v in variants if v.name in mine]
    for v in variants:
        sr = ScenarioResult(v)
        sr.started, sr.finished = run.started, run.finished
        measure(v, sr, noise)
        run.scenarios.append(sr)
    run.shard = shard
    doc = run.to_json()
    results.validate(doc)
    return doc


def write_shards(tmp_path, scenarios, count, **kw) -> list[Path]:
    p = shard_mod.plan(scenarios, count)
    paths = []
    for k in range(1, count + 1):
        d = tmp_path / f"shard-{k}"
        d.mkdir()
        (d / "results.json").write_text(json.dumps(run_doc(scenarios, p.record(k),
                                                           noise=k, **kw)))
        paths.append(d / "results.json")
    return paths


def merged(paths, out, **kw) -> dict:
    doc = merge_mod.merge(merge_mod.Shards.load(paths), out, ["lab", "merge"], **kw)
    results.validate(doc)
    return doc


def structure(doc: dict) -> list:
    """What must not depend on sharding: scenarios, their points and series, in order."""
    return [(s["name"], s["status"], s["dimensions"], [c["name"] for c in s["configs"]],
             [(m["step"], m["metric"], m["point"], m["n"]) for m in s["metrics"]],
             [(a["metric"], a["point"], a["ok"]) for a in s["assertions"]],
             [(c["metric"], c["point"], c["of"], c["to"]) for c in s["comparisons"]],
             [(c["id"], c["point"], c["n"]) for c in s["claims"]],
             [(c["step"], c["point"], c["repeat"]) for c in s["checks"]])
            for s in doc["scenarios"]]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_merged_shards_are_the_unsharded_run(tmp_path, suite, count):
    # And a scenario skipped on every shard: its claims are `not measurable` once per point.
    suite = suite + [scenario(tmp_path, SPLIT.replace("name: split", "name: unrunnable")
                              .replace("repeats: 3\n",
                                       "repeats: 3\nrequires: [CONFIG_LAB_NO_SUCH_OPTION]\n"))]
    whole = run_doc(suite)
    assert [len(s["claims"]) for s in whole["scenarios"]] == [1, 0, 0, 1]
    doc = merged(write_shards(tmp_path, suite, count), tmp_path / "out")
    assert structure(doc) == structure(whole)
    assert doc["status"] == "passed" and len(doc["shards"]) == count
    ran = [tuple(p) for s in doc["shards"] for p in s["points"]]
    assert sorted(ran) == sorted(all_points(suite))
    by_config = {(s["name"], c["name"]): c["shard"] for s in doc["scenarios"]
                 for c in s["configs"]}
    for s in doc["shards"]:
        for sc, c in s["points"]:
            if sc != "unrunnable":  # skipped: no config was brought up, none is listed
                assert by_config[(sc, c)] == f"{s['index']}/{count}"
    # The claim measured in the shard that ran config b is judged, not `not measurable`.
    claim = next(c for s in doc["scenarios"] for c in s["claims"])
    assert claim["ratio"] is not None and claim["scenario"] == "split"
    assert doc["scenarios"][-1]["status"] == "skipped"
    paths = write_reports(doc, tmp_path / "out")
    page = (tmp_path / "out" / "report.md").read_text()
    assert "split" in page and "paired" in page and all(p.exists() for p in paths)


def test_an_empty_shard_merges(tmp_path, tmp_path_factory):
    suite = [scenario(tmp_path, SINGLE)]
    out = tmp_path_factory.mktemp("shards")
    paths = write_shards(out, suite, 3)
    doc = merged(paths, out / "merged")
    assert structure(doc) == structure(run_doc(suite))
    empty = [p for p in paths if not json.loads(p.read_text())["scenarios"]]
    assert len(empty) == 2
    write_reports(results.load(empty[0]), empty[0].parent)
    assert "0 of the suite's 1 (scenario, config) points" in \
        (empty[0].parent / "report.md").read_text()
    write_reports(doc, out / "merged")
    assert "Merged from 3 shards" in (out / "merged" / "report.md").read_text()


def test_a_shard_of_a_scenario_run_in_a_vm_runs_only_its_configs(tmp_path, monkeypatch):
    # A scenario this kernel cannot run goes into a kernel VM (--vm) as one `lab run` of its
    # file: a shard passes its configs on (--config), so the guest runs only those.
    import io
    import types

    from lab import vm
    from lab.scenarios.progress import Progress
    from lab.scenarios.runner import Runner
    from lab.traffic import rr

    sc = scenario(tmp_path, SPLIT.replace("repeats: 3\n",
                                          "repeats: 3\nrequires: [CONFIG_LAB_NO_SUCH_OPTION]\n"))
    in_guest = scenario(tmp_path, SPLIT, "split-in-guest")  # the guest's kernel has it
    calls = []

    def fake_vm_run(argv, **kw):
        calls.append(argv)
        configs = [argv[i + 1] for i, a in enumerate(argv) if a == "--config"]
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(run_doc([in_guest], configs=configs)))
        return types.SimpleNamespace(returncode=0, stdout="", stderr="", kernel="6.12.0",
                                     accel="tcg")

    monkeypatch.setattr(vm, "run", fake_vm_run)
    monkeypatch.setattr(rr, "binary", lambda: None)
    monkeypatch.delenv("LAB_VM", raising=False)
    record = shard_mod.plan([sc], 2).record(2)
    mine = [c for _, c in record["points"]]
    run = Runner(tmp_path / "out", vm=True, progress=Progress(io.StringIO(), "lines"))
    doc = run.run([sc], shard=record).to_json()
    (argv,) = calls
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--config"] == mine
    assert [c["name"] for c in doc["scenarios"][0]["configs"]] == mine
    assert doc["shard"] == record


def test_lab_run_config_picks_configs_and_refuses_unknown_ones(tmp_path):
    path = Path(scenario(tmp_path, SPLIT).file)
    env = {**os.environ, "CI": "true"}
    bad = subprocess.run(LAB + ["run", str(path), "--config", "z", "--check"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "has no config 'z'" in bad.stderr and "a, b, c" in bad.stderr
    both = subprocess.run(LAB + ["run", str(path), "--config", "a", "--shard", "1/2"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert both.returncode == 2 and "not with --shard" in both.stderr


# -- refusals -----------------------------------------------------------------------------------

def rewrite(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def refused(paths, *needles, **kw) -> str:
    with pytest.raises(UsageError) as exc:
        merged(paths, paths[0].parent.parent / "out", **kw)
    text = str(exc.value)
    for needle in needles:
        assert needle in text, text
    return text


def test_merge_refuses_other_commits(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    rewrite(b, lambda d: d["environment"].setdefault("lab", {}).update(commit="f00d"))
    refused([a, b], "different commit", "f00d", str(b), "--allow-mixed")
    doc = merged([a, b], tmp_path / "out", allow_mixed=True)
    assert all("environment" in s for s in doc["scenarios"])  # each says where it ran


def test_merge_refuses_other_kernels(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    rewrite(b, lambda d: d["environment"]["kernel"].update(release="6.1.0-99-amd64"))
    refused([a, b], "different kernel", "6.1.0-99-amd64")
    merged([a, b], tmp_path / "out", allow_mixed=True)


def test_merge_refuses_other_suites(tmp_path, suite):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a, _ = write_shards(tmp_path / "one", suite, 2)
    _, b = write_shards(tmp_path / "two", suite[:2], 2)
    refused([a, b], "different suite")


def test_merge_refuses_other_n(tmp_path, suite):
    (tmp_path / "two").mkdir()
    (tmp_path / "three").mkdir()
    a, _ = write_shards(tmp_path / "two", suite, 2)
    _, b, c = write_shards(tmp_path / "three", suite, 3)
    refused([a, b, c], "different N")


def test_merge_refuses_plans_weighed_differently(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    rewrite(b, lambda d: d["shard"].update(plan="0123456789abcdef", durations="x.json"))
    refused([a, b], "different plan", "--durations")


def test_merge_refuses_a_shard_given_twice(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    copy_a = tmp_path / "again.json"
    copy_a.write_text(a.read_text())
    refused([a, b, copy_a], "shard 1/2 is given twice", "is in two shards")


def test_merge_refuses_overlapping_points_even_when_mixed(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    extra = json.loads(a.read_text())["shard"]["points"][0]
    other = json.loads(a.read_text())["scenarios"][0]

    def overlap(d):
        d["shard"]["points"].append(extra)
        if other["name"] not in {s["name"] for s in d["scenarios"]}:
            d["scenarios"].append(other)
    rewrite(b, overlap)
    refused([a, b], f"{extra[0]} config {extra[1]} is in two shards", allow_mixed=True,
            allow_missing=True)


def test_merge_refuses_missing_shards_and_points(tmp_path, suite):
    a, b, c = write_shards(tmp_path, suite, 3)
    text = refused([a, c], "shard(s) 2/3 missing", "in no shard's results", "--allow-missing")
    assert "different" not in text
    doc = merged([a, c], tmp_path / "out", allow_missing=True)
    lacking = {tuple(p) for p in json.loads(b.read_text())["shard"]["points"]}
    have = {(s["name"], c["name"]) for s in doc["scenarios"] for c in s["configs"]}
    assert not lacking & have and have
    # An interrupted shard's unreached scenarios are missing points too.
    rewrite(b, lambda d: d.update(scenarios=d["scenarios"][:-1], status="interrupted"))
    refused([a, b, c], "in no shard's results")
    assert merged([a, b, c], tmp_path / "out2", allow_missing=True)["status"] == "interrupted"


def test_merge_refuses_to_write_over_a_shard(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    with pytest.raises(UsageError, match="would overwrite it"):
        merged([a, b], a.parent)


def test_merge_refuses_what_is_not_a_shard(tmp_path, suite):
    path = tmp_path / "whole.json"
    path.write_text(json.dumps(run_doc(suite)))
    with pytest.raises(UsageError, match="not a shard's results"):
        merge_mod.Shards.load([path])


def test_lab_merge_cli_exit_codes(tmp_path, suite):
    a, b = write_shards(tmp_path, suite, 2)
    env = {**os.environ, "CI": "true"}
    ok = subprocess.run(LAB + ["merge", str(a.parent), str(b), "--out", str(tmp_path / "m")],
                        capture_output=True, text=True, env=env, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert results.load(tmp_path / "m" / "results.json")["shards"]
    assert (tmp_path / "m" / "report.html").exists()
    bad = subprocess.run(LAB + ["merge", str(a), "--out", str(tmp_path / "m2")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "2/2 missing" in bad.stderr
    assert not (tmp_path / "m2").exists()  # refused before anything is written
    (tmp_path / "junk.json").write_bytes(b"\xff{")
    junk = subprocess.run(LAB + ["merge", str(a), str(tmp_path / "junk.json"), "--out",
                                 str(tmp_path / "m3")], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    assert junk.returncode == 2 and "junk.json: not a results document" in junk.stderr
    assert not (tmp_path / "m3").exists()
