"""The package's import graph, read statically from its source (``ast``; nothing is imported).

Every import counts, module-level or inside a function: a lazy import still ties two packages
together, it only defers the cost. Nodes are lsray's subpackages (``lsray.batch``) and top-level
modules (``lsray.cli``, ``lsray.errors``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import lsray

PACKAGE = Path(lsray.__file__).resolve().parent
#: What the torch modules must not reach: feature extraction, face work, sampling loops, storage
#: belong above models/ (bundles, pipeline), never below.
MODELS_MUST_NOT_IMPORT = ("lsray.audio", "lsray.face", "lsray.sampling", "lsray.storage")

Edge = tuple[str, str]  # (importing node, imported node)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _node(module: str) -> str | None:
    """``lsray.batch.job`` -> ``lsray.batch``; ``lsray.cli`` -> ``lsray.cli``; not lsray -> None."""
    parts = module.split(".")
    if parts[0] != "lsray" or len(parts) == 1:
        return None  # another distribution, or the root package (which imports nothing)
    return ".".join(parts[:2])


def imports(path: Path) -> list[tuple[str, int]]:
    """Every lsray module ``path`` imports, with its line, wherever the import statement sits."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == "lsray":  # `from lsray import storage` imports the subpackage lsray.storage
                found += [(f"lsray.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((source, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "lsray"]


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def edges() -> dict[Edge, list[str]]:
    """Node -> node edges, each with the ``file:line`` imports that make it."""
    graph: dict[Edge, list[str]] = defaultdict(list)
    for path in source_files():
        src = _node(_module_name(path))
        for name, line in imports(path):
            dst = _node(name)
            if src and dst and dst != src:
                graph[(src, dst)].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return graph


def find_cycle(graph: dict[Edge, list[str]]) -> list[str] | None:
    """One cycle as a path of nodes (first node repeated at the end), or None."""
    successors: dict[str, list[str]] = defaultdict(list)
    for src, dst in sorted(graph):
        successors[src].append(dst)
    state: dict[str, str] = {}  # "open" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in successors[node]:
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(successors):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_is_read():
    """Guards the tests below against passing vacuously (a parser that finds nothing)."""
    graph = edges()
    assert ("lsray.batch", "lsray.pipeline") in graph and ("lsray.bundle", "lsray.models") in graph


def test_models_import_only_below_them():
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
           for path in source_files() if path.is_relative_to(PACKAGE / "models")
           for name, line in imports(path) if _node(name) in MODELS_MUST_NOT_IMPORT]
    assert not bad, "lsray.models reaches packages above it:\n  " + "\n  ".join(bad)


def test_no_import_cycle_between_packages():
    graph = edges()
    cycle = find_cycle(graph)
    if cycle:
        hops = [f"{a} -> {b} ({', '.join(graph[(a, b)])})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError(f"import cycle {' -> '.join(cycle)}:\n  " + "\n  ".join(hops))


def test_find_cycle_reports_the_path():
    graph = {("lsray.a", "lsray.b"): ["x"], ("lsray.b", "lsray.c"): ["y"], ("lsray.c", "lsray.a"): ["z"],
             ("lsray.c", "lsray.d"): ["w"]}
    assert find_cycle(graph) == ["lsray.a", "lsray.b", "lsray.c", "lsray.a"]
    assert find_cycle({("lsray.a", "lsray.b"): ["x"]}) is None


def test_only_the_entry_points_import_the_command_table():
    """lsray.cli names command modules as strings and imports them when they run; a runner module
    importing lsray.cli back would make the cycle this rules out."""
    importers = sorted({_module_name(path) for path in source_files()
                        for name, _ in imports(path) if name == "lsray.cli"})
    assert importers == ["lsray.__main__"]
