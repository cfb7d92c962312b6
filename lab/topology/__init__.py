"""Topology files: YAML under topologies/ -> a validated model (lab/topology/model.py).

    topo = lab.topology.load("topologies/nat46.yaml")

Nothing here touches the kernel: a file that loads is one the builder can create.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from lab import yamlfile
from lab.errors import UsageError
from lab.topology.model import (BpfAttach, Interface, Link, Node, Route, Topology,
                                from_document)

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
_schema: dict | None = None

# Control planes that check their own section of `datapath:` once the model is built:
# section -> module with check_section(doc, path, topology), raising InputError at the bad
# value's position. (The schema keeps each section a free object; its owner knows its rules.)
# A module may also have derive(topology), which adds to the model what the section implies
# (programs, routes, neighbours, offloads), so the builder creates it like the rest, and
# start(lab), which starts what runs beside the datapath once the lab is built (servers,
# through NodeHandle.popen: journaled, stopped by `lab down`).
DATAPATH_SECTIONS: dict[str, str] = {
    "gateway": "lab.datapath.gateway.topology",
    "translator": "lab.datapath.translator_topology",
}

__all__ = ["BpfAttach", "Interface", "Link", "Node", "Route", "Topology", "check_datapath",
           "check_lab_name", "datapath_modules", "load", "parse", "schema"]


def schema() -> dict:
    global _schema
    if _schema is None:
        _schema = yamlfile.load_schema(SCHEMA_PATH)
    return _schema


def check_lab_name(name: str) -> str:
    if not re.fullmatch(schema()["$defs"]["labname"]["pattern"], name):
        raise UsageError(f"bad lab name '{name}': use 1-24 lowercase letters, digits and '-', "
                         "starting with a letter")
    return name


def _from(doc: yamlfile.Document, name: str | None, default_name: str = "lab") -> Topology:
    yamlfile.validate(doc, schema())
    if name is not None:
        check_lab_name(name)
    topo = from_document(doc, name, default_name)
    check_datapath(doc, topo)
    return topo


def check_datapath(doc: yamlfile.Document, topo: Topology) -> None:
    """Have each control plane check its `datapath:` section (errors at file:line:col), then
    derive what the sections imply into the model."""
    modules = datapath_modules(topo)
    for section, module in modules.items():
        module.check_section(doc, ("datapath", section), topo)
    from lab.datapath.kubeproxy import feature as kubeproxy_feature

    kubeproxy_feature.check(doc, topo)
    for module in modules.values():
        if hasattr(module, "derive"):
            module.derive(topo)


def datapath_modules(topo: Topology) -> dict:
    """Section name -> the module of each datapath section TOPO has."""
    return {s: importlib.import_module(DATAPATH_SECTIONS[s]) for s in topo.datapath
            if s in DATAPATH_SECTIONS}


def load(path: str | Path, name: str | None = None) -> Topology:
    """Load and check a topology file; raises InputError (file:line:col) on bad input."""
    stem = re.sub(r"[^a-z0-9-]", "-", Path(path).stem.lower()).strip("-")
    default = stem if re.fullmatch(schema()["$defs"]["labname"]["pattern"], stem) else "lab"
    return _from(yamlfile.load(path), name, default)


def parse(text: str, name: str | None = None, file: str = "<string>") -> Topology:
    """Like load(), from a string (tests, generated topologies)."""
    return _from(yamlfile.parse(text, file), name)
