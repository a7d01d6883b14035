"""What the standard-ties metrics beside the conservative ones cost a study trial.

Every headline study runs with `eval.also_tie_modes=[standard]`. The run used to evaluate
once per tie mode, scoring every prefix twice; now one scoring pass ranks under both modes
(`evaluate(..., also_tie_modes=...)`, held equal to separate runs by
tests/test_evaluate.py). This times both ways on what a KNN-family trial does (fit on
train_tr, rank every validation prefix of yoochoose1/64) at the configured parameters,
with one thread as the study workers run, each way on a freshly fitted model (its lazy
set-up included, as in a trial), the order alternating between repeats, and checks that
they give the same metrics.

    python benchmarks/tie_modes_speed.py     # writes benchmarks/results/tie_modes_speed.json
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
from bench.baselines import BASELINES  # noqa: E402
from bench.core.evaluate import evaluate  # noqa: E402
from common import add_data_options, data_dir, load_named_dataset, write_report  # noqa: E402

KNN_FAMILY = ("sknn", "vsknn", "stan")


def one_pass(model, test) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = evaluate(model, test, [20], "conservative", 512, also_tie_modes=("standard",))
    return time.perf_counter() - t0, {"conservative": res.metrics, **res.also}


def two_passes(model, test) -> tuple[float, dict]:
    t0 = time.perf_counter()
    metrics = {m: evaluate(model, test, [20], m, 512).metrics for m in ("conservative", "standard")}
    return time.perf_counter() - t0, metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "tie_modes_speed.json")
    p.add_argument("--repeats", type=int, default=2)
    add_data_options(p)
    p.set_defaults(dataset="yoochoose1_64")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_named_dataset(args.dataset, data_dir(args), split="tune")
    rows = []
    for name in KNN_FAMILY:
        cls = BASELINES[name]
        times = {"one_pass": [], "two_passes": []}
        for i in range(args.repeats):
            ways = [("one_pass", one_pass), ("two_passes", two_passes)][:: 1 if i % 2 else -1]
            got = {}
            for way, run in ways:  # a freshly fitted model each time, as in a trial
                model = cls().fit(data.train, len(data.item_map))
                t, got[way] = run(model, data.test)
                times[way].append(t)
            a, b = got["one_pass"], got["two_passes"]
            if a != b:
                raise SystemExit(f"error: {name}: one pass and two passes disagree: {a} != {b}")
        row = {"method": name, "seconds": times,
               "one_pass_median_s": statistics.median(times["one_pass"]),
               "two_passes_median_s": statistics.median(times["two_passes"]),
               "mrr@20": {m: v["mrr@20"] for m, v in a.items()}}  # fmt: skip
        row["speedup"] = row["two_passes_median_s"] / row["one_pass_median_s"]
        print(row, flush=True)
        rows.append(row)
    write_report(
        args.out, "tie_modes_speed",
        {"dataset": f"{args.dataset} split=tune", "events": int(data.test.n_events),
         "threads": torch.get_num_threads(), "repeats": args.repeats, "rows": rows},
    )  # fmt: skip


if __name__ == "__main__":
    main()
