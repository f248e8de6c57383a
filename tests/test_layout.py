"""The package by concern: wings that import only downwards, no cycle, thin faces, and a shallow import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "medlora"
# Bottom to top; a wing may import its own level's modules only inside itself, and any lower level.
LEVELS = [
    {"common"},
    {"data"},
    {"clinical", "model", "generation", "export"},
    {"safety", "retrieval", "training"},
    {"grounding"},
    {"datasets", "serving"},
    {"evaluation"},
]
LEVEL = {wing: n for n, wings in enumerate(LEVELS) for wing in wings}
SCRIPTS = ["download_model.py", "train_model.py", "evaluate_model.py", "inference.py", "export_model.py"]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``path`` imports (at any depth of the file: lazy imports count)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(x for x in (base, node.module or "") if x)
            out |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in MODULES and m not in (name, "medlora")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _wing(module: str) -> str:
    return module.split(".")[1]


def test_only_wings_at_the_top_and_every_wing_has_a_level():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py"]
    wings = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert wings == set(LEVEL), "a new wing needs a level in LEVELS"


def test_wings_import_only_downwards():
    upward = [
        f"{a} -> {b}"
        for a, targets in GRAPH.items()
        if a != "medlora"
        for b in targets
        if _wing(a) != _wing(b) and LEVEL[_wing(b)] >= LEVEL[_wing(a)]
    ]
    assert not upward


def test_no_cycle_and_at_most_eleven_levels_from_the_scripts():
    @cache
    def depth(module: str, seen: frozenset = frozenset()) -> int:
        assert module not in seen, f"import cycle through {module}"
        return 1 + max((depth(t, seen | {module}) for t in GRAPH[module]), default=0)

    script_imports = set()
    for script in SCRIPTS:
        script_imports |= {m for m in _imports("script", ROOT / script) if m in MODULES}
    assert 1 + max(depth(m) for m in script_imports) <= 11


def test_wing_faces_are_thin_and_never_pull_in_torch():
    faces = [f"medlora.{w}" for w in LEVEL]
    code = "import sys\n" + "".join(f"import {f}\n" for f in faces) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for w in LEVEL:
        assert len((PACKAGE / w / "__init__.py").read_text().splitlines()) <= 10
