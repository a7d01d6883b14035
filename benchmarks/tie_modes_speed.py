"""What the standard-ties metrics beside the conservative ones cost a study trial.

Every headline study runs with `eval.also_tie_modes=[standard]`: one scoring pass ranks
under both modes (`evaluate(..., also_tie_modes=...)`, held equal to separate runs by
tests/test_evaluate.py), where the run used to evaluate once per tie mode. This times
three ways on the validation prefixes of yoochoose1/64 (split=tune): the conservative
ranks alone (`one_mode`), both modes from one pass (`one_pass`), and one pass per mode
(`two_passes`). The methods are the KNN family at their configured parameters, each way on
a freshly fitted model (its lazy set-up included, as in a trial), and GRU4Rec at the
official RSC15 size (layers [100], untrained: scoring time does not depend on the
weights). One thread, as the study workers run; the order of the ways reverses between
repeats; the metrics of all ways must agree.

    python benchmarks/tie_modes_speed.py     # writes benchmarks/results/tie_modes_speed.json
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench.baselines import BASELINES  # noqa: E402
from bench.core.config import GRU4RecConfig  # noqa: E402
from bench.core.evaluate import evaluate  # noqa: E402
from bench.core.model import GRU4RecModel  # noqa: E402
from common import tune_split_benchmark, write_report  # noqa: E402

METHODS = ("sknn", "vsknn", "stan", "gru4rec")


def make_model(name: str, data):
    if name != "gru4rec":
        return BASELINES[name]().fit(data.train, len(data.item_map))
    model = GRU4RecModel(len(data.item_map), GRU4RecConfig(layers=[100]))
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def one_mode(model, test) -> dict:
    return {"conservative": evaluate(model, test, [20], "conservative", 512).metrics}


def one_pass(model, test) -> dict:
    res = evaluate(model, test, [20], "conservative", 512, also_tie_modes=("standard",))
    return {"conservative": res.metrics, **res.also}


def two_passes(model, test) -> dict:
    return {m: evaluate(model, test, [20], m, 512).metrics for m in ("conservative", "standard")}


WAYS = {"one_mode": one_mode, "one_pass": one_pass, "two_passes": two_passes}


def main() -> None:
    args, data = tune_split_benchmark(__doc__, "tie_modes_speed")
    rows = []
    for name in METHODS:
        times = {way: [] for way in WAYS}
        for i in range(args.repeats):
            got = {}
            for way in list(WAYS)[:: 1 if i % 2 == 0 else -1]:
                model = make_model(name, data)  # fresh, as in a trial
                t0 = time.perf_counter()
                got[way] = WAYS[way](model, data.test)
                times[way].append(time.perf_counter() - t0)
            if not got["one_pass"] == got["two_passes"] or not all(
                got[w]["conservative"] == got["one_mode"]["conservative"] for w in WAYS
            ):
                raise SystemExit(f"error: {name}: the ways disagree: {got}")
        median = {way: statistics.median(t) for way, t in times.items()}
        row = {
            "method": name,
            "seconds": times,
            **{f"{way}_median_s": s for way, s in median.items()},
            "mrr@20": {m: v["mrr@20"] for m, v in got["one_pass"].items()},
            "speedup_vs_two_passes": median["two_passes"] / median["one_pass"],
            "standard_ties_cost": median["one_pass"] / median["one_mode"] - 1,
        }
        print(row, flush=True)
        rows.append(row)
    write_report(
        args.out,
        "tie_modes_speed",
        {
            "dataset": f"{args.dataset} split=tune",
            "events": int(data.test.n_events),
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
