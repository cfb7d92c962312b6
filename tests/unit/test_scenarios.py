"""Scenario files: schema and meaning checked at load, errors at file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab import scenarios
from lab.datapath.registry import catalogue
from lab.errors import InputError
from lab.scenarios import Metric, registry, step
from lab.scenarios.model import load

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies" / "bigtcp.yaml"

BASE = f"""\
topology: {TOPOLOGY}
matrix:
  family: [6, 4]
  placement: [same-cpu, cross-cpu]
repeats: 2
quick: {{repeats: 1, matrix: {{placement: [same-cpu]}}}}
steps:
  - kind: rr
    name: small
    with: {{client: client, server: server, family: "${{family}}", placement: "${{placement}}",
           seconds: 0.5}}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        load(path)
    return exc.value


def test_shipped_scenarios_load_and_check():
    files = sorted(scenarios.scenarios_dir().glob("*.yaml"))
    assert {f.stem for f in files} >= {"reachability", "baseline"}
    for f in files:
        sc = load(f, catalogue())
        assert sc.steps and sc.repeats >= 1


def test_matrix_points_quick_variant_and_templates(tmp_path):
    sc = load(write(tmp_path, BASE))
    assert sc.points() == [{"family": 6, "placement": "same-cpu"},
                           {"family": 6, "placement": "cross-cpu"},
                           {"family": 4, "placement": "same-cpu"},
                           {"family": 4, "placement": "cross-cpu"}]
    assert not sc.has_configs and "config" not in sc.dimensions
    quick = sc.variant(quick=True)
    assert quick.repeats == 1 and len(quick.points()) == 2
    assert sc.variant(quick=True, repeats=5).repeats == 5
    params = sc.resolve(sc.steps[0], {"family": 4, "placement": "cross-cpu"})
    # "${family}" alone keeps the matrix value's type; defaults of the step kind are filled in
    assert params["family"] == 4 and params["placement"] == "cross-cpu"
    assert params["request"] == 1 and params["warmup"] == 0.2


def test_unknown_key_in_a_step_has_line_and_column(tmp_path):
    e = error(tmp_path, BASE + "    when: {family: 6}\n    repeat: 3\n")
    assert (e.line, e.col) == (13, 5)
    assert "unknown key 'repeat'" in e.message and "repeats" not in e.message
    assert str(e).startswith(f"{tmp_path / 's.yaml'}:13:5: ")


def test_step_parameters_are_checked_against_the_kinds_schema_per_point(tmp_path):
    text = BASE.replace("family: [6, 4]", "family: [6, 5]")
    e = error(tmp_path, text)
    # the value comes from the matrix: reported where it is used, with the point
    assert (e.line, e.col) == (10, 52)
    assert "5 is not one of: 4, 6" in e.message and "(at family=5" in e.message


def test_unknown_parameter_of_a_step_kind(tmp_path):
    e = error(tmp_path, BASE.replace("seconds: 0.5}", "secs: 0.5}"))
    assert (e.line, e.col) == (11, 12)
    assert "unknown key 'secs'" in e.message and "did you mean 'seconds'" in e.message


def test_undefined_template_variable(tmp_path):
    e = error(tmp_path, BASE.replace('"${placement}"', '"${where}"'))
    assert e.line == 10 and "${where} is neither a param nor a matrix dimension" in e.message


def test_unknown_step_kind_suggests_a_close_one(tmp_path):
    e = error(tmp_path, BASE.replace("kind: rr", "kind: iperf"))
    assert (e.line, e.col) == (8, 11)
    assert "unknown step kind 'iperf' (did you mean 'iperf3'?)" in e.message


def test_node_names_are_checked_against_the_topology(tmp_path):
    e = error(tmp_path, BASE.replace("server: server", "server: nosuch"))
    assert e.line == 10 and "no node 'nosuch' in topology" in e.message


def test_assertion_on_a_metric_the_step_does_not_record(tmp_path):
    e = error(tmp_path, BASE + "assert:\n  - {metric: small.throughput, min: 1}\n")
    assert (e.line, e.col) == (13, 14)
    assert "records no metric 'throughput'" in e.message and "p99" in e.message


def test_assertion_where_names_a_dimension_value_that_does_not_exist(tmp_path):
    e = error(tmp_path, BASE + "assert:\n  - {metric: small.tps, min: 1, where: {family: 5}}\n")
    assert e.line == 13 and "family has no value 5" in e.message


def test_compare_of_and_to_must_name_the_same_dimensions(tmp_path):
    e = error(tmp_path, BASE + "compare:\n  - {metric: small.tps, of: {family: 6}, "
                               "to: {placement: same-cpu}}\n")
    assert e.line == 13 and "must set the same dimensions" in e.message


def test_chart_metrics_must_share_a_unit(tmp_path):
    e = error(tmp_path, BASE + "charts:\n  - {title: t, metrics: [small.tps, small.p99]}\n")
    assert e.line == 13 and "must share a unit" in e.message


CLAIM = ("compare:\n  - metric: small.tps\n    of: {family: 6}\n    to: {family: 4}\n"
         "    claims:\n      - {id: c1, claim: 'IPv6 is faster', published: 1.2, source: s, "
         "at: {placement: same-cpu}}\n")


def test_claims_are_checked_where_they_are_declared(tmp_path):
    sc = load(write(tmp_path, BASE + CLAIM))
    assert sc.comparisons[0]["claims"][0]["id"] == "c1"
    e = error(tmp_path, BASE + CLAIM.replace("at: {placement: same-cpu}", "at: {family: 6}"))
    assert e.line == 17 and "'family' is what the ratio compares" in e.message
    e = error(tmp_path, BASE + CLAIM.replace("published: 1.2, ", ""))
    assert e.line == 17 and "published" in e.message
    e = error(tmp_path, BASE + CLAIM.replace("published: 1.2", "published: 1.2, parity: 0.1"))
    assert e.line == 17 and "a parity claim compares with 1" in e.message
    twice = CLAIM + "  - metric: small.p99\n    of: {family: 6}\n    to: {family: 4}\n" \
                    "    claims: [{id: c1, claim: x, published: 0.9, source: s}]\n"
    e = error(tmp_path, BASE + twice)
    assert e.line == 21 and "claim id 'c1' is used twice" in e.message


def test_cdf_and_timeline_charts_name_steps_that_keep_such_records(tmp_path):
    ok = BASE + "charts:\n  - {title: t, cdf: small, where: {placement: same-cpu}}\n"
    assert load(write(tmp_path, ok)).charts[0]["cdf"] == "small"
    e = error(tmp_path, BASE + "charts:\n  - {title: t, timeline: small.throughput}\n")
    assert e.line == 13 and "keeps no series 'throughput' per interval" in e.message
    e = error(tmp_path, BASE + "charts:\n  - {title: t, cdf: small, x: [family]}\n")
    assert e.line == 13 and "`x` does not apply" in e.message
    many = BASE.replace("placement: [same-cpu, cross-cpu]", "placement: [same-cpu, cross-cpu]"
                        "\n  size: [1, 2, 3]")
    e = error(tmp_path, many + "charts:\n  - {title: t, cdf: small}\n")
    assert e.line == 14 and "would draw 12 lines" in e.message


def test_a_config_patch_that_breaks_the_topology_is_reported_at_the_patch(tmp_path):
    text = BASE + "configs:\n  small:\n    patch: {defaults: {gso_max_size: 10000000}}\n  big: {}\n"
    e = error(tmp_path, text)
    assert (e.file, e.line) == (str(tmp_path / "s.yaml"), 14)
    assert "with this patch" in e.message and "gso_max_size" in e.message


def test_configs_add_a_dimension_and_quick_can_select_them(tmp_path):
    text = BASE.replace("quick: {repeats: 1, matrix: {placement: [same-cpu]}}",
                        "quick: {configs: [big]}")
    text += "configs:\n  small:\n    patch: {defaults: {gso_max_size: 65536}}\n  big: {}\n"
    sc = load(write(tmp_path, text))
    assert sc.dimensions["config"] == ["small", "big"]
    assert [c.name for c in sc.variant(quick=True).configs] == ["big"]
    topo = sc.configs[0].load_topology("t1")
    assert topo.interface("client", "eth0").gso_max_size == 65536
    assert sc.configs[1].load_topology("t2").interface("client", "eth0").gso_max_size == 185000


def test_missing_topology_file(tmp_path):
    e = error(tmp_path, "topology: nowhere.yaml\nsteps: [{kind: reach}]\n")
    assert (e.line, e.col) == (1, 11) and "topology file nowhere.yaml not found" in e.message


def test_requirement_names_are_syntax_checked(tmp_path):
    e = error(tmp_path, BASE + "requires: [Big TCP]\n")
    assert e.line == 12 and "requires[0]" in e.message


def test_step_kinds_register_with_schema_and_metrics():
    @step("unit-test-kind", schema={"type": "object",
                                    "properties": {"n": {"type": "integer", "default": 3}}},
          metrics={"things": Metric("things/s", "higher")})
    def kind(ctx, p):
        """Doc line one."""

    k = registry.by_name([kind])["unit-test-kind"]
    assert k.description == "Doc line one." and k.with_defaults({}) == {"n": 3}
    assert k.metrics["things"].unit == "things/s" and k.module == __name__
    other = step("unit-test-kind", schema={"type": "object"})(kind.run)
    with pytest.raises(ValueError, match="offered twice"):
        registry.by_name(registry.builtin().kinds.values(), [kind], [other])
    assert "unit-test-kind" not in registry.builtin().kinds     # nothing registered globally
    with pytest.raises(ValueError, match="better"):
        Metric("x", "faster")
