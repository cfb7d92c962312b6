"""The datapath contract (lab/datapath/contract.py) and its registry: a feature that is not
the lab's plugs in by being listed, and the registry's own features fit together."""

from __future__ import annotations

import textwrap

import pytest

from lab import topology
from lab.commands import bench as bench_command
from lab.commands import build_parser
from lab.datapath.contract import Datapath
from lab.datapath.registry import DATAPATHS, catalogue
from lab.errors import InputError
from toy_datapath import TOPOLOGY, ToyDatapath, parse_args


def test_a_new_feature_derives_into_the_model_through_the_contract():
    toy = ToyDatapath()
    topo = topology.parse(TOPOLOGY, file="toy.yaml", datapaths=(*DATAPATHS, toy))
    router = topo.node("router")
    assert router.sysctls["net.ipv6.conf.all.hop_limit"] == "7"
    assert [(b.object, b.program, b.hook) for b in router.interfaces["eth-client"].bpf] == [
        ("pktcount", "pktcount_tc", "tc-ingress")]
    assert topo.node("client").interfaces["eth0"].bpf == []
    # The model keeps what was derived, for `lab down` and Lab.running.
    again = type(topo).from_json(topo.to_json())
    assert again.node("router").sysctls == router.sysctls


def test_its_section_exists_only_when_the_feature_is_listed():
    with pytest.raises(InputError) as e:
        topology.parse(TOPOLOGY, file="toy.yaml", datapaths=DATAPATHS)
    assert (e.value.line, e.value.col) == (10, 3)
    assert e.value.message.startswith("unknown key 'toy' in datapath")


def test_its_schema_and_its_check_report_at_the_bad_value():
    toy = (*DATAPATHS, ToyDatapath())
    with pytest.raises(InputError) as e:
        topology.parse(TOPOLOGY.replace("hop_limit: 7", "hop_limit: 300"), file="toy.yaml",
                       datapaths=toy)
    assert str(e.value).startswith("toy.yaml:10:34: datapath.toy.hop_limit: 300 is greater")
    with pytest.raises(InputError) as e:
        topology.parse(TOPOLOGY.replace("toy: {node: router", "toy: {node: nowhere"), file="toy.yaml",
                       datapaths=toy)
    assert str(e.value) == "toy.yaml:10:15: no node 'nowhere'"


def test_its_commands_bench_kinds_and_bench_cases_join_the_cli(capsys):
    args = parse_args(["toy", "--hop-limit", "9"])
    assert args.handler(args) == 0 and capsys.readouterr().out == "toy 9\n"
    args = parse_args(["bench", "toy"])
    assert args.handler(args) == 3
    args = parse_args(["bench", "prog", "--list"])
    assert args.handler(args) == 0
    assert "toy-count" in capsys.readouterr().out
    with pytest.raises(SystemExit):     # not without the toy
        build_parser().parse_args(["toy"])


def test_its_step_kinds_join_the_scenarios(tmp_path):
    (tmp_path / "toy.yaml").write_text(TOPOLOGY)
    text = textwrap.dedent("""\
        topology: toy.yaml
        repeats: 1
        steps:
          - {kind: toy_hop_limit, with: {node: router}}
        """)
    (tmp_path / "s.yaml").write_text(text)
    toy = ToyDatapath()
    from lab.scenarios.model import load

    sc = load(tmp_path / "s.yaml", catalogue((*DATAPATHS, toy)))
    assert [s.kind.name for s in sc.steps] == ["toy_hop_limit"]
    assert sc.configs[0].topology.node("router").sysctls["net.ipv6.conf.all.hop_limit"] == "7"
    assert toy in sc.catalogue.datapaths     # the runner's labs get the feature too
    with pytest.raises(InputError, match="unknown key 'toy' in datapath"):
        load(tmp_path / "s.yaml", catalogue())
    plain = TOPOLOGY[:TOPOLOGY.index("datapath:")]
    (tmp_path / "toy.yaml").write_text(plain)
    with pytest.raises(InputError, match="unknown step kind 'toy_hop_limit'"):
        load(tmp_path / "s.yaml", catalogue())


def test_a_feature_needs_a_name():
    with pytest.raises(TypeError, match="needs a `name`"):
        class Nameless(Datapath):
            pass


# -- the registry's own features ----------------------------------------------------------------

def test_the_registry_lists_distinct_features():
    assert all(isinstance(d, Datapath) for d in DATAPATHS)
    names = [d.name for d in DATAPATHS]
    sections = [d.section for d in DATAPATHS if d.section]
    assert len(set(names)) == len(names) and len(set(sections)) == len(sections)
    assert set(sections) == {"translator", "gateway"}
    objects = [o for d in DATAPATHS for o in d.object_setups()]
    assert len(set(objects)) == len(objects)
    assert set(objects) == {"xlate", "gateway", "hostrouting"}


def test_what_the_features_offer_fits_together():
    kinds = catalogue().kinds          # raises if two offer one step kind
    assert {"xlate_source", "dns64_resolve", "bigtcp_sizes", "iperf3"} <= set(kinds)
    cases = bench_command.prog_cases()  # raises if two offer one case
    assert {"pktcount-tc", "xlate-tc", "xlate-xdp", "gateway-tc", "gateway-xdp"} <= set(cases)
    parser = build_parser()             # argparse refuses two commands of one name
    for argv in (["xlate", "--in", "a", "--out", "b"], ["service", "list"], ["agent"],
                 ["bigtcp", "lab1"], ["bench", "gateway"], ["bench", "prog", "xlate-tc"]):
        assert parser.parse_args(argv).handler


def test_host_routing_derives_its_programs_through_the_contract():
    text = textwrap.dedent("""\
        nodes:
          gw: {role: gateway}
          node1: {role: node, pods: {count: 1, ipv6: "fd00:10:244:1::10", routing: bpf}}
        links:
          - ends:
              - {node: gw, ifname: eth0, addresses: ["fd00::1/64"]}
              - {node: node1, ifname: eth0, addresses: ["fd00::2/64"]}
        """)
    without = topology.parse(text)
    assert all(not i.bpf for i in without.node("node1").interfaces.values())
    topo = topology.parse(text, datapaths=DATAPATHS)
    node1 = topo.node("node1")
    assert [b.program for b in node1.interfaces["lxc0"].bpf] == ["hr_from_pod"]
    assert [b.program for b in node1.interfaces["eth0"].bpf] == ["hr_to_pod"]
    assert node1.sysctls["net.ipv6.conf.lxc0.forwarding"] == "1"
