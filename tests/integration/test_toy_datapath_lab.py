"""A feature that is not the lab's (tests/toy_datapath) brought up, run and torn down through
the contract alone: the lab loads and sets up the objects it derives, starts and stops what it
runs, and `lab run`'s labs get it from the scenario's catalogue."""

from __future__ import annotations

import io
import textwrap

import pytest

from lab import netns
from lab.bpf.topology import recorded_attachments
from lab.datapath.registry import DATAPATHS, catalogue
from lab.journal import ProcessStarted
from lab.lab import Lab
from lab.scenarios.model import load
from lab.scenarios.progress import Progress
from lab.scenarios.runner import Runner
from lab.state import process_start_time
from lab.topology import parse
from toy_datapath import TOPOLOGY, ToyDatapath

pytestmark = pytest.mark.root


def test_a_lab_runs_a_new_feature_through_the_contract(lab_name, bpf_build):
    toy = ToyDatapath()
    datapaths = (*DATAPATHS, toy)
    with Lab(parse(TOPOLOGY, lab_name, datapaths=datapaths), datapaths=datapaths) as lab:
        router = lab.node("router")
        assert router.run(["cat", "/proc/sys/net/ipv6/conf/all/hop_limit"]).stdout == "7\n"
        attached = [(node, a.ifname, a.program) for node, a in recorded_attachments(lab.record)]
        assert attached == [("router", "eth-client", "pktcount_tc")]
        assert toy.calls == [("after_load", "pktcount", "router"), ("start", lab_name)]
        (proc,) = [r for r in lab.record.replay() if isinstance(r, ProcessStarted)]
        assert proc.argv == ("sleep", "600") and proc.node == "router"
        assert process_start_time(proc.pid) == proc.start
    assert toy.calls[-1] == ("stop", lab_name)
    assert process_start_time(proc.pid) != proc.start        # stopped by the journal
    assert not [n for n in netns.list_names() if n.startswith(f"{lab_name}-")]


def test_the_runner_gives_its_labs_the_scenarios_features(tmp_path, bpf_build):
    (tmp_path / "toy.yaml").write_text(TOPOLOGY)
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        topology: toy.yaml
        repeats: 1
        steps:
          - {kind: toy_hop_limit, with: {node: router}}
        """))
    toy = ToyDatapath()
    scenario = load(tmp_path / "s.yaml", catalogue((*DATAPATHS, toy)))
    run = Runner(tmp_path / "out", progress=Progress(io.StringIO(), "lines")).run([scenario])
    assert run.status == "passed"
    (metric,) = run.to_json()["scenarios"][0]["metrics"]
    assert metric["metric"] == "hop_limit" and metric["samples"] == [7]
    assert [c[0] for c in toy.calls] == ["after_load", "start", "stop"]
