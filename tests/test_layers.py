"""The layer order of the README holds in the code: a module imports only from its own layer and
the layers below it (read with ``ast``, imports inside functions included), and the layers up to
the theory never import torch, so that they import in a blink and run anywhere.

Scheme classes are asked for nothing outside the scheme package: no ``isinstance`` against a
scheme class anywhere else in ``toolkit/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "toolkit"

# lowest first; a module's layer is the first entry whose prefix matches (cli modules first)
LAYERS = [
    "checks",
    "limits",
    "files",
    "schemes",
    "models",
    "cluster",
    "theory",
    "workloads",
    "replay",
    "runs",
    "distributed",
    "compare",
    "plots",
    "sweeps",
    "notebook",
    "cli",
]
NO_TORCH = {"checks", "limits", "files", "schemes", "models", "cluster", "theory"}
CLI_MODULES = {"toolkit.cli", "toolkit.cli_args", "toolkit.demo", "toolkit.__main__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    if module in CLI_MODULES or module.endswith(".cli"):
        return "cli"
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "toolkit" and parts[1] in LAYERS:
        return parts[1]
    return None if module == "toolkit" else "?"


def imports(path: Path) -> list[str]:
    """Absolute names of every module imported by ``path`` (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = [module_name(p) for p in MODULES if layer_of(module_name(p)) == "?"]
    assert not unknown, f"modules outside the layer table: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path):
    own = layer_of(module_name(path))
    if own is None:
        return
    rank = LAYERS.index(own)
    for name in imports(path):
        if name.split(".")[0] == "torch":
            assert own not in NO_TORCH, f"{module_name(path)} ({own}) imports {name}"
        target = layer_of(name) if name.startswith("toolkit.") else None
        if target in (None, "?"):
            continue
        assert LAYERS.index(target) <= rank, (
            f"{module_name(path)} ({own}) imports {name} ({target})"
        )


def test_readme_lists_the_layers_in_this_order():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| layer | module | what it holds |") :]
    rows = re.findall(r"^\| (\w+) \|", table, re.M)
    assert rows[1 : len(LAYERS) + 1] == LAYERS  # after the header row


def test_no_isinstance_on_scheme_classes_outside_the_scheme_package():
    from toolkit.schemes import SCHEMES

    names = {cls.__name__ for cls in SCHEMES.values()} | {"Scheme"}
    offenders = []
    for path in MODULES:
        if "schemes" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                classes = node.args[1]
                elts = classes.elts if isinstance(classes, ast.Tuple) else [classes]
                hit = {getattr(e, "id", getattr(e, "attr", None)) for e in elts} & names
                if hit - {"Scheme"}:
                    offenders.append(f"{module_name(path)}:{node.lineno} {sorted(hit)}")
    assert not offenders, offenders
