"""What goes over a connection to a host's agent: one JSON object per line, each way.

  request   {"id": N, "op": NAME, ...arguments}
  answer    {"id": N, "ok": RESULT} or {"id": N, "error": ERROR}
  event     {"event": "out", "proc": P, "fd": 1|2, "data": BASE64}
            {"event": "exit", "proc": P, "code": N}   (as subprocess: -N for signal N)

An ERROR carries the lab's error type and, for an InputError, its key path, so a problem the
host found in the topology (a NIC it lacks) is reported at the file's line and column here.
"""

from __future__ import annotations

import json
from typing import Any

from lab.errors import InputError, LabError, UsageError

PROTOCOL = 1  # bumped when a message changes meaning


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def error_to_wire(e: BaseException) -> dict[str, Any]:
    if isinstance(e, InputError):
        return {"type": "input", "message": e.message, "file": e.file, "line": e.line,
                "col": e.col, "path": list(e.path), "at_key": e.at_key, "subject": e.subject}
    kind = "usage" if isinstance(e, UsageError) else "lab" if isinstance(e, LabError) \
        else "internal"
    message = str(e) if kind != "internal" else f"{type(e).__name__}: {e}"
    return {"type": kind, "message": message}


def error_from_wire(d: dict[str, Any], where: str) -> LabError:
    """The error an agent sent, as the lab's own; WHERE (the host) prefixes plain messages."""
    if d.get("type") == "input":
        if d.get("file") is not None:
            return InputError(d["message"], d["file"], d.get("line"), d.get("col"))
        return InputError(d["message"], path=tuple(d.get("path", ())),
                          at_key=bool(d.get("at_key")), subject=d.get("subject", ""))
    cls = UsageError if d.get("type") == "usage" else LabError
    return cls(f"{where}: {d.get('message', '?')}")
