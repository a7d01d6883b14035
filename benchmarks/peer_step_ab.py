"""The neural peers' training step, A against B, in processes paired back to back.

Two comparisons, each on full Diginetica at one thread (a study worker's setting), each
process timing `--steps` training steps of a peer's defaults after a warm-up and
recording the ms per step, the system (kernel) ms per step, the minor page faults per
step and its peak resident memory:
- by default: glibc's default allocator settings against freed memory kept
  (src/bench/allocator.py), this checkout's code otherwise;
- `--before REV`: the code of revision REV (a temporary git worktree) against this
  checkout's, each as `bench.run` runs it (freed memory kept where that code does so).
Settings and code are per process, hence one process per measurement. Each comparison
is a section of benchmarks/results/peer_step_ab.json (`revisions`: one entry per pair of
revisions); a run replaces only its own.

  python benchmarks/peer_step_ab.py                       # machine otherwise idle
  python benchmarks/peer_step_ab.py --before 5a9fd2b      # what changed since then
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_info
from peer_epoch_cost import PEERS

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "peer_step_ab.json"
# peer -> steps timed (its defaults, batch size included, are peer_epoch_cost.PEERS's)
STEPS = {"srgnn": 80, "sgnnhn": 20, "narm": 30}


def child(peer: str, mode: str, steps: int, dataset_name: str) -> dict:
    """One process's measurement; mode: default, kept, or run (as bench.run does)."""
    import torch

    from peer_epoch_cost import dataset, peer_and_batches, train_steps

    kept = False
    if mode in ("kept", "run"):
        try:
            from bench.allocator import keep_freed_memory
        except ImportError:  # code from before bench.allocator: run keeps nothing
            keep_freed_memory = None
        if mode == "kept" and keep_freed_memory is None:
            raise SystemExit("this code has no bench.allocator")
        kept = bool(keep_freed_memory and keep_freed_memory())
    torch.set_num_threads(1)
    model, opt, _, batches = peer_and_batches(peer, dataset(dataset_name), steps + 5)
    train_steps(model, opt, batches[:5])
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    train_steps(model, opt, batches[5:])
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kept": kept,
        "ms_per_step": 1e3 * wall / steps,
        "system_ms_per_step": 1e3 * (r1.ru_stime - r0.ru_stime) / steps,
        "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps,
        "peak_rss_mb": r1.ru_maxrss / 1024,
    }


def measure(peer: str, mode: str, dataset_name: str, src: Path | None = None) -> dict:
    """One child process; src: the `src/` of other code to import instead of this one's."""
    from bench.paths import default_data_dir

    env = dict(os.environ, BENCH_DATA_DIR=str(default_data_dir()))  # a worktree has no ../shared
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    argv = [sys.executable, __file__, "--child", peer, mode, str(STEPS[peer]), dataset_name]
    out = subprocess.run(argv, cwd=HERE, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{peer} ({mode}, {src or 'this checkout'}): failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args, sides: dict) -> list[dict]:
    """sides: name -> (mode, src); the pairs of every peer, the ratio first/second."""
    rows = []
    for peer in args.models:
        runs = {name: [] for name in sides}
        for _ in range(args.pairs):
            for name, (mode, src) in sides.items():
                runs[name].append(measure(peer, mode, args.dataset, src))
        first, second = runs.values()
        speedups = [a["ms_per_step"] / b["ms_per_step"] for a, b in zip(first, second)]
        rows.append(
            {
                "model": peer,
                "batch_size": PEERS[peer][1],
                "steps": STEPS[peer],
                "runs": runs,
                "paired_speedup_median": statistics.median(speedups),
                "paired_speedups": speedups,
            }
        )
        print(f"{peer}: paired speedups {', '.join(f'{s:.2f}' for s in speedups)}", flush=True)
    return rows


def git(*argv: str) -> str:
    return subprocess.run(
        ["git", *argv], cwd=HERE, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        peer, mode, steps, name = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        print(json.dumps(child(peer, mode, steps, name)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", metavar="REV", help="compare revision REV's code with this one's")
    ap.add_argument("--models", nargs="+", choices=list(STEPS), default=list(STEPS))
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--dataset", default="diginetica_srgnn")
    args = ap.parse_args()
    report = json.loads(OUT.read_text()) if OUT.exists() else {}
    common = {"dataset": args.dataset, "threads": 1, "machine": machine_info()}
    if args.before is None:
        sides = {"default": ("default", None), "kept": ("kept", None)}
        report["allocator"] = {**common, "rows": compare(args, sides)}
    else:
        rev, head = git("rev-parse", args.before), git("rev-parse", "HEAD")
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "before"
            git("worktree", "add", "--detach", str(tree), rev)
            try:
                sides = {"before": ("run", tree / "src"), "after": ("run", None)}
                rows = compare(args, sides)
            finally:
                git("worktree", "remove", "--force", str(tree))
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "src"))
        after = head + (" with uncommitted changes in src/" if dirty else "")
        report["revisions"] = [
            *(c for c in report.get("revisions", []) if (c["before"], c["after"]) != (rev, after)),
            {**common, "before": rev, "after": after, "rows": rows},
        ]
    from datetime import datetime, timezone

    import torch

    report["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["versions"] = {"torch": torch.__version__}
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
