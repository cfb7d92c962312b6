"""`lab` run as an unprivileged user (nobody, no capabilities, no groups), from wherever the
checkout lives.

A checkout in /root or under any 0700 directory is closed to nobody: `setpriv ... python -m
lab` would stop at "No module named lab" before lab says a word. So a root process imports the
lab (every module of it, and with them what they import), drops to nobody, and only then runs
the command, in-process: what is tested is what lab says to a user without privileges, not
whether that user may read the checkout.

    out = run_as_nobody(["up", "topo.yaml"], files={"topo.yaml": text})
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

NOBODY = 65534

PRELUDE = f"""
import importlib, os, pkgutil, sys
import lab
for m in pkgutil.walk_packages(lab.__path__, "lab."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
os.setgroups([])
os.setresgid({NOBODY}, {NOBODY}, {NOBODY})
os.setresuid({NOBODY}, {NOBODY}, {NOBODY})      # from root to another uid: all capabilities go
assert os.geteuid() == {NOBODY} and os.getegid() == {NOBODY}
from lab.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@contextlib.contextmanager
def open_dir() -> Iterator[Path]:
    """A directory nobody may read, for the command's files and working directory."""
    path = Path(tempfile.mkdtemp(prefix="lab-nobody-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_as_nobody(args: list[str], files: Mapping[str, str] | None = None,
                  env: Mapping[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """`lab ARGS` as nobody, in a directory holding FILES (name -> text), readable by all."""
    with open_dir() as cwd:
        for name, text in (files or {}).items():
            (cwd / name).write_text(text)
            (cwd / name).chmod(0o644)
        return subprocess.run([sys.executable, "-c", PRELUDE, *args], cwd=cwd,
                              env={**os.environ, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout)
