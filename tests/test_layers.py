"""The layers point down: no import cycle in src/vin (counting imports inside functions too), config.py a leaf,
checkpoints and strategies import no model kind (kinds are found through vin.model.registry)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The vin modules a file imports anywhere (module level or inside functions); TYPE_CHECKING blocks left out."""
    name, package = module_name(path), module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vin")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("vin"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found - {name}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "vin").rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_vin():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_config_is_a_leaf_and_what_uses_a_model_imports_no_model_kind():
    edges = graph()
    assert edges["vin.config"] <= {"vin.errors"} and edges["vin.errors"] == set()
    kinds = {"vin.model.vin", "vin.backbones.wan"}  # found through vin.model.registry, by config.json class name
    users = ("vin.checkpoint", "vin.train", "vin.train_state", "vin.generation.strategies", "vin.generation.api",
             "vin.generation.distributed", "vin.generation.memory", "vin.diffusion.objective", "vin.diffusion.sampling",
             "vin.metrics.probe", "vin.metrics.suite", "vin.model.registry")  # fmt: skip
    for module in users:
        assert not {m for m in edges[module] if m.rpartition(".")[0] in kinds or m in kinds}, module
    assert "vin.model.vin" not in {m.rpartition(".")[0] for m in edges["vin.backbones.wan"]} | edges["vin.backbones.wan"]


def test_the_model_knows_no_dataset_and_a_model_loads_no_other_kind():
    edges = graph()
    for module, imported in edges.items():
        if module.startswith(("vin.model", "vin.backbones")):
            assert not {m for m in imported if m.startswith("vin.data")}, module
    import subprocess
    import sys

    code = "import sys, vin.model.registry, vin.checkpoint; print(sorted(m for m in sys.modules if m in ('vin.model.vin', 'vin.backbones.wan')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
