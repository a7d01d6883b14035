"""Counting the items scored above and equal to the target: bool masks against float masks.

`tie_counts_` (bench.core.metrics) gives every tie mode its (gt, eq) counts. Summing bool
masks (`(scores > target).sum(1)`) widens them to int64 first; the float masks it uses
(one written into a reused buffer, one in place) are summed as floats. This times both on
one evaluation step's block (512 rows x the items of yoochoose1/64, ties included: a KNN
method scores most items 0), interleaved, one thread, and checks they agree.

    python benchmarks/tie_counting.py        # writes benchmarks/results/tie_counting.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench.core.metrics import tie_counts_  # noqa: E402
from common import write_report  # noqa: E402


def bool_masks(scores, target, buffer):
    return (scores > target).sum(1), (scores == target).sum(1)


def float_masks(scores, target, buffer):
    return tie_counts_(scores, target, buffer)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "tie_counting.json")
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--items", type=int, default=16823)  # yoochoose1/64's training items
    p.add_argument("--repeats", type=int, default=40)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    block = torch.randn(args.rows, args.items, generator=g)
    block[:, : args.items // 2] = 0.0  # half the items tie at 0, the target among them
    target = block[:, :1].clone()
    buffer = torch.empty_like(block)
    ways = {"bool_masks": bool_masks, "float_masks": float_masks}
    ms = {w: [] for w in ways}
    got = {}
    for i in range(args.repeats):
        for w in list(ways)[:: 1 if i % 2 == 0 else -1]:
            scores = block.clone()
            t0 = time.perf_counter()
            got[w] = ways[w](scores, target, buffer)
            ms[w].append((time.perf_counter() - t0) * 1000)
    (gt_b, eq_b), (gt_f, eq_f) = got["bool_masks"], got["float_masks"]
    if not (torch.equal(gt_b, gt_f.long()) and torch.equal(eq_b, eq_f.long())):
        raise SystemExit("error: the two countings disagree")
    median = {w: statistics.median(v) for w, v in ms.items()}
    print({f"{w}_median_ms": round(m, 2) for w, m in median.items()})
    write_report(
        args.out,
        "tie_counting",
        {
            "rows": args.rows,
            "items": args.items,
            "threads": 1,
            "repeats": args.repeats,
            "ms": ms,
            **{f"{w}_median_ms": m for w, m in median.items()},
            "speedup": median["bool_masks"] / median["float_masks"],
        },
    )


if __name__ == "__main__":
    main()
