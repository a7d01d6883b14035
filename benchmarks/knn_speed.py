"""What one KNN-family study trial costs on yoochoose1/64: fit + validation scoring.

A trial of the sknn/vsknn/stan studies fits on train_tr and ranks every validation
prefix (split=tune). This times that, for each method at its configured parameters and
at the costly end of its search space, with today's scorer and (at the configured
parameters) the scorer of the commit before the batched rewrite, interleaved in one run.
The two differ in neighbour rules (recency by last click, ties to the most recent), so
their MRR@20 is shown next to the time, not asserted equal: tests/test_knn_reference.py
holds today's scorer against session-rec's formulation.

    python benchmarks/knn_speed.py           # writes benchmarks/results/knn_speed.json
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench.baselines import BASELINES  # noqa: E402
from bench.core.evaluate import evaluate  # noqa: E402
from bench.datasets import load_dataset  # noqa: E402
from bench.paths import PROJECT_ROOT, default_data_dir  # noqa: E402
from common import write_report  # noqa: E402

BEFORE = "a0232bb"  # the last commit with the session-by-session candidate selection
KNN_FAMILY = ("sknn", "vsknn", "stan")
# The costly end of each search space (conf/hparams_search): most candidates and neighbours.
LARGE = {"k": 1500, "sample_size": 10000}


def previous_module():
    """The scorer module as it was at BEFORE, loaded from git, for side-by-side timing."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:src/bench/baselines/sknn.py"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path("/tmp/bench_sknn_before.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("bench_sknn_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trial(cls, params: dict, data) -> dict:
    t0 = time.perf_counter()
    model = cls(**params).fit(data.train, len(data.item_map))
    t1 = time.perf_counter()
    result = evaluate(model, data.test, cutoffs=[20], tie_mode="conservative", batch_size=512)
    t2 = time.perf_counter()
    return {
        "fit_s": t1 - t0,
        "score_s": t2 - t1,
        "trial_s": t2 - t0,
        "mrr@20": result.metrics["mrr@20"],
        "recall@20": result.metrics["recall@20"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "knn_speed.json")
    p.add_argument("--no-before", action="store_true", help="skip the previous scorer")
    args = p.parse_args()
    data_dir = default_data_dir()
    ds = {
        "name": "yoochoose1_64",
        "kind": "files",
        "train": f"{data_dir}/yoochoose/srgnn_yoochoose1_64/train_sessions.txt.gz",
        "test": f"{data_dir}/yoochoose/srgnn_yoochoose1_64/test_sessions.txt.gz",
        "tune": {"valid_fraction": 0.132},
    }
    t0 = time.perf_counter()
    data = load_dataset(ds, data_dir, split="tune")
    load_s = time.perf_counter() - t0
    before = None if args.no_before else previous_module()
    rows = []
    for name in KNN_FAMILY:
        cls = BASELINES[name]
        for setting, params in (("configured", {}), ("large", LARGE)):
            row = {"method": name, "setting": setting, "params": params, "load_s": load_s}
            row["now"] = trial(cls, params, data)
            if before is not None and setting == "configured":
                old_cls = getattr(before, cls.__name__)
                row["before"] = trial(old_cls, params, data)
                row["speedup"] = row["before"]["trial_s"] / row["now"]["trial_s"]
            print(row, flush=True)
            rows.append(row)
    write_report(
        args.out,
        "knn_speed",
        {
            "dataset": "yoochoose1_64 split=tune",
            "threads": torch.get_num_threads(),
            "before_commit": BEFORE,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
