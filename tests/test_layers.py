"""The import layers of README "How the code is laid out", kept true. Every import in src/
is read from the syntax tree (those inside functions too): a module may import only from
its own layer and the layers above it in LAYERS, what a layer may not use is not reached
through any chain of imports, and no two modules import each other, directly or not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

# (layer, module prefixes), in order: each layer imports only from itself and those above.
LAYERS = [
    ("base", ("bench", "bench.errors", "bench.paths", "bench.terminal", "bench.interrupts",
              "bench.protocol", "bench.atomic", "bench.allocator", "bench.knob_types")),
    ("data", ("bench.data", "bench.datasets")),
    ("core", ("bench.core", "bench.api", "bench.peers")),
    ("records", ("bench.records",)),
    ("training", ("bench.lit",)),
    ("methods", ("bench.methods", "bench.baselines")),
    ("search", ("bench.study", "bench.optuna_adapter")),
    ("report", ("bench.report",)),
    ("harness", ("bench.run", "bench.evaluation", "bench.loggers", "bench.grid_summary",
                 "bench.job_options", "bench.epochs", "bench.recording")),
    ("studies", ("hydra_plugins", "bench.studies", "bench.migrate")),
]  # fmt: skip
EDGE = ("hydra", "lightning", "optuna", "omegaconf")
TRAINING_CODE = (
    "bench.core.train",
    "bench.core.model",
    "bench.core.hand_derived",
    "bench.core.bptt",
    "bench.core.graphs",
    "bench.core.optim",
    "bench.lit",
    "bench.methods",
    "bench.baselines",
    "bench.run",
)
# What a layer's modules may not reach, through any chain of imports.
FORBIDDEN = {
    "base": ("hydra", "lightning", "optuna", "torch"),
    "data": ("hydra", "lightning", "optuna", "torch"),
    "core": EDGE,  # plain PyTorch: the model code, the public interface and the peers
    "records": ("hydra", "lightning", "optuna", *TRAINING_CODE),
    "training": ("hydra", "optuna"),
    "methods": ("hydra", "optuna"),  # OmegaConf configs only: Hydra stays at the edge
    "search": ("hydra", "lightning", *TRAINING_CODE),
    "report": ("hydra", "lightning", *TRAINING_CODE),
    "harness": (),
    "studies": (),
}


def module_files() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def imports(name: str) -> set[str]:
    """Every module `name` imports anywhere in its code, as the longest known module name
    (bench.*, hydra_plugins.*) or the top-level package (anything else)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{a.name}" for a in node.names)
            found.add(base)
    return {resolved(n) for n in found} - {name, ""}


def resolved(imported: str) -> str:
    parts = imported.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return parts[0]


def layer_of(name: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{name} is in no layer of LAYERS (add it to the README's table)"
    return best[0]


GRAPH = {m: imports(m) for m in MODULES}


def reachable(name: str) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        for n in GRAPH.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


def test_the_scan_sees_imports_inside_functions():
    assert "bench.lit" in GRAPH["bench.methods.gru4rec"]  # imported inside fit()
    assert "bench.data.pickles" in GRAPH["bench.data.io"]


def test_every_module_imports_only_its_own_layer_and_those_above():
    wrong = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {n} ({LAYERS[layer_of(n)][0]})"
        for m in sorted(MODULES)
        for n in sorted(GRAPH[m])
        if n in MODULES and layer_of(n) > layer_of(m)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_no_layer_reaches_what_it_may_not_use(layer):
    forbidden = FORBIDDEN[layer]
    wrong = [
        f"{m} reaches {n}"
        for m in sorted(MODULES)
        if LAYERS[layer_of(m)][0] == layer
        for n in sorted(reachable(m))
        if any(n == f or n.startswith(f + ".") for f in forbidden)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    circles = sorted(
        f"{m} -> {n} -> ... -> {m}"
        for m in MODULES
        for n in GRAPH[m]
        if n in MODULES and m in reachable(n) and not is_package_of(m, n)
    )
    assert not circles, "\n".join(circles)


def is_package_of(package: str, module: str) -> bool:
    """A package's __init__ importing its own submodules, which import their siblings."""
    return module.startswith(package + ".")
