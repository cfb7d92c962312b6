"""Tests marked `netkit` need a kernel with netkit. On a kernel without it they skip natively,
and this test runs them in the kernel VM instead, in one boot: they must run there, not skip,
and pass."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import features, vm

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the repo's .venv python, at the same path in the guest

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root]


def netkit_tests() -> list[str]:
    """Node ids of the tests marked netkit, collected on the host (cheap here; in the guest
    every collected module is imported under emulation)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--collect-only", "-q", "-m", "netkit", "--ignore=tests/vm", "tests"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, 5):  # 5: nothing selected
        pytest.fail(f"collecting the netkit tests failed:\n{proc.stdout}\n{proc.stderr}")
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_netkit_tests_pass_in_the_vm(kernel, tmp_path):
    ok, why = features.netkit()
    if ok:
        pytest.skip(f"this kernel has netkit ({why}): the netkit tests ran natively")
    tests = netkit_tests()
    assert tests, "no test is marked netkit"
    out = tmp_path / "out"
    junit = out / "junit.xml"
    r = vm.run([PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                f"--junitxml={junit}", *tests], kernel=kernel.release, shares=[out],
               cwd=str(REPO), timeout=1200, text=True)
    assert r.returncode == 0, f"in the VM ({r.kernel}, {r.accel}):\n{r.stdout}\n{r.stderr}"
    suite = ET.parse(junit).getroot().find("testsuite")
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": len(tests), "failures": 0, "errors": 0, "skipped": 0}, r.stdout
