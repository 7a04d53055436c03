"""The house shows its floors (README, *Architecture*): every import of the package, top-level or inside a
function, points down or sideways, never up; no two modules import each other, however indirectly; the library
floor imports no Hydra; the package root holds the entry points alone."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "representation_probe"
# Bottom to top: a module may import its own floor and the floors below it.
FLOORS = [
    {"errors", "config", "runs", "tracking.keys"},  # what everything shares: errors, values, a run's records
    {"metrics"},
    {"models", "data"},
    {"inversion", "decoders", "probes", "similarity", "tradeoff", "training", "atlas", "reporting"},  # the studies
    {"api"},  # the library
    {"tracking", "cli"},  # experiment tracking and the command line's machinery
    {"commands"},
    {"__init__", "__main__"},  # the entry points
]
ROOT_FILES = {"__init__.py", "__main__.py", "errors.py"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return found


def imports(path: Path) -> set[str]:
    """The module each import statement of the file reaches (absolute imports; the package uses no other):
    `from pkg import mod` reaches pkg.mod when that is a module, else pkg (a name defined in it)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def floor(module: str) -> int:
    for name in (module, module.split(".")[0]):  # tracking.keys before tracking
        for level, members in enumerate(FLOORS):
            if name in members:
                return level
    raise AssertionError(f"{module} is on no floor: add its package to FLOORS")


def edges() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for module, path in known.items():
        targets = set()
        for name in imports(path):
            if not name.startswith("representation_probe."):
                continue
            inner = name.removeprefix("representation_probe.")
            while inner and inner not in known:  # `from pkg.mod import function` -> pkg.mod
                inner = inner.rpartition(".")[0]
            inner = inner or "__init__"  # `from representation_probe import ConfigError`: the package itself
            if inner != module:
                targets.add(inner)
        graph[module] = targets
    return graph


def test_every_import_points_down_or_sideways():
    upward = [f"{source} imports {target}" for source, targets in edges().items() for target in targets
              if floor(target) > floor(source)]
    assert not upward, upward


def test_no_import_cycle():
    graph, state, cycles = edges(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_library_floor_imports_no_hydra():
    below_cli = [m for m in modules() if floor(m) <= floor("api")]
    hydra = [m for m in below_cli if any(n == "hydra" or n.startswith("hydra.") for n in imports(modules()[m]))]
    assert not hydra, hydra


def test_the_package_root_holds_the_entry_points_and_the_errors_alone():
    assert {p.name for p in PACKAGE.glob("*.py")} == ROOT_FILES
