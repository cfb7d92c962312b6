"""Shared test set-up: root-only tests skip without root; labs live in a private run dir."""

from __future__ import annotations

import os

import pytest

# bpf_fixtures: BPF objects, runners, veth pairs, pin dirs. pytester runs pytest in a
# subprocess: the tests of the lab's own pytest plugin use it.
pytest_plugins = ["bpf_fixtures", "pytester"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, BPF)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def lab_run_dir(tmp_path_factory):
    """Test labs keep their records apart from the machine's, so `lab down --all` in a test
    only ever sees the test's own labs."""
    path = tmp_path_factory.mktemp("lab-run")
    old = os.environ.get("LAB_RUN_DIR")
    os.environ["LAB_RUN_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LAB_RUN_DIR", None)
    else:
        os.environ["LAB_RUN_DIR"] = old


@pytest.fixture
def lab_name(request):
    """A lab name unique to this test process and test."""
    base = "".join(c for c in request.node.name.lower() if c.isalnum())[:10] or "t"
    return f"t{os.getpid() % 10000}{base}"[:24]
