"""`lab bench prog` and the feature probes behind `lab doctor`."""

import json
import os

import pytest

from lab import netns
from lab.bpf import bench, features
from lab.commands import main

pytestmark = pytest.mark.root


def test_bench_prog_reports_per_packet_timings(capsys):
    assert main(["bench", "prog", "pktcount-tc", "--runs", "2", "--repeat", "50",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["name"], r["program"], r["mode"], r["runs"]) == (
        "pktcount-tc", "pktcount:pktcount_tc", "repeat", 2)
    labels = [p["label"] for p in r["packets"]]
    assert labels == [label for label, _ in bench.default_mix()]
    assert {p["code"] for p in r["packets"]} == {"TC_ACT_UNSPEC"}
    assert r["ns_per_packet"] > 0 and r["baseline_ns"] > 0
    assert r["min_ns"] <= r["ns_per_packet"] <= r["max_ns"]


def test_bench_rewriting_programs_run_once_per_syscall(bpf_build):
    case = bench.BenchCase("v4tov6", str(bpf_build / "tests" / "v4tov6.o"), "v4tov6_tc",
                           bench.default_mix, rewrites=True)
    r = bench.measure(case, runs=1, repeat=3)
    assert (r.mode, r.repeat) == ("single", 3)
    assert {p.code for p in r.packets} == {"TC_ACT_OK"}
    assert r.text().splitlines()[0].endswith("3 single runs per packet, cold; min "
                                             f"{r.min_ns:.1f}, max {r.max_ns:.1f})")


def test_bench_loop_times_a_translator_in_the_kernels_loop(capsys):
    """--loop: the translator's packet flips between its two forms in the kernel's loop,
    so every run still translates (TC_ACT_OK, never a pass of an untranslatable packet)."""
    assert main(["bench", "prog", "xlate-tc", "--loop", "--runs", "1", "--repeat", "101",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["mode"], r["repeat"]) == ("loop", 101)
    assert {p["code"] for p in r["packets"]} == {"TC_ACT_OK"}
    assert r["ns_per_packet"] > 0 and r["baseline_ns"] > 0


def test_bench_case_by_object_and_program(capsys):
    assert main(["bench", "prog", "pktcount:pktcount_xdp", "--runs", "1", "--repeat", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pktcount:pktcount_xdp (pktcount:pktcount_xdp, xdp):")
    assert "XDP_PASS" in out


def test_bench_unknown_case_is_a_usage_error(capsys):
    assert main(["bench", "prog", "nope"]) == 2
    assert "no bench case 'nope'" in capsys.readouterr().err


def test_probes_answer_with_reasons_and_leave_nothing_behind():
    before = (sorted(os.listdir("/sys/class/net")), netns.list_names())
    probes = {p.name: p for p in features.collect()}
    assert set(probes) == {"libbpf", "clang-bpf", "btf", "bpffs", "tcx", "xdp-native-veth",
                           "bpf_skb_change_proto", "test-run-sched_cls", "test-run-xdp",
                           "test-run-checksum-complete"}
    assert all(p.detail for p in probes.values())
    assert probes["tcx"].ok == features.has_tcx()
    assert probes["test-run-sched_cls"].ok and probes["test-run-xdp"].ok
    assert probes["bpf_skb_change_proto"].ok and probes["clang-bpf"].ok
    # Probes run in anonymous namespaces: no device in the root namespace, no named namespace
    # (other test processes may create their own labs meanwhile, so compare ours only).
    assert sorted(os.listdir("/sys/class/net")) == before[0]
    assert not [n for n in set(netns.list_names()) - set(before[1]) if "probe" in n]


def test_doctor_includes_the_bpf_probes(capsys):
    assert main(["doctor", "--json"]) == 0
    names = {c["name"] for c in json.loads(capsys.readouterr().out)["capabilities"]}
    assert {"tcx", "xdp-native-veth", "test-run-xdp", "libbpf"} <= names
