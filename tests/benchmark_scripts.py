"""Loading a benchmarks/ script as a module in a test (benchmarks/ is not a package, and
its scripts import their neighbour `common`)."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def benchmark_module(name: str):
    """benchmarks/<name>.py as a module, its `common` import found while it loads."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module
