"""The package's import graph: data flows one way, nothing reaches back up."""

import ast
from pathlib import Path

import msinet

SRC = Path(msinet.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """msinet module -> the msinet modules it imports, at the top or inside functions."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from msinet.server.routes import health` imports a submodule
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("msinet") and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert "msinet.server.service" in graph and graph["msinet.server.app"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def reachable(graph: dict[str, set[str]], start: str, skip: str = "") -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen and m != skip:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_serving_reaches_torch_only_through_the_torch_engine():
    graph = import_graph()
    serving = reachable(graph, "msinet.server.app")
    assert not any(m.startswith(("msinet.scale", "msinet.training.train")) for m in serving)
    assert "msinet.model.net" in serving  # --engine torch loads it, on demand
    assert "msinet.model.net" not in reachable(
        graph, "msinet.server.app", skip="msinet.engine.torch"
    )
