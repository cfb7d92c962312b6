"""The kernel matrix (lab run --kernels): the kernel list, one document of every kernel's
scenarios, and the report's matrix section with a column per kernel; on synthetic results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import UsageError
from lab.scenarios import kernels, matrix, results
from lab.scenarios.render import Table, markdown
from lab.scenarios.report import build

from test_results import measured, run_doc, scenario  # noqa: F401 - fixtures


def test_kernel_list():
    assert kernels.parse_kernels("host, 6.12,7.2,7.3") == ["host", "6.12", "7.2", "7.3"]
    assert kernels.parse_kernels("7.3.4+deb13-cloud-amd64") == ["7.3.4+deb13-cloud-amd64"]
    for bad in ("", "host,host", "latest", "6.12,x.y"):
        with pytest.raises(UsageError):
            kernels.parse_kernels(bad)


def _kernel_run(tmp_path: Path, label: str, doc: dict, *, vm: bool, lacks=()) -> \
        kernels.KernelRun:
    d = tmp_path / "kernels" / label
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps(doc))
    caps = [{"name": "netkit", "ok": "netkit" not in lacks,
             "detail": "CONFIG_NETKIT is not set" if "netkit" in lacks else "CONFIG_NETKIT=y"},
            {"name": "big_tcp_ipv6_form", "ok": True,
             "detail": ("zero" if vm else "hbh-jumbo") + ": ..."}]
    return kernels.KernelRun(label, f"{label}.0-test", "trixie-backports" if vm else "",
                             "vm" if vm else "native", "tcg" if vm else None, caps,
                             d / "results.json")


def test_one_document_with_a_kernel_record_per_scenario(scenario, tmp_path):
    doc = run_doc(scenario, measured(scenario))
    runs = [_kernel_run(tmp_path, "host", doc, vm=False, lacks=("netkit",)),
            _kernel_run(tmp_path, "7.3", doc, vm=True),
            kernels.KernelRun("7.2", "?", "", "vm", None, [], None, "no such kernel")]
    merged = kernels.merge(runs, [scenario], ["lab", "run", "--kernels", "host,7.3,7.2"],
                           False)
    results.validate(merged)
    names = [s["name"] for s in merged["scenarios"]]
    assert names == ["synthetic@host", "synthetic@7.3", "synthetic@7.2"]
    host, k73, k72 = merged["scenarios"]
    assert host["kernel"]["execution"] == "native" and not host["kernel"]["emulated"]
    assert host["kernel"]["lacks"] == [{"name": "netkit",
                                        "detail": "CONFIG_NETKIT is not set"}]
    assert k73["kernel"]["emulated"] and k73["kernel"]["big_tcp_ipv6_form"] == "zero"
    assert (k72["status"], k72["reason"]) == ("error", "kernel 7.2: no such kernel")
    assert merged["status"] == "failed"  # a kernel that could not run fails the matrix


def test_the_report_sets_kernels_side_by_side_and_says_tcg_stays_within(scenario, tmp_path):
    doc = run_doc(scenario, measured(scenario))
    runs = [_kernel_run(tmp_path, "host", doc, vm=False, lacks=("netkit",)),
            _kernel_run(tmp_path, "7.3", doc, vm=True)]
    merged = kernels.merge(runs, [scenario], ["lab"], False)
    blocks = matrix.blocks(merged)
    text = markdown(blocks)
    assert "compared only within their" in text and "own kernel" in text
    tables = [b for b in blocks if isinstance(b, Table)]
    kernel_table = tables[0]
    assert [row[0] for row in kernel_table.rows] == ["host", "7.3"]
    assert kernel_table.rows[0][5].startswith("no: CONFIG_NETKIT")   # netkit column
    assert kernel_table.rows[1][3] == "VM, tcg (emulated)"
    ratio_rows = next(t for t in tables if t.headers[0] == "ratio").rows
    # each kernel's ratio with its interval and verdict
    assert ratio_rows[0][2].startswith("1.396x [") and ratio_rows[0][2].endswith(": higher")
    assert ratio_rows[0][3] == ratio_rows[0][2]
    # and the full report carries it after the run's summary
    full = markdown(build(merged, tmp_path))
    assert "## Kernel matrix" in full and "### synthetic across kernels" in full
    assert matrix.blocks(doc) == []  # not a matrix: nothing added


def test_doctor_gives_tools_time_in_an_emulated_guest(monkeypatch):
    """A tool slow to start under TCG is slow, not missing (the matrix's first run listed clang
    and QEMU as lacking in every guest after 5 s)."""
    import subprocess

    from lab import features

    seen = []

    def fake_run(argv, timeout, **kw):
        seen.append(timeout)
        return subprocess.CompletedProcess(argv, 0, "tool 1.2.3\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(features.shutil, "which", lambda cmd: f"/usr/bin/{cmd}")
    monkeypatch.delenv("LAB_VM_ACCEL", raising=False)
    assert features.tool("clang").ok
    monkeypatch.setenv("LAB_VM_ACCEL", "tcg")
    assert features.tool("clang").ok
    monkeypatch.setenv("LAB_VM_ACCEL", "kvm")
    assert features.tool("clang").ok
    assert seen == [5.0, 60.0, 5.0]
