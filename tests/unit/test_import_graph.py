"""The framework's modules import each other without cycles: each layer can be read,
tested and replaced on its own, and no import order can leave a module half-loaded."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chalicelib" / "longtask"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("longtask", *parts))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in its body (TYPE_CHECKING
    blocks and function bodies included: a cycle there is still a cycle of concepts)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = (node.module or "").replace("chalicelib.longtask", "longtask", 1)
            # `from . import x` and `from .web import routes` name modules, not attributes.
            candidates = [f"{target}.{alias.name}" for alias in node.names]
            found.update(c for c in candidates if c in modules)
            if not any(c in modules for c in candidates) and target in modules:
                found.add(target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.replace("chalicelib.longtask", "longtask", 1)
                if target in modules:
                    found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as the path of modules that closes it, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "longtask.backends.writes" in graph["longtask.aws.store"]  # from ..backends.writes
    assert "longtask.service" in graph["longtask.web.routes"]  # from ..service import ...
    assert "longtask.web.routes" in graph["longtask.longtasks"]  # from .web.routes import ...
    assert graph["longtask.model"] <= {"longtask.progress"}  # pure: near the bottom


def test_the_cycle_finder_reports_the_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_the_framework_imports_itself_back() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def reaches(graph: dict[str, set[str]], start: str, target_prefix: str) -> list[str] | None:
    """A path of imports from `start` to a module under `target_prefix`, or None."""
    seen: set[str] = set()
    frontier = [[start]]
    while frontier:
        path = frontier.pop()
        node = path[-1]
        if node != start and (node == target_prefix or node.startswith(target_prefix + ".")):
            return path
        for target in sorted(graph.get(node, ())):
            if target not in seen:
                seen.add(target)
                frontier.append([*path, target])
    return None


def test_the_memory_twin_and_the_aws_code_never_import_each_other() -> None:
    graph = import_graph()
    for module in graph:
        if module.startswith("longtask.aws"):
            assert "longtask.backends.memory" not in graph[module], module
        if module == "longtask.backends.memory":
            assert not any(t.startswith("longtask.aws") for t in graph[module])


def test_ops_builds_backends_without_the_web_layer_or_chalice() -> None:
    graph = import_graph()
    assert reaches(graph, "longtask.ops", "longtask.web") is None
    assert reaches(graph, "longtask.ops", "longtask.longtasks") is None
    chalice_users = {
        module
        for path in PACKAGE.rglob("*.py")
        if "chalice" in {n.split(".")[0] for n in _absolute_imports(path)}
        for module in [module_name(path)]
    }
    for user in chalice_users:
        assert reaches(graph, "longtask.ops", user) is None and user != "longtask.ops", user


def _absolute_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
