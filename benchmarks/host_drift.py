"""Whether a slow run is the code's or the host's: the training step and a fixed matrix
product, alternated in one process.

Issue #30's 512 x 480 cross-entropy runs of ours fell into two clusters about 15% apart
on the Intel Xeon hosts, and a paired ratio depends on which cluster each side's epoch
fell into. Here one process alternates windows of `--window` training steps (full
Diginetica, the engine's own step) with `--probe` products of a fixed 512 x 480 by
480 x 2560 matrix pair, for `--seconds`: if the step's time moves and the probe's moves
with it, the machine's speed changed (frequency, a neighbour on the physical core), not
the code's path; the CPU seconds per step say whether the process waited or ran slower.
(The clusters themselves turned out to be the worker's allocator settings, see
allocator_modes.py; what this measures, the host's speed within one process, stands.)

  python benchmarks/host_drift.py --seconds 120     # with the machine otherwise idle
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scipy.stats import spearmanr

from common import add_data_options, data_dir, machine_info, write_report
from step_profile import step_engine
from throughput import subset

HERE = Path(__file__).resolve().parent


def windows(args, data) -> list[dict]:
    import torch

    engine = step_engine(data, args.loss, args.batch_size, args.layers, n_sample=2048)
    engine.start_epoch()
    engine.run_steps(0, args.window)  # warm-up
    x, w = torch.randn(512, 480), torch.randn(2560, 480)
    step, rows, end = args.window, [], time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        if step + args.window > engine.n_steps:
            engine.start_epoch()
            step = 0
        t0, c0 = time.perf_counter(), time.process_time()
        engine.run_steps(step, step + args.window)
        t1, c1 = time.perf_counter(), time.process_time()
        for _ in range(args.probe):
            x @ w.T
        t2 = time.perf_counter()
        step += args.window
        rows.append(
            {
                "at_s": round(t0 - end + args.seconds, 2),
                "step_ms": 1000 * (t1 - t0) / args.window,
                "step_cpu_ms": 1000 * (c1 - c0) / args.window,
                "probe_ms": 1000 * (t2 - t1) / args.probe,
            }
        )
        r = rows[-1]
        print(
            f"{r['at_s']:7.1f} s  step {r['step_ms']:6.2f} ms (CPU {r['step_cpu_ms']:6.2f})  "
            f"probe {r['probe_ms']:.3f} ms",
            flush=True,
        )
    return rows


def summary(rows: list[dict]) -> dict:
    """The spread of each series and how closely the step's time follows the probe's (rank
    correlation: a window that a burst of the neighbour's load hit is one rank, not a
    lever on the whole figure)."""
    step = [r["step_ms"] for r in rows]
    probe = [r["probe_ms"] for r in rows]
    return {
        "windows": len(rows),
        "step_ms_range": [min(step), max(step)],
        "step_slowest_over_fastest": max(step) / min(step),
        "probe_ms_range": [min(probe), max(probe)],
        "probe_slowest_over_fastest": max(probe) / min(probe),
        "rank_correlation_step_probe": float(spearmanr(step, probe).statistic),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument("--loss", default="ce")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--layers", type=int, default=480)
    ap.add_argument("--window", type=int, default=50, help="training steps per window")
    ap.add_argument("--probe", type=int, default=150, help="fixed products per window")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--out", default=str(HERE / "results" / "host_drift.json"))
    args = ap.parse_args()
    rows = windows(args, subset(args.dataset, data_dir(args), 0))
    result = summary(rows)
    print(result)
    write_report(
        args.out,
        "host_drift",
        dict(
            dataset=args.dataset,
            loss=args.loss,
            batch_size=args.batch_size,
            layers=args.layers,
            machine=machine_info(),
            summary=result,
            rows=rows,
        ),
    )


if __name__ == "__main__":
    main()
