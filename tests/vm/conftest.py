"""Fixtures of the VM tests: the kernel to boot (skipping where the VM runner cannot work) and
a run directory of the test's own, to tell the runner's processes and leftovers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from lab import vm
from lab.errors import UsageError
from lab.vm import qemu


@pytest.fixture(scope="session")
def kernel() -> vm.Kernel:
    if os.environ.get("LAB_VM"):
        pytest.skip("already inside the lab's VM")
    if os.geteuid() != 0:
        pytest.skip("the VM runner needs root")
    try:
        qemu.find_qemu()
        qemu.find_virtiofsd()
    except UsageError as e:
        pytest.skip(str(e))
    return vm.KernelCache().kernel(None)


@pytest.fixture
def rundir(tmp_path, monkeypatch) -> Path:
    """Where the runner makes its run directory, so we can tell its processes and leftovers."""
    d = tmp_path / "run"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d
