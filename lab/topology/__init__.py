"""Topology files: YAML under topologies/ -> a validated model (lab/topology/model.py).

    topo = lab.topology.load("topologies/nat46.yaml", datapaths=DATAPATHS)

Nothing here touches the kernel: a file that loads is one the builder can create.

The `datapath:` sections belong to datapath features (lab/datapath/), which this layer sees
only through `TopologyHooks`, the narrow interface declared here and handed in by the caller:
each feature names the section it owns and its schema (the file's schema lists exactly those
sections), checks what a schema cannot say at the bad value's line and column, and derives
into the model what it implies (programs, routes, neighbours, offloads, sysctls), so the
builder creates it like anything written in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lab import yamlfile
from lab.errors import UsageError
from lab.topology.model import BpfAttach, Host, Interface, Link, Node, Route, Topology, VxlanEnd
from lab.topology.model import from_document as model_from_document

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
_schema: dict | None = None

__all__ = ["BpfAttach", "Host", "Interface", "Link", "Node", "Route", "Topology", "TopologyHooks", "VxlanEnd",
           "check_lab_name", "from_document", "load", "parse", "schema"]


class TopologyHooks(Protocol):
    """What loading a topology needs of a datapath feature (lab.datapath.Datapath)."""

    @property
    def section(self) -> str | None:
        """The key under `datapath:` the feature owns, if it has one."""

    @property
    def section_schema(self) -> Mapping[str, Any]:
        """JSON Schema of that section (its owner checks the rest in check())."""

    def check(self, doc: yamlfile.Document, topo: Topology) -> None:
        """Refuse what is wrong for this feature, as an InputError at the bad value's
        position; called for every file, with the model built (a feature without a
        section in the file has nothing to check, or checks what else it reads)."""

    def derive(self, topo: Topology) -> None:
        """Add to the model what the file implies for this feature (after every check)."""


def schema(datapaths: Sequence[TopologyHooks] = ()) -> dict:
    """The topology file's JSON Schema, with a `datapath:` section for each of DATAPATHS."""
    global _schema
    if _schema is None:
        _schema = yamlfile.load_schema(SCHEMA_PATH)
    sections = {d.section: dict(d.section_schema) for d in datapaths if d.section}
    if not sections:
        return _schema
    datapath = _schema["properties"]["datapath"]
    return {**_schema, "properties": {**_schema["properties"], "datapath": {
        **datapath, "properties": {**datapath.get("properties", {}), **sections}}}}


def check_lab_name(name: str) -> str:
    if not re.fullmatch(schema()["$defs"]["labname"]["pattern"], name):
        raise UsageError(f"bad lab name '{name}': use 1-24 lowercase letters, digits and '-', "
                         "starting with a letter")
    return name


def from_document(doc: yamlfile.Document, name: str | None = None, default_name: str = "lab",
                  datapaths: Sequence[TopologyHooks] = ()) -> Topology:
    """The model of a parsed file: checked against the schema, built, checked by each
    datapath feature, then completed by them (errors at file:line:col)."""
    yamlfile.validate(doc, schema(datapaths))
    if name is not None:
        check_lab_name(name)
    topo = model_from_document(doc, name, default_name)
    for d in datapaths:
        d.check(doc, topo)
    for d in datapaths:
        d.derive(topo)
    return topo


def load(path: str | Path, name: str | None = None,
         datapaths: Sequence[TopologyHooks] = ()) -> Topology:
    """Load and check a topology file; raises InputError (file:line:col) on bad input."""
    stem = re.sub(r"[^a-z0-9-]", "-", Path(path).stem.lower()).strip("-")
    default = stem if re.fullmatch(schema()["$defs"]["labname"]["pattern"], stem) else "lab"
    return from_document(yamlfile.load(path), name, default, datapaths)


def parse(text: str, name: str | None = None, file: str = "<string>",
          datapaths: Sequence[TopologyHooks] = ()) -> Topology:
    """Like load(), from a string (tests, generated topologies)."""
    return from_document(yamlfile.parse(text, file), name, "lab", datapaths)
