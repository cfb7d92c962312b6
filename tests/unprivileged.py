"""`lab` run as an unprivileged user (nobody, no capabilities, no groups), from wherever the
checkout lives.

A checkout in /root or under any 0700 directory is closed to nobody: `setpriv ... python -m
lab` would stop at "No module named lab" before lab says a word. So the command runs in a
private mount namespace in which the lab package, the virtualenv and the built BPF objects are
bind-mounted into a directory everyone may traverse; nobody reads exactly what a user of an
installed lab can read, and nothing else of the checkout.

    out = run_as_nobody(["up", "topo.yaml"], files={"topo.yaml": text})
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import lab

NOBODY = 65534
PACKAGE = Path(lab.__file__).parent
VENV = Path(sys.prefix)
BUILD = PACKAGE.parent / "build"

# In the new mount namespace: bind the package, the virtualenv and the build directory, drop
# to nobody, run lab.
SCRIPT = """
mount --bind "$1" "$4/lab" && mount --bind "$2" "$4/venv" || exit 99
if [ -d "$3" ]; then mount --bind "$3" "$4/build" || exit 99; fi
shift 4
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$@"
"""


def run_as_nobody(args: list[str], files: Mapping[str, str | bytes] | None = None,
                  env: Mapping[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """`lab ARGS` as nobody, in a working directory holding FILES (name -> text)."""
    top = Path(tempfile.mkdtemp(prefix="lab-nobody-"))
    try:
        top.chmod(0o755)
        for sub in ("lab", "venv", "build", "cwd"):
            (top / sub).mkdir(mode=0o755)
        for name, content in (files or {}).items():
            path = top / "cwd" / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            path.chmod(0o644)
        python = top / "venv" / Path(sys.executable).relative_to(VENV)
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SCRIPT,
                "sh", str(PACKAGE), str(VENV), str(BUILD), str(top), str(python), "-m", "lab",
                *args]
        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(top)}
        out = subprocess.run(argv, cwd=top / "cwd", env=environment, capture_output=True,
                             text=True, timeout=timeout)
        assert out.returncode != 99, out.stderr
        return out
    finally:
        shutil.rmtree(top, ignore_errors=True)
