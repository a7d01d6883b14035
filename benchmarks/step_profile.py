"""Where a training step's time goes, per setting: ms per step in each phase of the
default (fused) step, measured on the engine's own code path, plus the operators that
take the most time (torch.profiler). The "before" of issue #17: rerun after each change.

Phases: sampling (the shared negatives), forward (embedding rows, dropout, GRU layers,
output scores), loss (the loss and its gradient on the scores), backward (output layer
and GRU layers), optimizer (dense and row-sparse Adagrad), bookkeeping (the rest of the
step: schedule slicing, hidden-state resets, concatenations, loss accumulation, Python).
CPU operations are synchronous, so wall-clock timers around each phase split the step
exactly; the wrappers cost well under a microsecond per call. The GEMM floor column is
the time the step's matrix products alone take (throughput.gemm_floor).

  python benchmarks/step_profile.py --events 50000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import add_data_options, data_dir, machine_info, write_report
from throughput import catalogue_sessions, gemm_floor, subset

HERE = Path(__file__).resolve().parent
PHASES = ("sampling", "forward", "loss", "backward", "optimizer", "bookkeeping")


class PhaseClock:
    """Accumulates seconds per phase from wrappers put around the engine's parts."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def wrap(self, phase: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds[phase] += time.perf_counter() - t0
            return out

        return timed


# When the loss function of the fused step last started and ended (see time_losses).
MARKS: dict[str, float] = {}


def time_losses() -> None:
    """Once: the fused step's loss functions note when they start and end, which splits
    the step into forward (before), loss and backward (after)."""
    import bench.core.hand_derived as hd

    def marked(original):
        def timed(*args, **kwargs):
            MARKS["loss_start"] = time.perf_counter()
            out = original(*args, **kwargs)
            MARKS["loss_end"] = time.perf_counter()
            return out

        return timed

    hd.HandDerivedStep.loss_and_grad = marked(hd.HandDerivedStep.loss_and_grad)


def instrument(engine, clock: PhaseClock) -> None:
    """Time the sampler, the optimizer and the fused step (split at the loss marks)."""
    engine.sampler.next = clock.wrap("sampling", engine.sampler.next)
    engine.optimizer.update = clock.wrap("optimizer", engine.optimizer.update)
    step = engine.hand_derived

    def timed_step(*args, **kwargs):
        t0 = time.perf_counter()
        out = step(*args, **kwargs)
        t1 = time.perf_counter()
        clock.seconds["forward"] += MARKS["loss_start"] - t0
        clock.seconds["loss"] += MARKS["loss_end"] - MARKS["loss_start"]
        clock.seconds["backward"] += t1 - MARKS["loss_end"]
        return out

    engine.hand_derived = timed_step


def step_engine(data, loss: str, batch: int, layers: int, n_sample: int):
    """The engine whose step is profiled: one GRU layer, the benchmarks' fixed settings,
    in a process that keeps freed memory as bench.run's do (throughput.worker says why)."""
    from bench.allocator import keep_freed_memory
    from bench.core.config import GRU4RecConfig
    from bench.core.train import SessionParallelTrainer

    keep_freed_memory()
    n_items, tr = data
    cfg = GRU4RecConfig(
        layers=[layers],
        loss=loss,
        batch_size=batch,
        n_sample=n_sample,
        sample_alpha=0.5,
        logq=1.0 if loss == "ce" else None,
        n_epochs=1,
        learning_rate=0.05,
    )
    return SessionParallelTrainer(cfg, tr, n_items, seed=0)


def profile_setting(args, data, loss: str, batch: int, layers: int) -> dict:
    import torch

    engine = step_engine(data, loss, batch, layers, args.n_sample)
    n = min(args.steps, engine.n_steps - args.warmup)
    engine.start_epoch()
    engine.run_steps(0, args.warmup)
    clock = PhaseClock()
    instrument(engine, clock)
    t0 = time.perf_counter()
    for s in range(args.warmup, args.warmup + n):
        engine.run_steps(s, s + 1)
    total = time.perf_counter() - t0
    measured = sum(clock.seconds.values())
    clock.seconds["bookkeeping"] = total - measured
    ms = {k: 1000 * v / n for k, v in clock.seconds.items()}
    from torch.profiler import ProfilerActivity, profile

    # The operators of the same steps, in a second epoch (full-width steps at any batch).
    engine.start_epoch()
    engine.run_steps(0, args.warmup)
    a, b = args.warmup, min(args.warmup + args.profile_steps, engine.n_steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.run_steps(a, b)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    top = [
        {
            "op": e.key,
            "ms_per_step": e.self_cpu_time_total / 1000 / max(1, b - a),
            "calls_per_step": e.count / max(1, b - a),
        }
        for e in ops[: args.top_ops]
    ]
    floor_ms = 1000 * batch / gemm_floor(batch, layers, args.n_sample)
    return {
        "loss": loss,
        "batch_size": batch,
        "layers": layers,
        "steps": n,
        "ms_per_step": 1000 * total / n,
        "phases_ms": ms,
        "gemm_floor_ms": floor_ms,
        "share_of_floor": floor_ms / (1000 * total / n),
        "top_ops": top,
        "ops_per_step": sum(e.count for e in ops) / max(1, b - a),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 512])
    ap.add_argument("--layer-sizes", type=int, nargs="+", default=[100, 480])
    ap.add_argument("--losses", nargs="+", default=["ce", "bpr-max"])
    ap.add_argument("--n-sample", type=int, default=2048)
    ap.add_argument(
        "--catalogue",
        type=int,
        default=None,
        help="instead of a dataset: throughput.py's synthetic sessions over this many items",
    )
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per setting")
    ap.add_argument("--profile-steps", type=int, default=30, help="steps under torch.profiler")
    ap.add_argument("--top-ops", type=int, default=8)
    ap.add_argument("--label", default="before", help="which state of the code this is")
    ap.add_argument("--out", default=str(HERE / "results" / "step_profile.json"))
    args = ap.parse_args()
    args.data_dir = data_dir(args)

    data = (
        catalogue_sessions(args.catalogue, args.events)
        if args.catalogue
        else subset(args.dataset, args.data_dir, args.events)
    )
    time_losses()
    rows = []
    for loss in args.losses:
        for layers in args.layer_sizes:
            for batch in args.batch_sizes:
                rows.append(profile_setting(args, data, loss, batch, layers))
                r = rows[-1]
                print(
                    f"{loss} {batch}x{layers}: {r['ms_per_step']:.2f} ms/step, "
                    + ", ".join(f"{k} {v:.2f}" for k, v in r["phases_ms"].items()),
                    flush=True,
                )
    write_report(
        args.out,
        "step_profile",
        dict(
            label=args.label,
            dataset="synthetic" if args.catalogue else args.dataset,
            catalogue=args.catalogue,
            events=args.events,
            n_sample=args.n_sample,
            machine=machine_info(),
            rows=rows,
        ),
    )


if __name__ == "__main__":
    main()
