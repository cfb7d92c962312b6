"""pytest plugin: your own datapath tests on a running lab, the way the lab's own tests do it.

Installed with the package (a `pytest11` entry point), so in the lab's virtualenv:

    pytest --lab-topology topologies/nat46.yaml tests/mine/

    def test_pod_reaches_the_gateway(lab, lab_nodes):
        gw = lab.node("gw")
        lab_nodes["node1-pod0"].run(["ping", "-c1", gw.address(6)])

    @pytest.mark.lab_topology("../topologies/bigtcp.yaml")   # relative to this test file
    def test_router_forwards(lab):
        ...

Fixtures:
  lab         the running Lab (lab.lab.Lab) of the test's topology: the `lab_topology` marker's
              file, else --lab-topology. One lab per topology file for the whole session
              (brought up on first use, torn down at the end, also on Ctrl-C): tests that
              change it leave it as they found it, or use a topology of their own.
  lab_nodes   {node name: NodeHandle} of that lab, pods included.

Labs need root: without it, tests using these fixtures are skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("lab", "datapath lab")
    group.addoption("--lab-topology", metavar="FILE",
                    help="topology file the `lab` fixture brings up (unless a test's "
                         "lab_topology marker names another)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "lab_topology(file): topology for the `lab` fixture in this test (relative "
                   "to the test file), instead of --lab-topology")


class LabPool:
    """The session's labs, one per topology file."""

    def __init__(self):
        self.labs: dict[Path, object] = {}

    def get(self, path: Path):
        from lab.datapath.registry import DATAPATHS
        from lab.lab import Lab

        path = path.resolve()
        if path not in self.labs:
            name = f"pt{os.getpid() % 100000}-{len(self.labs)}"
            lab = Lab.from_file(path, name, DATAPATHS)
            lab.up()
            self.labs[path] = lab
        return self.labs[path]

    def close(self) -> None:
        while self.labs:
            _, lab = self.labs.popitem()
            lab.down()


@pytest.fixture(scope="session")
def lab_pool():
    pool = LabPool()
    try:
        yield pool
    finally:
        pool.close()


def _topology_file(request) -> Path:
    marker = request.node.get_closest_marker("lab_topology")
    if marker is not None:
        if not marker.args:
            pytest.fail("@pytest.mark.lab_topology needs a topology file", pytrace=False)
        path = Path(marker.args[0])
        if not path.is_absolute():
            beside = Path(request.node.path).parent / path
            path = beside if beside.exists() else request.config.invocation_params.dir / path
        return path
    option = request.config.getoption("lab_topology")
    if not option:
        pytest.fail("this test uses a lab: run pytest with --lab-topology FILE, or mark it "
                    "with @pytest.mark.lab_topology(FILE)", pytrace=False)
    path = Path(option)
    return path if path.is_absolute() else request.config.invocation_params.dir / path


@pytest.fixture
def lab(request, lab_pool):
    from lab import features
    from lab.errors import LabError

    path = _topology_file(request)
    if not path.is_file():
        pytest.fail(f"topology file {path} not found", pytrace=False)
    cap = features.privileges()
    if not cap.ok:
        pytest.skip(f"a lab needs root: {cap.detail}")
    try:
        return lab_pool.get(path)
    except LabError as e:
        pytest.fail(f"lab for {path} did not come up: {e}", pytrace=False)


@pytest.fixture
def lab_nodes(lab) -> dict:
    return dict(lab.nodes)
