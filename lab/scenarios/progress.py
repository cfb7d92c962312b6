"""Live progress of `lab run`, on stderr.

On a terminal: one line redrawn in place, a bar with the count of steps done, the elapsed
time and the step running now; messages (a scenario done, skipped, failed) print above it.
Not a terminal (a pipe, a log file): one plain line per step. With CI=true: only the
messages, so CI logs stay short.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO


def default_mode(stream: TextIO) -> str:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return "quiet"
    return "bar" if stream.isatty() else "lines"


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    BAR_WIDTH = 24

    def __init__(self, stream: TextIO | None = None, mode: str | None = None):
        self.stream = stream or sys.stderr
        self.mode = mode or default_mode(self.stream)
        self.total = 0
        self.done = 0
        self.current = ""
        self.started = time.monotonic()
        self._drawn = False

    def add_total(self, units: int) -> None:
        self.total += units
        self._draw()

    def step(self, label: str) -> None:
        """A step starts."""
        self.current = label
        if self.mode == "lines":
            self._print(f"[{self.done + 1}/{self.total}] {label}")
        self._draw()

    def advance(self, units: int = 1) -> None:
        self.done += units
        self._draw()

    def message(self, text: str) -> None:
        """A line that stays (in every mode)."""
        self._print(text)

    def finish(self) -> None:
        self._clear()

    # -- drawing --------------------------------------------------------------------------------

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def _print(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._draw()

    def _draw(self) -> None:
        if self.mode != "bar" or not self.total:
            return
        filled = min(self.BAR_WIDTH, self.BAR_WIDTH * self.done // self.total)
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        line = (f"[{bar}] {self.done}/{self.total} {_elapsed(time.monotonic() - self.started)}"
                f"  {self.current}")
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[2K" + line[:width])
        self.stream.flush()
        self._drawn = True
