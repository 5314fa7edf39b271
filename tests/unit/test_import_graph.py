"""No two files of services/ or bench/ import each other, directly or round a longer loop; the
two services share the read model and never import each other.

The graph is read from the source (no import runs): every `import` and `from ... import`
statement anywhere in a file, at module level, under `if TYPE_CHECKING:` or inside a function
(a function-level import is still a dependency, only a later one). Relative imports are
resolved against the file's package, and `from pkg import name` is an edge to `pkg.name` when
that is a module, else to `pkg` itself. Importing `a.b` is an edge to `a.b` only, not to the
package `a` that Python also runs first: otherwise every package whose `__init__` re-exports
its own modules would be a loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
Graph = dict[str, set[str]]


def modules(packages: Iterable[Path]) -> dict[str, Path]:
    """Every module of the given package folders, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The modules (dotted names, maybe not ours) one import statement of `name` refers to."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    # `from pkg import module` names the module; `from pkg import name`, the package
    return [f"{base}.{alias.name}" if base else alias.name for alias in node.names] + [base]


def import_graph(packages: Iterable[Path]) -> Graph:
    """Module -> the modules of these packages it imports anywhere in its file."""
    known = modules(packages)
    graph: Graph = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                hits = {_longest_known(t, known) for t in _targets(node, name, is_package)}
            elif isinstance(node, ast.ImportFrom):
                *members, base = _targets(node, name, is_package)
                hits = {m for m in members if m in known}
                if len(hits) < len(members):
                    hits.add(base)
            else:
                continue
            graph[name] |= {hit for hit in hits if hit in known and hit != name}
    return graph


def _longest_known(dotted: str, known: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def cycles(graph: Graph) -> list[list[str]]:
    """One loop through each strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # iterative, so a long chain of imports cannot reach the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_loop_in(graph, group) for group in groups]


def _loop_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    first = min(group)
    came_from: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & group):
                if child == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(came_from[path[-1]])
                    return [first, *reversed(path[:-1]), first]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no loop in {group}")  # a strongly connected group always has one


def test_services_and_bench_have_no_import_cycles() -> None:
    packages = [p for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()]
    graph = import_graph([*packages, ROOT / "bench"])
    assert {"auth_gateway.gateway", "session_registry.bootstrap", "bench.soak"} <= set(graph)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in found)


NEVER = {
    "session_registry": {"admin_api"},
    "admin_api": {"session_registry"},
    "read_model": {"session_registry", "admin_api"},
}
"""Package -> the packages it must not import: the registry and the admin API both depend on
the read model and never on each other; the read model serves both and knows neither."""


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def forbidden_imports(graph: Graph) -> list[str]:
    """Each import of a package into one `NEVER` keeps it from, as "module -> module"."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if _package(target) in NEVER.get(_package(module), set())
    )


def test_the_services_share_the_read_model_and_never_import_each_other() -> None:
    services = ROOT / "services"
    graph = import_graph(
        services / name for name in ("read_model", "session_registry", "admin_api")
    )
    assert forbidden_imports(graph) == []
    for service in ("session_registry", "admin_api"):
        reached = {
            _package(t) for m, targets in graph.items() if _package(m) == service for t in targets
        }
        assert "read_model" in reached, f"{service} no longer uses the read model?"
    assert forbidden_imports({"admin_api.a": {"session_registry.b", "read_model.c"}}) == [
        "admin_api.a -> session_registry.b"
    ]


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: relative, function-level, TYPE_CHECKING and `from pkg import module`."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text("from .sub import b\nA = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import C\n    return C\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\nC = 2\n"
    )
    (pkg / "d.py").write_text("from pkg import A\nfrom . import c\n")
    graph = import_graph([pkg])
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg", "pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    (pkg / "c.py").write_text("C = 2\n")
    assert cycles(import_graph([pkg])) == []
