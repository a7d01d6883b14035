"""Accuracy check of the training-step optimisations: same seed, same data, each path.

Trains GRU4Rec with the official Diginetica parameters (conf/paramfile) on the
SR-GNN Diginetica split through `bench.run`, once per training-step implementation and
seed, and compares the mean Recall@20 / MRR@20 over the seeds on the test set with the
unoptimised path's (autograd, no CUDA graph). An optimisation passes when both means
stay within 1% relative. One seed is not enough: where products are split between
threads their last bits vary, one epoch amplifies that into about +-1%, and the seeds'
spread (written beside each row) says how large that noise is. Writes JSON.

  python benchmarks/accuracy.py --losses ce bpr-max --n-epochs 1 --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from common import write_report

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.01
METRICS = ("recall@20", "mrr@20")
REFERENCE = "autograd (reference)"


def run_variant(args, loss: str, seed: int, overrides: list[str], out: Path, env: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        f"dataset={args.dataset}",
        f"loss={loss}",
        "params=official",
        f"n_epochs={args.n_epochs}",
        f"seed={seed}",
        "save_model=false",
        f"trainer.accelerator={args.accelerator}",
        f"hydra.run.dir={out}",
        *overrides,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr[-800:]}")
    rec = json.loads((out / "result.json").read_text())
    return {
        "overrides": overrides,
        "env": env,
        "training_step": rec.get("training_step"),
        "metrics": {m: rec["metrics"][m] for m in METRICS},
        "train_s": rec["timings"]["train_s"],
        "device": rec["device"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="diginetica_srgnn")
    ap.add_argument("--losses", nargs="+", default=["ce", "bpr-max"])
    ap.add_argument("--n-epochs", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    ap.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="re-run only these paths (e.g. the compiled one after a kernel change); the "
        "other rows are kept and the kept reference must be of the same seeds",
    )
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--out", default=str(HERE / "results" / "accuracy.json"))
    args = ap.parse_args()
    import torch

    # name -> (overrides, environment); the reference runs without the compiled kernels.
    pytorch_only = {"BENCH_NATIVE": "0"}
    variants = {
        REFERENCE: (
            ["trainer.step=autograd", "trainer.cuda_graphs=false"],
            pytorch_only,
        ),
        "fused step": (["trainer.step=fused", "trainer.cuda_graphs=false"], pytorch_only),
        "fused step + compiled kernels": (["trainer.step=fused", "trainer.cuda_graphs=false"], {}),
    }
    if torch.cuda.is_available() and args.accelerator != "cpu":
        variants["fused step + CUDA graphs"] = (
            ["trainer.step=fused", "trainer.cuda_graphs=true"],
            {},
        )
    chosen = args.variants or list(variants)
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; expected some of {list(variants)}")
    kept = kept_rows(args, chosen)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    today = datetime.now(timezone.utc).date().isoformat()
    for loss in args.losses:
        ref = reference(kept, loss, args.seeds) if REFERENCE not in chosen else None
        for name in chosen:
            overrides, env = variants[name]
            runs = [
                run_variant(args, loss, seed, overrides, tmp / f"{loss}_{len(rows)}_{seed}", env)
                for seed in args.seeds
            ]
            res = over_seeds(runs) | dict(loss=loss, variant=name, seeds=args.seeds, date=today)
            if ref is None:
                ref = res["metrics"]
            res["relative_diff"] = {m: res["metrics"][m] / ref[m] - 1 for m in METRICS}
            res["within_tolerance"] = all(
                abs(v) <= TOLERANCE for v in res["relative_diff"].values()
            )
            rows.append(res)
            print(json.dumps(res), flush=True)
    order = {name: k for k, name in enumerate(variants)}
    rows = sorted(kept + rows, key=lambda r: (r["loss"] != "ce", order.get(r["variant"], 99)))
    fields = dict(dataset=args.dataset, n_epochs=args.n_epochs, tolerance=TOLERANCE)
    write_report(args.out, "accuracy", {**fields, "rows": rows})


def kept_rows(args, chosen: list[str]) -> list[dict]:
    """The rows not run now (other losses, or the variants left out of --variants), from
    the report at --out where it is of the same dataset and epochs (each row names its
    seeds and date), so that one loss or one path can be re-run after a change."""
    out = Path(args.out)
    if not out.is_file():
        return []
    old = json.loads(out.read_text())
    if (old.get("dataset"), old.get("n_epochs")) != (args.dataset, args.n_epochs):
        return []
    first = {"seeds": [old.get("seed")], "date": old["date"][:10]}  # a report before rows held them
    return [
        first | r for r in old["rows"] if r["loss"] not in args.losses or r["variant"] not in chosen
    ]


def reference(kept: list[dict], loss: str, seeds: list[int]) -> dict:
    """The kept reference row's metrics of `loss`, which a re-run path is compared with:
    it must exist and be of the same seeds."""
    row = next((r for r in kept if r["loss"] == loss and r["variant"] == REFERENCE), None)
    if row is None or row["seeds"] != seeds:
        have = row["seeds"] if row else "none"
        raise SystemExit(
            f"--variants without the reference: {loss}'s kept reference row has seeds {have}, "
            f"not {seeds}; run the reference too or pass its seeds"
        )
    return row["metrics"]


def over_seeds(runs: list[dict]) -> dict:
    """One variant's runs (one per seed) as one row: the mean metrics, their standard
    deviation and the spread (max - min, relative to the mean) over the seeds, each
    seed's metrics, the mean training time."""
    per_seed = [r["metrics"] for r in runs]
    row = {k: runs[0][k] for k in ("overrides", "env", "training_step", "device")}
    values = {m: np.array([s[m] for s in per_seed]) for m in METRICS}
    return row | {
        "metrics": {m: float(v.mean()) for m, v in values.items()},
        "std": {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()},
        "spread": {m: float((v.max() - v.min()) / v.mean()) for m, v in values.items()},
        "per_seed": per_seed,
        "train_s": float(np.mean([r["train_s"] for r in runs])),
    }


if __name__ == "__main__":
    main()
