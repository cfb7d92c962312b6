"""YAML input files with positions: every value knows its file, line and column.

Topology and scenario files are loaded here, checked against a JSON Schema, and any error is
reported as `file:line:col: what is wrong`. PyYAML silently keeps the last of two equal keys;
this loader refuses them, since a duplicated node or link name is almost always a mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lab import schema as schema_errors
from lab.errors import InputError, KeyPath

Path_ = KeyPath


@dataclass(frozen=True)
class Position:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def error(self, message: str) -> InputError:
        return InputError(message, self.file, self.line, self.col)


class Document:
    """Parsed YAML data plus the position of every mapping key and value in it."""

    def __init__(self, data: Any, positions: dict[Path_, Position], key_positions: dict[
            Path_, Position], file: str):
        self.data, self.file = data, file
        self._positions, self._key_positions = positions, key_positions

    def position(self, path: Path_, key: bool = False) -> Position:
        """Position of the value at PATH (or of its key); falls back to the nearest parent."""
        table = self._key_positions if key else self._positions
        path = tuple(path)
        while path:
            if path in table:
                return table[path]
            if key and path in self._positions:
                return self._positions[path]
            path = path[:-1]
        return self._positions.get((), Position(self.file, 1, 1))

    def error(self, path: Path_, message: str, key: bool = False) -> InputError:
        return self.position(path, key).error(message)

    def place(self, err: InputError, at: Path_ = ()) -> InputError:
        """ERR (a key path inside the value at AT) at its position in this file."""
        return self.error(tuple(at) + err.path, err.message, key=err.at_key)


def _mark(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.positions: dict[Path_, Position] = {}
        self.key_positions: dict[Path_, Position] = {}
        self._scalar = yaml.SafeLoader(stream="")  # resolves scalar tags (int, bool, null...)

    def convert(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.positions[path] = _mark(self.file, node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int)):
                    raise _mark(self.file, key_node).error("mapping keys must be strings")
                key = str(key)
                if key in out:
                    first = self.key_positions[path + (key,)]
                    raise _mark(self.file, key_node).error(
                        f"duplicate key '{key}' (first defined at line {first.line})")
                self.key_positions[path + (key,)] = _mark(self.file, key_node)
                out[key] = self.convert(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar.construct_object(node, deep=True)


def load(path: str | Path) -> Document:
    """Read and parse a YAML file; syntax errors and duplicate keys raise InputError."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError("no such file", file) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file) from None
    return parse(text, file)


def parse(text: str, file: str = "<string>") -> Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise InputError(f"YAML syntax error: {e.problem or e.context}", file, line,
                         col) from None
    if node is None:
        raise InputError("the file is empty", file)
    conv = _Converter(file)
    data = conv.convert(node)
    return Document(data, conv.positions, conv.key_positions, file)


_WHOLE = object()


def validate(doc: Document, schema: dict, at: Path_ = (), data: Any = _WHOLE,
             note: str = "") -> None:
    """Check DOC against SCHEMA; raise InputError at the first (deepest) error's position.

    With AT (and DATA), check DATA as the value at path AT of DOC (default: the value found
    there): a part of a file checked against its own schema, e.g. a scenario step's parameters
    against its step kind's schema, errors reported where they are. NOTE ends the message.
    """
    if data is _WHOLE:
        data = doc.data
        for key in at:
            data = data[key]
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: (doc.position(tuple(at) + tuple(e.absolute_path)).line,
                                   -len(e.path)))
    err = schema_errors.input_error(errors, at)
    if err is not None:
        raise doc.error(err.path, err.message + note, key=err.at_key)


def load_schema(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)
