"""The BPF objects and their packet tests on other kernels: every object of bpf/ loads
through that kernel's verifier and the BPF_PROG_TEST_RUN tests (translator, gateway, host
routing, packet counters, map and attach tests) pass there, and so do the tests marked
netkit or netem; one `lab vm` boot per kernel.

`make test` runs this on the newest 7.x kernel and on 6.12 (LAB_TEST_KERNELS names others),
their boots side by side, with the kernel sample of tests/bpf; `make test-kernels`
(LAB_TEST_BPF_SELECTION=full) runs every test of tests/bpf on each kernel of the matrix
(light: all but the heavy ones). A test may skip on a kernel only naming the kernel option it
needs.

Why a sample: under emulation (TCG) Python runs about 25 times slower than here and Python is
most of these tests' time (scapy builds and parses every packet); the verifier is 10 to 15
times slower. The whole of tests/bpf takes most of an hour per kernel, the sample a few
minutes. The sample is, for every module of tests/bpf and every hook its tests are
parametrised over (tc, tcx, XDP), the first test not marked `heavy`: every object goes
through each kernel's verifier and every module's packet path runs at every hook. The heavy
tests run a program over thousands of packets or flows (Maglev and random shares over 100k
flows, the fuzz corpus, hypothesis round trips, the 10,000-packet fuzz tests of the
translator and the gateway): under emulation on a busy machine minutes each per kernel, the
gateway's fuzz test over twenty; they are the five modules the sample leaves to `make
test-kernels`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import vm

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the repo's .venv python, at the same path in the guest

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root]

# The newest 7.x and 6.12 by default (make test); make test-kernels names the matrix's.
KERNELS = [k.strip() for k in os.environ.get("LAB_TEST_KERNELS", "7,6.12").split(",")
           if k.strip()]
# sample (make test), light (every test not marked heavy) or full (make test-kernels)
SELECTION = os.environ.get("LAB_TEST_BPF_SELECTION", "sample")
BPF_TESTS = "tests/bpf/"
# Where the BPF tests are, and the tests of kernel features this host may lack (marked netkit
# or netem; every kernel of the matrix has both).
COLLECTED = ("tests/bpf", "tests/netkit", "tests/integration/test_netem_step.py")
KERNEL_FEATURES = {"netkit", "netem"}
HOOKS = ("xdp", "tcx", "tc")


# Runs pytest's collection and writes (node id, marker names) of each item to argv[1].
_COLLECT = """
import json, sys, pytest
class Items:
    def pytest_collection_finish(self, session):
        self.found = [(i.nodeid, sorted({m.name for m in i.iter_markers()})) for i in session.items]
items = Items()
rc = pytest.main(["-p", "no:cacheprovider", "--collect-only", "-q", *sys.argv[2:]], plugins=[items])
json.dump(items.found, open(sys.argv[1], "w"))
sys.exit(rc)
"""


def collect(tmp: Path) -> list[tuple[str, set[str]]]:
    """(node id, marker names) of the tests in COLLECTED, collected once on the host: in
    the guest every collected module would be imported under emulation. Bytecode writing is
    on for it, so pytest leaves its rewritten test modules for the guest, whose root is
    read-only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = tmp / "collected.json"
    proc = subprocess.run([PYTHON, "-c", _COLLECT, str(out), *COLLECTED], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0:
        pytest.fail(f"collecting {COLLECTED} failed:\n{proc.stdout}\n{proc.stderr}")
    return [(t, set(marks)) for t, marks in json.loads(out.read_text())]


def hook_of(node_id: str) -> str:
    """The hook a parametrised test runs at ("" for none): tc-*, xdp-*, [tcx]."""
    params = re.search(r"\[(.*)\]$", node_id)
    words = set(re.split(r"[-+]", params.group(1))) if params else set()
    return next((h for h in HOOKS if h in words), "")


def sample(tests: list[tuple[str, bool]]) -> list[str]:
    """Per module and hook, the first test not marked heavy (in collection order)."""
    chosen: dict[tuple[str, str], str] = {}
    for node_id, heavy in tests:
        if not heavy:
            chosen.setdefault((node_id.split("::", 1)[0], hook_of(node_id)), node_id)
    picked = set(chosen.values())
    return [t for t, _ in tests if t in picked]


def test_the_sample_takes_each_module_at_each_hook():
    tests = [("tests/bpf/a.py::test_x[tc-1]", False), ("tests/bpf/a.py::test_x[xdp-1]", False),
             ("tests/bpf/a.py::test_x[tc-2]", False), ("tests/bpf/a.py::test_y", False),
             ("tests/bpf/b.py::test_stats[maglev]", True),
             ("tests/bpf/c.py::test_fuzz[tc]", True), ("tests/bpf/c.py::test_one[tcx]", False)]
    assert sample(tests) == ["tests/bpf/a.py::test_x[tc-1]", "tests/bpf/a.py::test_x[xdp-1]",
                             "tests/bpf/a.py::test_y", "tests/bpf/c.py::test_one[tcx]"]
    assert hook_of("t.py::test_pings[tc-ingress-pktcount_tc-tc]") == "tc"
    assert hook_of("t.py::test_random[errors+allow+pool]") == ""
    assert hook_of("t.py::test_udp[tcx]") == "tcx"


@dataclass
class GuestRun:
    tests: list[str]
    junit: Path
    result: Future  # of vm.VmResult


@pytest.fixture(scope="module")
def guest_runs(request, kernel, tmp_path_factory) -> dict[str, GuestRun]:
    """The selected kernels' runs, started together (one boot each, concurrently: a TCG guest
    runs on one host CPU), with one collection of the tests for all of them."""
    versions = [item.callspec.params["version"] for item in request.session.items
                if item.originalname == "test_bpf_objects_load_and_packet_tests_pass"]
    kernels = {v: vm.KernelCache().kernel(v) for v in versions}  # fetched one at a time
    vm.precompile(REPO / "lab", REPO / "tests")
    collected = collect(tmp_path_factory.mktemp("collect"))
    bpf = [(t, "heavy" in marks) for t, marks in collected if t.startswith(BPF_TESTS)]
    assert len(bpf) >= 200, "the BPF tests were not collected"
    if SELECTION not in ("sample", "light", "full"):
        pytest.fail(f"LAB_TEST_BPF_SELECTION={SELECTION}: sample, light or full")
    tests = {"full": [t for t, _ in bpf], "light": [t for t, heavy in bpf if not heavy],
             "sample": sample(bpf)}[SELECTION]
    # The netkit and netem tests too (every kernel of the matrix has both, the host may not).
    tests += [t for t, marks in collected if marks & KERNEL_FEATURES and t not in tests]
    runs = {}
    with ThreadPoolExecutor(max_workers=max(1, len(kernels))) as pool:
        for v, k in kernels.items():
            out = tmp_path_factory.mktemp(f"bpf-in-{v}")
            junit = out / "junit.xml"
            runs[v] = GuestRun(tests, junit, pool.submit(
                vm.run, [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                         f"--junitxml={junit}", "--durations=15", *tests],
                kernel=k, shares=[out], cwd=str(REPO),
                timeout=2400 if SELECTION == "sample" else 10800,
                text=True, mem_mib=2048))
        yield runs
        for run in runs.values():  # the pool's exit waits for them anyway
            run.result.cancel()


@pytest.mark.parametrize("version", KERNELS)
def test_bpf_objects_load_and_packet_tests_pass(version, guest_runs):
    run = guest_runs[version]
    r = run.result.result()
    tail = "\n".join((r.stdout or "").splitlines()[-40:])
    assert r.returncode == 0, f"in the VM ({r.kernel}, {r.accel}):\n{tail}\n{r.stderr}"
    suite = ET.parse(run.junit).getroot().find("testsuite")
    counts = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
    print(f"{r.kernel} ({r.accel}): {counts}, boot {r.boot_seconds:.0f} s, command "
          f"{r.command_seconds:.0f} s\n{r.stdout}")
    assert counts["tests"] == len(run.tests) and counts["failures"] == counts["errors"] == 0, \
        tail
    for case in suite.iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:
            reason = skipped.get("message", "")
            assert "CONFIG_" in reason, \
                f"{case.get('name')} skipped on {r.kernel} without naming the kernel option " \
                f"it needs: {reason}"
