"""`make bpf`: every program builds with -Werror into an object with BTF, and rebuilds are
incremental (only objects whose sources or headers changed)."""

import shutil
import subprocess
from pathlib import Path

from lab.bpf.btf import Btf
from lab.bpf.object import REPO


def _copy_tree(tmp: Path) -> Path:
    """The build inputs, copied, so the test can touch and add files without racing anyone."""
    root = tmp / "repo"
    root.mkdir()
    shutil.copy(REPO / "Makefile", root)
    shutil.copytree(REPO / "bpf", root / "bpf")
    shutil.copytree(REPO / "tests" / "bpf" / "progs", root / "tests" / "bpf" / "progs")
    return root


def _make(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(root), *args], capture_output=True, text=True)


def test_every_program_builds_with_btf(tmp_path):
    root = _copy_tree(tmp_path)
    r = _make(root, "bpf-objects")
    assert r.returncode == 0, r.stderr
    sources = sorted(p.stem for p in (root / "bpf").glob("*.c"))
    assert "pktcount" in sources
    for name in sources:
        obj = root / "build" / "bpf" / f"{name}.o"
        assert obj.read_bytes()[:4] == b"\x7fELF"
        assert len(Btf.from_elf(str(obj))) > 1, f"{name}.o has no BTF"
    for src in (root / "tests" / "bpf" / "progs").glob("*.c"):
        assert (root / "build" / "bpf" / "tests" / f"{src.stem}.o").exists()


def test_rebuild_is_incremental_and_follows_headers(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "bpf" / "include").mkdir(exist_ok=True)
    (root / "bpf" / "include" / "probe_only.h").write_text("#define PROBE_RET 0\n")
    (root / "bpf" / "uses_header.c").write_text(
        '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include "probe_only.h"\n'
        'SEC("tc") int f(struct __sk_buff *s) { return PROBE_RET; }\n'
        'char LICENSE[] SEC("license") = "GPL";\n')
    assert _make(root, "bpf-objects").returncode == 0
    assert _make(root, "-q", "bpf-objects").returncode == 0, "a second build would do work"

    (root / "bpf" / "include" / "probe_only.h").write_text("#define PROBE_RET 1\n")
    plan = _make(root, "-n", "bpf-objects").stdout
    assert "uses_header.c" in plan
    assert "pktcount.c" not in plan, "an unrelated object would be rebuilt"


def test_warnings_are_errors(tmp_path):
    root = _copy_tree(tmp_path)
    (root / "bpf" / "warns.c").write_text("int f(void) { int unused; return 0; }\n")
    r = _make(root, "bpf-objects")
    assert r.returncode != 0
    assert "unused" in r.stderr
