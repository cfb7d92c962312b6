"""Errors the lab reports to users, with the exit codes the CLI maps them to."""

from __future__ import annotations

# Exit codes: 0 success, 1 a check or scenario failed, 2 bad input or a missing prerequisite.
EXIT_FAILURE = 1
EXIT_USAGE = 2

KeyPath = tuple[str | int, ...]


class LabError(Exception):
    """An error with a message meant for the user; the CLI prints it without a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(LabError):
    """Bad input or a missing prerequisite (not root, no netns, a tool missing): exit code 2."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """This place in this input is wrong: the one error type for bad values in files, sections
    and request bodies.

    FILE, LINE and COL say where in a file (`file:line:col: message`). PATH is the key path to
    the bad value inside the input, for input that has no position yet (a topology section
    checked by its owner, an API request's body): `SUBJECT path.to[0].key: message`. AT_KEY:
    the key itself is wrong (unknown, missing below it), so a file position points at the key,
    not at its value. `Document.place()` (lab/yamlfile.py) turns a path into a file position.
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None, *, path: KeyPath = (), at_key: bool = False,
                 subject: str = ""):
        self.message, self.file, self.line, self.col = message, file, line, col
        self.path, self.at_key, self.subject = tuple(path), at_key, subject
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [str(p) for p in (self.file, self.line, self.col) if p is not None]
        if where:
            return f"{':'.join(where)}: {self.message}"
        head = " ".join(s for s in (self.subject, describe(self.path)) if s)
        return f"{head}: {self.message}" if head else self.message

    def within(self, *outer: str | int) -> InputError:
        """The same error, its path seen from a mapping that holds the input under OUTER."""
        return type(self)(self.message, path=tuple(outer) + self.path, at_key=self.at_key,
                          subject=self.subject)


def describe(path: KeyPath) -> str:
    """A key path as users write it: services[1].backends[0].weight."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
