"""Imports run one way (docs/ARCHITECTURE.md): a module imports only from lower ranks and its own
package, and there is no import cycle — read from the source, function-level imports included."""

from __future__ import annotations

from imports import SRC, imports, module_file, module_name

# rank of each top-level room of lmforge; a module may import a lower rank or its own package
RANKS = {
    "lmforge": 0,
    "lmforge.errors": 0,
    "lmforge.fileio": 1,
    "lmforge.compat": 1,
    "lmforge.plugins": 1,
    "lmforge.schema": 1,
    "lmforge.host": 1,
    "lmforge.interrupt": 1,
    "lmforge.config": 2,
    "lmforge.saved_model": 2,
    "lmforge.data": 3,
    "lmforge.models": 3,
    "lmforge.optim": 3,
    "lmforge.tasks": 4,
    "lmforge.train": 5,
    "lmforge.report": 5,
    "lmforge.serve": 5,
    "lmforge.export": 5,
    "lmforge.track": 6,
    "lmforge.params": 7,
    "lmforge.stages": 7,
    "lmforge.compare": 7,
}


def room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def modules() -> list[str]:
    return sorted(module_name(p) for p in SRC.joinpath("lmforge").rglob("*.py"))


def test_every_module_has_a_rank():
    assert {room(m) for m in modules()} <= set(RANKS), sorted({room(m) for m in modules()} - set(RANKS))


def test_imports_go_down_the_ranks():
    wrong = []
    for m in modules():
        for imported in imports(module_file(m)):
            if imported == "lmforge" or room(imported) == room(m):
                continue
            if RANKS[room(imported)] >= RANKS[room(m)]:
                wrong.append(f"{m} (rank {RANKS[room(m)]}) imports {imported} (rank {RANKS[room(imported)]})")
    assert not wrong, "\n".join(wrong)


def test_models_never_import_tasks_and_data_never_imports_models():
    for m in modules():
        rooms = {room(i) for i in imports(module_file(m))}
        if m.startswith("lmforge.models"):
            assert "lmforge.tasks" not in rooms, m
        if m.startswith("lmforge.data"):
            assert not rooms & {"lmforge.models", "lmforge.tasks"}, m


def test_no_import_cycles():
    graph = {m: {i for i in imports(module_file(m)) if i in set(modules())} for m in modules()}
    # a package's __init__ importing its own submodules is how Python packages work; a cycle through
    # two modules that are not each other's package is what this forbids
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if n.startswith(m + "."):  # a package importing its own submodule
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_sees_function_level_imports(tmp_path):
    """The import graph counts an import inside a function body (they are how lmforge keeps slow
    libraries out of start-up, and they must obey the ranks too)."""
    assert "lmforge.saved_model" in imports(module_file("lmforge.models"))  # imported in load_backbone
