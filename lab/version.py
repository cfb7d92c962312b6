"""The lab's version as hosts of one lab compare it: the release, and a digest of the sources
(the package, and in a checkout its BPF programs), so two installs of different commits differ
even when the release number is the same. Every host of a lab must run the same one."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from lab import __version__

PACKAGE = Path(__file__).resolve().parent
SUFFIXES = {".py", ".yaml", ".json", ".c", ".h"}


def _sources() -> list[tuple[str, Path]]:
    found = [(f"lab/{p.relative_to(PACKAGE)}", p) for p in PACKAGE.rglob("*")
             if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    bpf = PACKAGE.parent / "bpf"
    if (PACKAGE.parent / "pyproject.toml").exists() and bpf.is_dir():
        found += [(f"bpf/{p.relative_to(bpf)}", p) for p in bpf.rglob("*")
                  if p.suffix in SUFFIXES]
    return sorted(found)


@functools.cache
def version_id() -> str:
    """`RELEASE+DIGEST`, e.g. 0.1.0+3f2a9c1d0b7e."""
    h = hashlib.sha256()
    for name, path in _sources():
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+{h.hexdigest()[:12]}"
