"""The import layers of README "How the code is laid out", kept true: each layer is
imported in a fresh interpreter and what it pulled in is checked."""

import json
import pkgutil
import subprocess
import sys

import pytest

import bench


def modules(prefix: str) -> list[str]:
    found = [m.name for m in pkgutil.walk_packages(bench.__path__, "bench.")]
    return [m for m in found if m == prefix or m.startswith(prefix + ".")]


def loaded_after_importing(names: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(p.stdout))


def offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden))


TRAINING = (
    "bench.core.train",
    "bench.core.model",
    "bench.core.hand_derived",
    "bench.core.bptt",
    "bench.core.graphs",
    "bench.core.optim",
    "bench.lit",
    "bench.run",
    "bench.methods",
    "bench.baselines",
    "lightning",
)


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        # The model and its training are plain PyTorch: no Hydra, Lightning, Optuna or OmegaConf.
        ("bench.core", ("hydra", "lightning", "optuna", "omegaconf", "bench.methods", "bench.run")),
        # The public model interface and the peers built on it: plain PyTorch as well.
        ("bench.api", ("hydra", "lightning", "optuna", "omegaconf", "bench.methods", "bench.lit")),
        (
            "bench.peers",
            ("hydra", "lightning", "optuna", "omegaconf", "bench.methods", "bench.lit"),
        ),
        # Data is read and split without any model.
        (
            "bench.data",
            (
                "bench.core.model",
                "bench.core.train",
                "bench.baselines",
                "bench.methods",
                "lightning",
                "hydra",
            ),
        ),
        (
            "bench.datasets",
            (
                "bench.core.model",
                "bench.core.train",
                "bench.baselines",
                "bench.methods",
                "lightning",
                "hydra",
            ),
        ),
        # Records and reports read results; they never import training code.
        ("bench.records", (*TRAINING, "hydra", "optuna")),
        ("bench.report", (*TRAINING, "hydra")),
        # Methods are the layer above the core: Hydra stays at the edge (OmegaConf config only).
        ("bench.methods", ("hydra", "optuna", "bench.run")),
    ],
)
def test_layer_imports(layer, forbidden):
    names = modules(layer) or [layer]
    if layer == "bench.report":
        names = [n for n in names if n != "bench.report.__main__"] + ["bench.report.__main__"]
    assert not offenders(loaded_after_importing(names), forbidden), layer
