"""The package's import graph: imports run one way (cli/experiments -> engine -> compress, continual -> nn -> data ->
utils) and no module imports itself back through others (DESIGN.md, README's layout section)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "yoloseghw"
LAYERS = {"utils": 0, "data": 1, "nn": 2, "continual": 3, "compress": 3, "engine": 4, "experiments": 5, "cli": 5}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):
    """Every node of `tree` but those under `if TYPE_CHECKING:` (type hints only, never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def imports() -> dict[str, set[str]]:
    """Every yoloseghw module and the yoloseghw modules it imports at run time (at the top or inside a function)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("yoloseghw"):
                for alias in node.names:  # `from yoloseghw.continual import phases` names a module
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("yoloseghw")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_imports_never_climb_up():
    climbs = [
        f"{m} -> {d}"
        for m, deps in imports().items()
        for d in deps
        if layer(m) is not None and (layer(d) is None or layer(d) > layer(m))
    ]
    assert not climbs, climbs


def test_no_import_cycles():
    graph = imports()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state and module != "yoloseghw":
            visit(module, [module])
    assert not cycles, cycles
