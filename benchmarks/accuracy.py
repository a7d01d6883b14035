"""Accuracy check of the training-step optimisations: same seed, same data, each path.

Trains GRU4Rec with the official Diginetica parameters (conf/paramfile) on the
SR-GNN Diginetica split through `bench.run`, once per training-step implementation,
and compares Recall@20 / MRR@20 on the test set with the unoptimised path (autograd,
no CUDA graph). An optimisation passes when both stay within 1% relative. Writes JSON.

  python benchmarks/accuracy.py --losses ce bpr-max --n-epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import write_report

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.01
METRICS = ("recall@20", "mrr@20")


def run_variant(args, loss: str, overrides: list[str], out: Path, env: dict) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        f"dataset={args.dataset}",
        f"loss={loss}",
        "params=official",
        f"n_epochs={args.n_epochs}",
        f"seed={args.seed}",
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
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--out", default=str(HERE / "results" / "accuracy.json"))
    args = ap.parse_args()
    import torch

    # name -> (overrides, environment); the reference runs without the compiled kernels.
    pytorch_only = {"BENCH_NATIVE": "0"}
    variants = {
        "autograd (reference)": (
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
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for loss in args.losses:
        ref = None
        for name, (overrides, env) in variants.items():
            res = run_variant(args, loss, overrides, tmp / f"{loss}_{len(rows)}", env)
            res.update(loss=loss, variant=name)
            if ref is None:
                ref = res["metrics"]
            res["relative_diff"] = {m: res["metrics"][m] / ref[m] - 1 for m in METRICS}
            res["within_tolerance"] = all(
                abs(v) <= TOLERANCE for v in res["relative_diff"].values()
            )
            rows.append(res)
            print(json.dumps(res), flush=True)
    fields = dict(dataset=args.dataset, n_epochs=args.n_epochs, seed=args.seed, tolerance=TOLERANCE)
    write_report(args.out, "accuracy", {**fields, "rows": rows})


if __name__ == "__main__":
    main()
