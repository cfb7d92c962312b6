"""SIGINT for the commands that tests start and interrupt.

A shell that starts `make test &` (a background job of a non-interactive shell) starts pytest
with SIGINT ignored, and every process started from it inherits that; `lab` honours an
inherited SIG_IGN (docs: README, "Interrupting a lab"). A test that interrupts a child with
SIGINT therefore sets the child's disposition itself:

    subprocess.Popen(with_sigint("default", ["lab", "up", ...]))

    python tests/sigint.py default|ignore ARGV...     (the same, as a command)
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence


def with_sigint(action: str, argv: Sequence[str]) -> list[str]:
    """ARGV run with SIGINT at its default action ("default") or ignored ("ignore"),
    whatever the caller's is. The command keeps the pid it is started with (exec)."""
    assert action in ("default", "ignore")
    return [sys.executable, os.path.abspath(__file__), action, *argv]


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL if sys.argv[1] == "default" else signal.SIG_IGN)
    os.execvp(sys.argv[2], sys.argv[2:])
