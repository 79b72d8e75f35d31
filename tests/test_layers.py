"""Layers import downward: buddy never imports replay or experiments, and no module imports
another module's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HIGHER = ("replay", "experiments")
PACKAGES = ("buddy", "replay", "experiments", "benchmarks")


def _imported_modules(tree: ast.AST, path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """Return (line, module, names) of every import in ``tree``, lazy ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(REPO).with_suffix("").parts[:-node.level]
                module = ".".join((*parts, module)) if module else ".".join(parts)
            found.append((node.lineno, module, tuple(a.name for a in node.names)))
    return found


def test_buddy_source_never_imports_replay_or_experiments() -> None:
    offending = []
    for path in sorted((REPO / "buddy").rglob("*.py")):
        for line, module, _ in _imported_modules(ast.parse(path.read_text()), path):
            if module.split(".")[0] in HIGHER:
                offending.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert offending == []


def test_importing_every_buddy_module_loads_no_replay_or_experiments_module() -> None:
    code = (
        "import importlib, pkgutil, sys, buddy\n"
        "names = [m.name for m in pkgutil.walk_packages(buddy.__path__, 'buddy.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "higher = sorted(m for m in sys.modules if m.split('.')[0] in ('replay', "
        "'experiments'))\n"
        "print(len(names))\n"
        "assert not higher, higher\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 50  # the walk really found the package's modules


def test_no_module_imports_another_modules_private_names() -> None:
    offending = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, module, names in _imported_modules(ast.parse(path.read_text()), path):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                if private and module != "__future__":
                    offending.append(f"{path.relative_to(REPO)}:{line} {module} {private}")
    assert offending == []
