"""The lab's layers, read from its source: the library under lab/ never imports the datapath
features (lab.datapath) or the command line (lab.commands), nothing finds a module by a name
in a string, and argparse code lives only where the CLI goes. docs/architecture.md explains
the layers; this test fails on the first import that breaks them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"

# The top: the command line, the datapath features with their registry, the entry points.
TOP = ("lab.commands", "lab.datapath", "lab.pytest_plugin", "lab.__main__")
UPPER = ("lab.datapath", "lab.commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(LAB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in PATH, those inside functions too."""
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


SOURCES = sorted(LAB.rglob("*.py"))
LIBRARY = [p for p in SOURCES if not within(module_name(p), TOP)]


def test_the_sources_are_found():
    names = {module_name(p) for p in LIBRARY}
    assert {"lab.lab", "lab.topology", "lab.bpf.topology", "lab.scenarios.runner",
            "lab.cli"} <= names
    assert "lab.datapath.registry" not in names


@pytest.mark.parametrize("path", LIBRARY, ids=module_name)
def test_the_library_never_imports_the_features_or_the_cli(path):
    upward = [f"{path.relative_to(LAB.parent)}:{line}: imports {name}"
              for line, name in imports(path) if within(name, UPPER)]
    assert not upward, "the library must receive datapath features as arguments:\n" + \
        "\n".join(upward)


@pytest.mark.parametrize("path", [p for p in SOURCES if within(module_name(p), ("lab.datapath",))
                                  and module_name(p) != "lab.datapath.registry"],
                         ids=module_name)
def test_features_never_import_the_cli_layer_or_the_registry(path):
    wrong = [f"{path.relative_to(LAB.parent)}:{line}: imports {name}"
             for line, name in imports(path)
             if within(name, ("lab.commands", "lab.datapath.registry"))]
    assert not wrong, "\n".join(wrong)


def test_nothing_is_imported_by_a_name_in_a_string():
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("import_module", "__import__"):
                    found.append(f"{path.relative_to(LAB.parent)}:{node.lineno}")
    assert not found, "modules are imported by name here: " + ", ".join(found)


def test_argparse_code_lives_where_the_cli_goes():
    """lab/cli.py (the machinery), lab/commands/ (the core's commands), and a feature's own
    cli.py (commands it offers through the contract)."""
    allowed = ("lab.cli", "lab.commands")
    found = []
    for path in SOURCES:
        name = module_name(path)
        if within(name, allowed) or (within(name, ("lab.datapath",))
                                     and name.rsplit(".", 1)[-1].endswith("cli")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("add_parser", "add_argument",
                                                                 "ArgumentParser"):
                found.append(f"{path.relative_to(LAB.parent)}:{node.lineno}")
    assert not found, "argparse code outside the CLI's places: " + ", ".join(found)
