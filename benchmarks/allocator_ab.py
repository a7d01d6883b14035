"""What keeping freed memory (bench.allocator) does to a peer's training step.

For each peer (`--models`) on full Diginetica at one thread (a study worker's setting):
pairs of processes run back to back, one with glibc's default allocator settings and one
with freed memory kept, each timing `--steps` training steps after a warm-up; per
process the ms per step, the system (kernel) ms per step, the minor page faults per
step and the peak resident memory. Settings are per process, hence one process per
measurement. Written to benchmarks/results/allocator_ab.json.

  python benchmarks/allocator_ab.py          # with the machine otherwise idle
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine_info, write_report

HERE = Path(__file__).resolve().parent
STEPS = {"srgnn": 80, "sgnnhn": 20}


def child(peer: str, keep: bool, steps: int, dataset_name: str) -> dict:
    """One process's measurement (run in a subprocess by main)."""
    import torch

    from bench.allocator import keep_freed_memory
    from bench.core.prefixes import TrainingPrefixes
    from peer_epoch_cost import PEERS, dataset

    kept = keep_freed_memory() if keep else False
    torch.set_num_threads(1)
    data = dataset(dataset_name)
    torch.manual_seed(0)
    cls, batch, _ = PEERS[peer]
    model = cls(len(data.item_map))
    opt = model.configure_optimizers()["optimizer"]
    pairs = TrainingPrefixes(data.train, model.max_prefix, torch.device("cpu"))
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
    batches = [pairs.batch(order[i * batch : (i + 1) * batch]) for i in range(steps + 5)]

    def step(b):
        opt.zero_grad()
        model.loss(*b).backward()
        opt.step()

    for b in batches[:5]:
        step(b)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for b in batches[5:]:
        step(b)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kept": kept,
        "ms_per_step": 1e3 * wall / steps,
        "system_ms_per_step": 1e3 * (r1.ru_stime - r0.ru_stime) / steps,
        "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps,
        "peak_rss_mb": r1.ru_maxrss / 1024,
    }


def measure(peer: str, keep: bool, steps: int, dataset_name: str) -> dict:
    argv = [sys.executable, __file__, "--child", peer, str(int(keep)), str(steps), dataset_name]
    out = subprocess.run(argv, cwd=HERE, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{peer} (keep={keep}): failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        peer, keep, steps, name = sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
        print(json.dumps(child(peer, keep, steps, name)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(STEPS), default=list(STEPS))
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--dataset", default="diginetica_srgnn")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "allocator_ab.json")
    args = ap.parse_args()
    rows = []
    for peer in args.models:
        runs = {"default": [], "kept": []}
        for _ in range(args.pairs):
            for mode in runs:
                runs[mode].append(measure(peer, mode == "kept", STEPS[peer], args.dataset))
        speedups = [d["ms_per_step"] / k["ms_per_step"] for d, k in zip(*runs.values())]
        rows.append(
            {
                "model": peer,
                "steps": STEPS[peer],
                "runs": runs,
                "paired_speedup_median": statistics.median(speedups),
                "paired_speedups": speedups,
            }
        )
        print(f"{peer}: paired speedups {', '.join(f'{s:.2f}' for s in speedups)}")
    write_report(
        args.out,
        "allocator_ab",
        {"dataset": args.dataset, "threads": 1, "machine": machine_info(), "rows": rows},
    )


if __name__ == "__main__":
    main()
