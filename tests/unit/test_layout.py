"""The package's import graph: data flows one way, nothing reaches back up."""

import ast
import tomllib
from pathlib import Path

import pytest

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


def package_of(module: str) -> str:
    """msinet.imaging.decode -> imaging; top-level modules (msinet.crop) are their own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "msinet"


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {package_of(m): set() for m in graph}
    for m, deps in graph.items():
        packages[package_of(m)] |= {package_of(d) for d in deps} - {package_of(m)}
    return packages


def test_no_package_imports_one_that_depends_on_it():
    """Packages by concern, in layers: no import reaches back up (a package cycle would mean
    one does)."""
    packages = package_graph(import_graph())
    assert {"model", "weights", "engine", "imaging", "evaluation", "training", "cli"} <= set(
        packages
    )
    assert cycles(packages) == []
    assert not packages["model"] - {"msinet"}  # the model depends on nothing of ours
    assert "server" not in packages["pipeline"] | packages["engine"] | packages["imaging"]


# The one-way flow as layers, lowest first: each package imports only from its own or lower ones.
LAYERS = [
    {"msinet", "model"},
    {"imaging"},
    {"density", "data", "crop", "aoi"},
    {"weights"},
    {"engine"},
    {"pipeline"},
    {"evaluation", "training", "video", "integrations"},
    {"jobs"},
    {"server"},
    {"scale"},
    {"cli", "__main__"},
]


def test_imports_go_down_the_layers_only():
    layer = {p: i for i, ps in enumerate(LAYERS) for p in ps}
    packages = package_graph(import_graph())
    assert set(packages) <= set(layer), set(packages) - set(layer)
    upward = [(p, d) for p, deps in packages.items() for d in deps
              if layer[d] > layer[p] and not (p == "msinet" and d == "pipeline")]  # fmt: skip
    assert upward == []  # msinet.load is the pipeline's, imported on first use


def test_no_module_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}  # fmt: skip
    assert long == {}


def test_every_package_ships_in_the_wheel():
    """The wheel holds exactly the packages pyproject lists; a forgotten one breaks installs."""
    pyproject = SRC.parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not a checkout: no pyproject.toml beside src/")
    listed = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    on_disk = {module_name(p) for p in SRC.rglob("__init__.py")}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert {p for p in listed if p.startswith("msinet.")} <= on_disk
