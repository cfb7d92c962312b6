"""`lab run` (scenarios -> results and reports), `lab report` and `lab compare`."""

from __future__ import annotations

import datetime
import json
import signal
import sys
from pathlib import Path

from lab.digits import int_arg, real_arg
from lab.errors import EXIT_FAILURE, UsageError
from lab.datapath.registry import catalogue
from lab.scenarios import default_suite, load, scenarios_dir
from lab.scenarios.progress import Progress
from lab.scenarios.results import RunResults

EXIT_INTERRUPTED = 130


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run scenarios: results.json, report.md, report.html",
        description="Run scenario files (default: the default suite of scenarios/). Results "
                    "go to DIR/results.json, reports to DIR/report.md and DIR/report.html. "
                    "Exit 0 when nothing failed (skipped scenarios do not fail a run), 1 on a "
                    "failed assertion or error, 2 on bad input, 130 when interrupted.")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="scenario files, or names of files in scenarios/")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="results directory (default results/run-<time>; results/latest "
                        "points to the newest)")
    p.add_argument("--repeat", type=int_arg(1, 1000), metavar="N", help="repeats per scenario (overrides "
                                                           "the files and --quick)")
    p.add_argument("--quick", action="store_true",
                   help="one repeat and fewer values, as each scenario's `quick:` says")
    p.add_argument("--vm", action="store_true",
                   help="run scenarios whose requirements this kernel lacks inside a kernel "
                        "VM (lab vm) instead of skipping them")
    p.add_argument("--vm-kernel", metavar="VERSION", help="kernel for --vm (default: newest "
                                                          "cloud kernel)")
    p.add_argument("--kernels", metavar="LIST",
                   help="a kernel matrix: run the scenarios on each kernel of LIST (e.g. "
                        "host,6.12,7.2,7.3: `host` natively, the others in one lab vm boot "
                        "each) into one results.json and report with a kernel column")
    p.add_argument("--config", action="append", metavar="NAME",
                   help="run only config NAME of the scenarios (repeatable; each scenario "
                        "must have it)")
    p.add_argument("--shard", metavar="K/N",
                   help="run shard K of N: a balanced part of the suite's (scenario, config) "
                        "points, the same on every machine given the same suite and "
                        "durations; join the shards with `lab merge` (docs/sharding.md)")
    p.add_argument("--durations", metavar="FILE",
                   help="with --shard: weigh the shards by the durations an earlier "
                        "results.json recorded (default: the results directory's latest "
                        "run if there is one), or `static` for estimates from the scenario "
                        "files; every shard of a run must be given the same")
    p.add_argument("--topology", type=Path, metavar="FILE",
                   help="run the SCENARIOs on this topology file instead of their own (the "
                        "same nodes arranged otherwise, e.g. split across hosts: "
                        "docs/multihost.md)")
    p.add_argument("--list", action="store_true", help="list scenarios and step kinds")
    p.add_argument("--check", action="store_true",
                   help="only load and check the scenario files (with --shard: and print "
                        "the shard's points)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "merge", help="join the results of `lab run --shard` into one results.json and report",
        description="Join shards' results (their results.json, or the directories holding "
                    "them) into DIR/results.json, DIR/report.md and DIR/report.html, as one "
                    "unsharded `lab run` writes them. Shards of different N, plans, suites, "
                    "commits or kernels, a point in two shards, and missing shards are "
                    "refused (exit 2) with what differs. Exit 0 when nothing failed, 1 "
                    "otherwise.")
    p.add_argument("shards", nargs="+", type=Path, metavar="SHARD",
                   help="a shard's results.json or its directory")
    p.add_argument("--out", type=Path, metavar="DIR", required=True,
                   help="where to write the merged results and reports")
    p.add_argument("--allow-mixed", action="store_true",
                   help="merge shards of different commits, kernels, suites or plans (each "
                        "scenario then records the environment it ran in)")
    p.add_argument("--allow-missing", action="store_true",
                   help="merge even though shards or points are missing (a partial run)")
    p.set_defaults(handler=cmd_merge)

    p = sub.add_parser("report", help="write report.md and report.html from a results.json",
                       description="Regenerate the reports of a run (e.g. after an upgrade "
                                   "of the report, or for results copied from elsewhere).")
    p.add_argument("results", type=Path, metavar="RESULTS.json")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where to write them (default: beside RESULTS.json)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "compare", help="regression table of two results.json; exit 1 on a regression",
        description="Compare every metric of OLD and NEW: NEW / OLD with its 95%% confidence "
                    "interval (Welch's t on the log samples) and a verdict. A change in the "
                    "worse direction (from each metric's definition) that lies outside the "
                    "interval and beyond the threshold is a regression, and so is a metric "
                    "OLD has and NEW lacks: exit code 1. Different units, or NaN: exit 2.")
    p.add_argument("old", type=Path, metavar="OLD.json")
    p.add_argument("new", type=Path, metavar="NEW.json")
    p.add_argument("--threshold", type=real_arg(0), default=10.0, metavar="PCT",
                   help="smallest change that counts, in percent (default 10)")
    p.add_argument("--all", action="store_true", help="show unchanged metrics too")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", type=Path, metavar="OUT",
                   help="also write the comparison as a self-contained HTML page")
    p.set_defaults(handler=cmd_compare)


def _resolve(names: list[str], topology: Path | None = None):
    out = []
    for name in names:
        path = Path(name)
        if not path.exists() and not name.endswith((".yaml", ".yml")):
            path = scenarios_dir() / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(p.stem for p in sorted(scenarios_dir().glob("*.yaml")))
            raise UsageError(f"no scenario '{name}' (a file, or one of: {known})")
        out.append(load(path, catalogue(), topology))
    return out


def _list() -> int:
    print("scenarios (scenarios/):")
    for path in sorted(scenarios_dir().glob("*.yaml")):
        sc = load(path, catalogue())
        print(f"  {sc.name:<20} {sc.suite:<8} {sc.description.strip()[:90]}")
    print("step kinds:")
    for name, kind in catalogue().kinds.items():
        print(f"  {name:<20} {kind.description}")
    return 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    if args.list:
        return _list()
    if args.repeat is not None and args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    if args.topology is not None and not args.scenarios:
        raise UsageError("--topology needs the scenarios to run on it (e.g. `lab run nat46 "
                         "--topology FILE`)")
    if args.topology is not None and (args.kernels or args.vm):
        raise UsageError("--topology runs here, on the topology's hosts: not with --kernels "
                         "or --vm")
    scenarios = _resolve(args.scenarios, args.topology) if args.scenarios \
        else default_suite(catalogue())
    if not scenarios:
        raise UsageError(f"no scenarios to run (none in {scenarios_dir()})")
    configs = _configs(args, scenarios)
    shard = _shard(args, scenarios)
    if args.check:
        for sc in scenarios:
            print(f"{sc.file}: ok ({sc.name}: {len(sc.steps)} steps, "
                  f"{len(sc.points()) * len(sc.configs)} points)")
        if shard is not None:
            print(f"shard {shard['index']}/{shard['count']} (plan {shard['plan']}, "
                  f"durations: {shard['durations']}): {len(shard['points'])} of "
                  f"{len(shard['suite']['points'])} points, ~{shard['estimate_s']:.0f} s")
            for scenario, config in shard["points"]:
                print(f"  {scenario} {config}")
        return 0

    from lab import features
    from lab.scenarios.report import write_reports
    from lab.scenarios.runner import Runner

    features.require_privileges()
    out = args.out or Path("results") / datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    progress = Progress()
    if args.kernels:
        return _run_kernels(args, scenarios, out, progress)
    runner = Runner(out, quick=args.quick, repeats=args.repeat, vm=args.vm,
                    vm_kernel=args.vm_kernel, progress=progress, command=["lab", *sys.argv[1:]])
    if shard is not None:
        progress.message(f"lab run: shard {shard['index']}/{shard['count']}: "
                         f"{len(shard['points'])} of {len(shard['suite']['points'])} points, "
                         f"~{shard['estimate_s']:.0f} s estimated (durations: "
                         f"{shard['durations']})")
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        results = runner.run(scenarios, shard=shard, configs=configs)
        doc = results.to_json()
        paths = write_reports(doc, out)
    finally:
        signal.signal(signal.SIGTERM, old)
    if args.out is None:
        _point_latest(out)
    _summary(results, out, paths)
    if results.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if results.status != "passed" else 0


def _configs(args, scenarios) -> list[str] | None:
    """--config NAME...: checked against every scenario as it will run (--quick may leave
    configs out)."""
    if not args.config:
        return None
    if args.shard or args.kernels:
        raise UsageError("--config picks configs by hand: not with --shard or --kernels")
    for sc in scenarios:
        have = [c.name for c in sc.variant(args.quick, args.repeat).configs]
        lacking = [n for n in args.config if n not in have]
        if lacking:
            raise UsageError(f"{sc.file}: scenario {sc.name} has no config "
                             f"{', '.join(map(repr, lacking))}"
                             f"{' with --quick' if args.quick else ''} (it has: "
                             f"{', '.join(have)})")
    return list(dict.fromkeys(args.config))


def _shard(args, scenarios) -> dict | None:
    """The shard record of --shard K/N (None without it)."""
    from lab.scenarios import shard as shard_mod

    if args.shard is None:
        if args.durations is not None:
            raise UsageError("--durations weighs shards: it goes with --shard K/N")
        return None
    if args.kernels:
        raise UsageError("--shard with --kernels: give each kernel its own CI job instead "
                         "(docs/sharding.md)")
    k = shard_mod.Shard.parse(args.shard)
    results_dir = args.out.parent if args.out is not None else Path("results")
    durations = shard_mod.find_durations(args.durations, results_dir)
    plan = shard_mod.plan(scenarios, k.count, quick=args.quick, repeats=args.repeat,
                          durations=durations)
    return plan.record(k.index)


def cmd_merge(args) -> int:
    from lab.scenarios import merge, results
    from lab.scenarios.report import write_reports

    shards = merge.Shards.load(args.shards)
    doc = merge.merge(shards, args.out, ["lab", *sys.argv[1:]],
                      allow_mixed=args.allow_mixed, allow_missing=args.allow_missing)
    results.validate(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    paths = write_reports(doc, args.out)
    return _outcome(f"lab merge: {len(doc['shards'])} shard(s) of "
                    f"{doc['shards'][0]['count']}", doc, path, paths)


def _outcome(headline: str, doc: dict, path: Path, paths: list[Path]) -> int:
    """Print a joined run's status per scenario and where its files are; its exit code."""
    print(f"{headline}: {doc['status']}")
    for s in doc["scenarios"]:
        reason = f": {s['reason']}" if s["reason"] and s["status"] != "passed" else ""
        print(f"  {s['name']:<28} {s['status']:<11}{reason[:150]}")
    print(f"results: {path}")
    for p in paths:
        print(f"report:  {p}")
    return EXIT_FAILURE if doc["status"] != "passed" else 0


def _run_kernels(args, scenarios, out: Path, progress: Progress) -> int:
    from lab.scenarios.kernels import KernelMatrix, parse_kernels
    from lab.scenarios.report import write_reports

    if args.vm or args.vm_kernel:
        raise UsageError("--kernels says where each run happens: without --vm/--vm-kernel")
    labels = parse_kernels(args.kernels)
    matrix = KernelMatrix(out, labels, quick=args.quick, repeats=args.repeat,
                          progress=progress, command=["lab", *sys.argv[1:]])
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        doc = matrix.run(scenarios)
    except KeyboardInterrupt:
        progress.message(f"lab run: interrupted; what each kernel wrote is in {out}/kernels")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, old)
        progress.finish()
    paths = write_reports(doc, out)
    if args.out is None:
        _point_latest(out)
    return _outcome(f"lab run --kernels {','.join(labels)}", doc, out / "results.json", paths)


def _point_latest(out: Path) -> None:
    latest = out.parent / "latest"
    try:
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(out.name)
    except OSError:
        pass


def _summary(results: RunResults, out: Path, paths: list[Path]) -> None:
    print(f"lab run: {results.status} in {results.duration_s:.0f} s")
    for sr in results.to_json()["scenarios"]:
        reason = f": {sr['reason']}" if sr["reason"] and sr["status"] != "passed" else ""
        print(f"  {sr['name']:<20} {sr['status']:<11} {sr.get('duration_s', 0):6.0f} s"
              f"{reason}")
    print(f"results: {out / 'results.json'}")
    for p in paths:
        print(f"report:  {p}")


def cmd_report(args) -> int:
    from lab.scenarios import results
    from lab.scenarios.report import write_reports

    doc = results.load(args.results)
    for p in write_reports(doc, args.out or args.results.parent):
        print(p)
    return 0


def cmd_compare(args) -> int:
    from lab.scenarios import compare, results

    if args.threshold < 0:
        raise UsageError("--threshold must be a percentage >= 0")
    old, new = results.load(args.old), results.load(args.new)
    table = compare.compare(old, new, args.threshold / 100.0)
    if args.json:
        import json

        print(json.dumps(table.to_json(), indent=1))
    else:
        sys.stdout.write(table.render(show_all=args.all))
    if args.html:
        from lab.scenarios import compare_report

        page = compare_report.write(table, old, new, args.old, args.new, args.html)
        print(f"report: {page}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_FAILURE if table.regressions else 0

