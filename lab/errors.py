"""Errors the lab reports to users, with the exit codes the CLI maps them to."""

from __future__ import annotations

# Exit codes: 0 success, 1 a check or scenario failed, 2 bad input or a missing prerequisite.
EXIT_FAILURE = 1
EXIT_USAGE = 2


class LabError(Exception):
    """An error with a message meant for the user; the CLI prints it without a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(LabError):
    """Bad input or a missing prerequisite (not root, no netns, a tool missing): exit code 2."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """An error at a position in an input file: `file:line:col: message`."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None):
        self.message, self.file, self.line, self.col = message, file, line, col
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [str(p) for p in (self.file, self.line, self.col) if p is not None]
        return f"{':'.join(where)}: {self.message}" if where else self.message
