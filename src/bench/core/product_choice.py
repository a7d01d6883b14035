"""Which library computes the large products on this machine: the split products over
the OpenBLAS that numpy ships (native.matmul, native.matmul_pair) or torch's own (MKL in
its x86 wheels). Two families are chosen apart: the GRU4Rec step's products and the
neural peers' full-softmax output layer (full_softmax.py).

Neither wins everywhere. On the host the split products were written on, torch's
two-thread product was 10-25% slower per product; on a later one the whole step ran
7-18% faster with torch's at most settings (benchmarks/README.md, "Split large
products"). So the choice is measured once per machine, thread count and family, on the
family's own shapes, and kept in the cache beside the compiled kernels: every later run
there takes the same path (the two round differently in the last bits, so a run must not
switch between them by chance). The families rank the libraries differently: on an AMD
EPYC host at one thread torch's won the step's shapes by 3% while the split products
computed the peers' output layers 4-33% faster (a thin one, 512 x 50 over 43k items,
1.5x), hence a choice each.
`BENCH_BLAS=1` takes the split products wherever they are available, `BENCH_BLAS=0` never.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.atomic import write_text
from bench.core import native
from bench.paths import default_cache_dir

# The step's (rows, units): batch sizes and layer sizes across the official paramfiles'
# range; the columns are the rows plus this many shared negatives (the official default).
SHAPES = ((32, 100), (128, 100), (512, 100), (32, 480), (128, 480), (512, 480))
N_SAMPLE = 2048
# The output layer's (rows, units, items): the peers' published settings (SR-GNN 100 x 100,
# NARM 512 x 50, SGNN-HN 256 x 256) over full Diginetica's and yoochoose1/64's catalogues.
OUTPUT_SHAPES = ((100, 100, 43_097), (512, 50, 43_097), (256, 256, 17_376), (100, 100, 17_376))
FAMILIES = ("step", "output")
REPEATS = 10
log = logging.getLogger(__name__)


def split_products_chosen(lib, family: str = "step") -> bool:
    """Whether a family's large products (`step`: the fused GRU4Rec step's; `output`: the
    full-softmax output layer's) go to the split products (lib.blas: they are available
    and agree with torch's) at the current thread count."""
    if lib is None or not lib.blas:
        return False
    forced = os.environ.get("BENCH_BLAS")
    if forced in ("0", "1"):
        return forced == "1"
    return _chosen(lib, torch.get_num_threads(), family)


def record_path(lib, threads: int, family: str = "step") -> Path:
    """The record of one machine's choice: keyed by the compiled library (its source,
    compiler and CPU flags), the BLAS the split products call (numpy's: not any other
    OpenBLAS a run maps, such as scipy's 32-bit one, or install time's record would not be
    a run's), torch's version, the thread count and the family."""
    blas = sorted(f.name for f in native.mapped_files() if f.name.startswith(native.NUMPY_BLAS))
    parts = [str(lib._name), *blas, torch.__version__, str(threads)]
    if family != "step":  # the step's key as before there were families
        parts.append(family)
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return default_cache_dir() / f"products-{key}.json"


@functools.cache
def _chosen(lib, threads: int, family: str) -> bool:
    path = record_path(lib, threads, family)
    try:
        return json.loads(path.read_text())["chosen"] == "split"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rec = measure(lib, threads, family)
    write_text(path, json.dumps(rec, indent=1))
    log.info(
        "%s: large products by %s here (%s threads; split / torch %.2f, %s)",
        "training step" if family == "step" else "full-softmax output layer",
        rec["chosen"],
        threads,
        rec["split_over_torch"],
        path,
    )
    return rec["chosen"] == "split"


def measure(lib, threads: int, family: str = "step") -> dict:
    """Best-of-REPEATS seconds of a family's products on its shapes in both forms,
    interleaved: the split products win where their geometric mean ratio to torch's is
    below 1."""
    if family not in FAMILIES:
        raise ValueError(f"product family {family!r}: expected one of {', '.join(FAMILIES)}")
    shapes = SHAPES if family == "step" else OUTPUT_SHAPES
    products = _products if family == "step" else _output_products
    keys = ("rows", "units") if family == "step" else ("rows", "units", "items")
    ratios, rows = [], []
    for shape in shapes:
        split, by_torch = products(lib, *shape)
        best = {"split": math.inf, "torch": math.inf}
        for round_ in range(REPEATS + 1):  # the first round warms both up, uncounted
            for name, run in (("split", split), ("torch", by_torch)):
                t0 = time.perf_counter()
                run()
                if round_:
                    best[name] = min(best[name], time.perf_counter() - t0)
        ratios.append(best["split"] / best["torch"])
        rows.append(dict(zip(keys, shape)) | {"split_s": best["split"], "torch_s": best["torch"]})
    ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
    return {
        "chosen": "split" if ratio < 1 else "torch",
        "split_over_torch": ratio,
        "family": family,
        "threads": threads,
        "cpu": native.cpu_name(),
        "shapes": rows,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _products(lib, m: int, units: int):
    """The products of one step with one GRU layer (hand_derived.py): the output layer's
    three (over the rows and the shared negatives), the GRU layer's forward and backward
    pairs; as the split products and as torch's."""
    output_split, output_by_torch = _output_products(lib, m, units, m + N_SAMPLE)
    gen = torch.Generator().manual_seed(1)
    h, w_gru, d_gates = (
        torch.randn(*s, generator=gen) for s in ((m, units), (3 * units, units), (m, 3 * units))
    )

    def split():
        output_split()
        fwd = (h, w_gru, False, True, None, None)
        native.matmul_pair(lib, fwd, fwd)
        bwd = (d_gates, h, True, False, None, None)
        native.matmul_pair(lib, bwd, bwd)

    def by_torch():
        output_by_torch()
        h @ w_gru.T, h @ w_gru.T, d_gates.T @ h, d_gates.T @ h

    return split, by_torch


def _output_products(lib, m: int, units: int, items: int):
    """The full-softmax output layer's three products (full_softmax.py): the scores, the
    queries' gradient and the item table's; as the split products and as torch's."""
    gen = torch.Generator().manual_seed(0)
    h, table, d_scores = (
        torch.randn(*s, generator=gen) for s in ((m, units), (items, units), (m, items))
    )

    def split():
        native.matmul(lib, h, table, trans_b=True)
        native.matmul(lib, d_scores, table)
        native.matmul(lib, d_scores, h, trans_a=True)

    def by_torch():
        h @ table.T, d_scores @ table, d_scores.T @ h

    return split, by_torch


def main() -> int:
    """At install time (a quiet machine), after the kernels are built: each family's
    choice at one thread (a study's workers) and at torch's default count (a single
    run), a line each."""
    lib = native.kernel()
    if lib is None or not lib.blas:
        print("large products: torch's (no split products here)")
        return 0
    for threads in sorted({1, torch.get_num_threads()}):  # ends at the default count
        torch.set_num_threads(threads)
        for family in FAMILIES:
            how = "split over numpy's OpenBLAS" if split_products_chosen(lib, family) else "torch's"
            path = record_path(lib, threads, family)
            print(f"large products ({family}) at {threads} threads: {how} ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
