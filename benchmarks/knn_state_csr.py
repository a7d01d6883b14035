"""What reading the KNN methods' per-session state as CSR costs an evaluation.

Each step of SKNN/V-SKNN/STAN turns the batch's dense last-position block (batch x items)
into CSR. It was a float64 copy converted by scipy (`sp.csr_matrix(dense)`); now
`positions_csr` scans the float32 block as int32 for its nonzero entries. This times a
validation pass of yoochoose1/64 (split=tune, configured parameters, one thread) both
ways, interleaved in one run, one fitted model per method, and checks the metrics agree.

    python benchmarks/knn_state_csr.py       # writes benchmarks/results/knn_state_csr.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench.baselines import BASELINES, sknn  # noqa: E402
from bench.core.evaluate import evaluate  # noqa: E402
from common import tune_split_benchmark, write_report  # noqa: E402

WAYS = {
    "scipy_from_float64": lambda pos: sp.csr_matrix(pos.astype(np.float64)),
    "positions_csr": sknn.positions_csr,
}


def main() -> None:
    args, data = tune_split_benchmark(__doc__, "knn_state_csr")
    rows = []
    for name in ("sknn", "vsknn", "stan"):
        model = BASELINES[name]().fit(data.train, len(data.item_map))
        times = {w: [] for w in WAYS}
        got = {}
        for i in range(args.repeats):
            for way in list(WAYS)[:: 1 if i % 2 == 0 else -1]:
                sknn.positions_csr = WAYS[way]
                t0 = time.perf_counter()
                got[way] = evaluate(model, data.test, [20], "conservative", 512).metrics
                times[way].append(time.perf_counter() - t0)
        sknn.positions_csr = WAYS["positions_csr"]
        if got["scipy_from_float64"] != got["positions_csr"]:
            raise SystemExit(f"error: {name}: the two ways disagree: {got}")
        median = {w: statistics.median(t) for w, t in times.items()}
        row = {
            "method": name,
            "seconds": times,
            **{f"{w}_median_s": m for w, m in median.items()},
            "speedup": median["scipy_from_float64"] / median["positions_csr"],
            "mrr@20": got["positions_csr"]["mrr@20"],
        }
        print(row, flush=True)
        rows.append(row)
    write_report(
        args.out,
        "knn_state_csr",
        {
            "dataset": f"{args.dataset} split=tune",
            "events": int(data.test.n_events),
            "threads": 1,
            "repeats": args.repeats,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
