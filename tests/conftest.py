"""Shared test set-up: root-only tests skip without root; labs live in a private run dir."""

from __future__ import annotations

import os
import shutil
import warnings
import zlib
from pathlib import Path

import pytest

from lab import state
from lab.lab import teardown_record

# bpf_fixtures: BPF objects, runners, veth pairs, pin dirs; pytester: runs pytest in a
# subprocess (the tests of the lab's own pytest plugin).
pytest_plugins = ["bpf_fixtures", "pytester"]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, BPF)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


# Test sessions keep their labs' records here, one directory per session, named by the
# session's pid and start time. A session killed mid-test (a CI timeout) leaves its records
# behind; the next session tears those labs down from them, so nothing it made outlives it.
TEST_RUN_ROOT = Path("/run/lab-tests")


def _reap_dead_sessions() -> None:
    for directory in TEST_RUN_ROOT.glob("session-*"):
        _, pid, start = directory.name.split("-")
        if state.process_start_time(int(pid)) == int(start):
            continue  # still running
        for name in state.labs(directory):
            record = state.LabRecord(name, directory)
            with record.locked():
                teardown_record(record)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def lab_run_dir(tmp_path_factory):
    """Test labs keep their records apart from the machine's, so `lab down --all` in a test
    only ever sees the test's own labs."""
    if os.geteuid() == 0:
        _reap_dead_sessions()
        path = TEST_RUN_ROOT / f"session-{os.getpid()}-{state.process_start_time(os.getpid())}"
        path.mkdir(parents=True, mode=0o700)
    else:
        path = tmp_path_factory.mktemp("lab-run")
    old = os.environ.get("LAB_RUN_DIR")
    os.environ["LAB_RUN_DIR"] = str(path)
    yield path
    if os.geteuid() == 0:
        for name in state.labs(path):  # a test that leaked its lab: say so, and clean up
            warnings.warn(f"a test left lab {name} up; tearing it down")
            teardown_record(state.LabRecord(name, path))
        shutil.rmtree(path, ignore_errors=True)
    if old is None:
        os.environ.pop("LAB_RUN_DIR", None)
    else:
        os.environ["LAB_RUN_DIR"] = old


@pytest.fixture
def lab_name(request):
    """A lab name unique to this test process and test."""
    base = "".join(c for c in request.node.name.lower() if c.isalnum())[:8] or "t"
    base += f"{zlib.crc32(request.node.nodeid.encode()) % 1000:03d}"  # parametrised cases
    return f"t{os.getpid() % 10000}{base}"[:24]
