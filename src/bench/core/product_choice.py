"""Which library computes the training step's large products on this machine: the split
products over the OpenBLAS that numpy ships (native.matmul, native.matmul_pair) or torch's
own (MKL in its x86 wheels).

Neither wins everywhere. On the host the split products were written on, torch's
two-thread product was 10-25% slower per product; on a later one the whole step ran
7-18% faster with torch's at most settings (benchmarks/README.md, "Split large
products"). So the choice is measured once per machine and thread count, on the step's
own shapes, and kept in the cache beside the compiled kernels: every later run there
takes the same path (the two round differently in the last bits, so a run must not
switch between them by chance).
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

# (rows, units): batch sizes and layer sizes across the official paramfiles' range; the
# columns are the rows plus this many shared negatives (the official default).
SHAPES = ((32, 100), (128, 100), (512, 100), (32, 480), (128, 480), (512, 480))
N_SAMPLE = 2048
REPEATS = 10
log = logging.getLogger(__name__)


def split_products_chosen(lib) -> bool:
    """Whether the fused step and the full-softmax output layer (full_softmax.py) hand
    their large products to the split products (lib.blas: they are available and agree
    with torch's) at the current thread count."""
    if lib is None or not lib.blas:
        return False
    forced = os.environ.get("BENCH_BLAS")
    if forced in ("0", "1"):
        return forced == "1"
    return _chosen(lib, torch.get_num_threads())


def record_path(lib, threads: int) -> Path:
    """The record of one machine's choice: keyed by the compiled library (its source,
    compiler and CPU flags), the BLAS found, torch's version and the thread count."""
    blas = sorted(f.name for f in native.mapped_files() if "openblas" in f.name)
    parts = [str(lib._name), *blas, torch.__version__, str(threads)]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return default_cache_dir() / f"products-{key}.json"


@functools.cache
def _chosen(lib, threads: int) -> bool:
    path = record_path(lib, threads)
    try:
        return json.loads(path.read_text())["chosen"] == "split"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rec = measure(lib, threads)
    write_text(path, json.dumps(rec, indent=1))
    log.info(
        "training step: large products by %s here (%s threads; split / torch %.2f, %s)",
        rec["chosen"],
        threads,
        rec["split_over_torch"],
        path,
    )
    return rec["chosen"] == "split"


def measure(lib, threads: int) -> dict:
    """Best-of-REPEATS seconds of the step's products on SHAPES in both forms, interleaved:
    the split products win where their geometric mean ratio to torch's is below 1."""
    ratios, rows = [], []
    for m, units in SHAPES:
        split, by_torch = _products(lib, m, units)
        best = {"split": math.inf, "torch": math.inf}
        for round_ in range(REPEATS + 1):  # the first round warms both up, uncounted
            for name, run in (("split", split), ("torch", by_torch)):
                t0 = time.perf_counter()
                run()
                if round_:
                    best[name] = min(best[name], time.perf_counter() - t0)
        ratios.append(best["split"] / best["torch"])
        rows.append({"rows": m, "units": units, "split_s": best["split"], "torch_s": best["torch"]})
    ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
    return {
        "chosen": "split" if ratio < 1 else "torch",
        "split_over_torch": ratio,
        "threads": threads,
        "cpu": native.cpu_name(),
        "shapes": rows,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _products(lib, m: int, units: int):
    """The products of one step with one GRU layer (hand_derived.py): the output layer's
    three, the GRU layer's forward and backward pairs; as the split products and as torch's."""
    gen = torch.Generator().manual_seed(0)
    n = m + N_SAMPLE
    h, w, d_out = (torch.randn(*s, generator=gen) for s in ((m, units), (n, units), (m, n)))
    w_gru = torch.randn(3 * units, units, generator=gen)
    d_gates = torch.randn(m, 3 * units, generator=gen)

    def split():
        native.matmul(lib, h, w, trans_b=True)
        native.matmul(lib, d_out, w)
        native.matmul(lib, d_out, h, trans_a=True)
        fwd = (h, w_gru, False, True, None, None)
        native.matmul_pair(lib, fwd, fwd)
        bwd = (d_gates, h, True, False, None, None)
        native.matmul_pair(lib, bwd, bwd)

    def by_torch():
        h @ w.T, d_out @ w, d_out.T @ h
        h @ w_gru.T, h @ w_gru.T, d_gates.T @ h, d_gates.T @ h

    return split, by_torch


def main() -> int:
    """At install time (a quiet machine), after the kernels are built: the choice at one
    thread (a study's workers) and at torch's default count (a single run), a line each."""
    lib = native.kernel()
    if lib is None or not lib.blas:
        print("large products: torch's (no split products here)")
        return 0
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        how = "split over numpy's OpenBLAS" if split_products_chosen(lib) else "torch's"
        print(f"large products at {threads} threads: {how} ({record_path(lib, threads)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
