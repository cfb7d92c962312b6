"""YAML input files with positions: every value knows its file, line and column.

Topology and scenario files are loaded here, checked against a JSON Schema, and any error is
reported as `file:line:col: what is wrong`. PyYAML silently keeps the last of two equal keys;
this loader refuses them, since a duplicated node or link name is almost always a mistake.

Hostile or broken files are refused the same way, before they cost much: bytes that are not
UTF-8, nesting deeper than MAX_DEPTH, more than MAX_ALIASES aliases or a document that expands
to more than MAX_VALUES values through them (a "billion laughs" file), and merge keys (`<<`,
whose merged values would have no place of their own to report errors at).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab import schema as schema_errors
from lab.errors import InputError, KeyPath

Path_ = KeyPath

MAX_DEPTH = 64             # topologies and scenarios nest about 8 deep
MAX_ALIASES = 100          # anchors are for sharing a few blocks, not for generating files
MAX_VALUES = 100_000       # after aliases are expanded; the largest real file has about 1000


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


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer with limits: nesting depth and the number of aliases."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file, self.depth, self.aliases = file, 0, 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _at(self.file, event.start_mark, f"more than {MAX_ALIASES} YAML "
                          "aliases (*name): refused, as a file that could expand without "
                          "bound")
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _at(self.file, event.start_mark, f"nested more than {MAX_DEPTH} deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _at(file: str, mark: yaml.Mark, message: str) -> InputError:
    return InputError(message, file, mark.line + 1, mark.column + 1)


_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.positions: dict[Path_, Position] = {}
        self.key_positions: dict[Path_, Position] = {}
        self._scalar = yaml.SafeLoader(stream="")  # resolves scalar tags (int, bool, null...)
        self.values = 0

    def convert(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise InputError(f"the document expands to more than {MAX_VALUES} values (through "
                             "YAML aliases): refused", self.file)
        self.positions[path] = _mark(self.file, node)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and \
                node.tag not in (_MAP, _SEQ):
            raise _mark(self.file, node).error(f"unsupported YAML tag {node.tag}")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _mark(self.file, key_node).error(
                        "YAML merge keys (<<) are not supported: write the keys out")
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
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", file) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file) from None
    return parse(decode(raw, file), file)


def decode(raw: bytes, file: str) -> str:
    """RAW as UTF-8, or an InputError at the first byte that is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw[:e.start].decode("utf-8", "replace"))
        raise InputError(f"not UTF-8: byte 0x{raw[e.start]:02x} cannot start or continue a "
                         "character here", file, line, col) from None


def _line_col(before: str) -> tuple[int, int]:
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def parse(text: str, file: str = "<string>") -> Document:
    loader = None
    try:
        loader = _Loader(text, file)
        node = loader.get_single_node()
        if node is None:
            raise InputError("the file is empty", file)
        conv = _Converter(file)
        data = conv.convert(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise InputError(f"YAML syntax error: {e.problem or e.context}", file, line,
                         col) from None
    except yaml.reader.ReaderError as e:        # a character YAML does not allow
        line, col = _line_col(text[:e.position])
        ch = e.character if isinstance(e.character, str) else chr(e.character)
        raise InputError(f"YAML does not allow the character U+{ord(ch):04X} here", file,
                         line, col) from None
    finally:
        if loader is not None:
            loader.dispose()
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
    validator = schema_errors.validator(schema)
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: (doc.position(tuple(at) + tuple(e.absolute_path)).line,
                                   -len(e.path)))
    err = schema_errors.input_error(errors, at)
    if err is not None:
        raise doc.error(err.path, err.message + note, key=err.at_key)


def load_schema(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)
