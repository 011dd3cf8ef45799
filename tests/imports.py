"""The import graph of lmforge's own code, read from the source (every `import`, at any depth,
function-level ones included): what the architecture and DVC-deps tests check."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(module: str) -> Path | None:
    """The file of an lmforge module (`lmforge.tasks.base`), or a pipelines script (`_app`, `pipelines.x`)."""
    if module.startswith("lmforge"):
        base = SRC / Path(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None
    path = ROOT / "pipelines" / f"{module.split('.')[-1]}.py"
    return path if path.is_file() else None


def module_name(path: Path) -> str:
    if path.is_relative_to(SRC):
        parts = path.relative_to(SRC).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem


@lru_cache(maxsize=None)
def imports(path: Path) -> frozenset[str]:
    """lmforge modules (and pipelines' `_app`) that `path` imports, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return frozenset(m for m in out if (m == "lmforge" or m.startswith("lmforge.") or m == "_app") and module_file(m))


def closure(*paths: Path) -> set[Path]:
    """Every file of lmforge the given files import, transitively (themselves included), with the
    packages (`__init__.py`) every imported module's import runs."""
    seen: set[Path] = set()
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for mod in imports(path):
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    return seen
