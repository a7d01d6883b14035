"""Training throughput of GRU4Rec: ours (bare core loop and Lightning harness) and,
side by side when given, the official GRU4Rec_PyTorch_Official on the same data.

Each setting runs one epoch in a fresh subprocess (so peak memory is per setting) over
the first sessions of the chosen dataset covering `--events` events. Writes JSON.

  python benchmarks/throughput.py --events 100000 \
      --official ~/src/GRU4Rec_PyTorch_Official --official-python ~/venvs/gru4rec/bin/python

The official code is never part of this repository: pass a checkout and a Python that
can run it (it needs numpy<2 and pandas<3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from common import load_named_dataset, write_gru4rec_tsv

HERE = Path(__file__).resolve().parent
EPOCH_LINE = re.compile(r"\[([\d.]+) mb/s \| (\d+) e/s\]")


def subset(dataset: str, data_dir: str, events: int):
    """The first sessions of the training split covering about `events` events."""
    from bench.data.sessions import Sessions

    data = load_named_dataset(dataset, data_dir)
    tr = data.train
    if events and events < tr.n_events:
        n = int((tr.offsets <= events).sum()) - 1
        end = int(tr.offsets[n])
        # Re-index to the subset's own items, as the official code does with its input.
        used, items = np.unique(tr.items[:end], return_inverse=True)
        tr = Sessions(items.astype(np.int64), tr.offsets[: n + 1], tr.session_ids[:n])
        return len(used), tr
    return len(data.item_map), tr


def worker(args) -> None:
    """One setting, one harness, one epoch; prints a JSON line."""
    import torch

    from bench.core.model import GRU4RecConfig
    from bench.core.train import Engine, fit
    from bench.lit import GRU4RecModule, make_trainer

    n_items, tr = subset(args.dataset, args.data_dir, args.events)
    cfg = GRU4RecConfig(
        layers=[args.layers], loss=args.loss, batch_size=args.batch_size, n_sample=args.n_sample,
        sample_alpha=0.5, logq=1.0 if args.loss == "ce" else 0.0, n_epochs=1, learning_rate=0.05,
    )  # fmt: skip
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    eng = Engine(cfg, tr, n_items, device=args.device, seed=0)
    if args.harness == "bare":
        stats = fit(eng)[0]
    else:
        import logging

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        module = GRU4RecModule(eng)
        trainer = make_trainer(1, "gpu" if args.device == "cuda" else "cpu", progress_bar=False)
        trainer.fit(module)
        stats = module.history[0]
    out = {
        "seconds": stats.seconds,
        "minibatches_per_s": stats.minibatches_per_s,
        "events_per_s": stats.events_per_s,
        "steps": stats.steps,
        "events": stats.events,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "harness_overhead": stats.harness_overhead,
    }
    if args.device == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out))


def run_ours(args, device, batch, layers, harness) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", "--dataset", args.dataset, "--data-dir", args.data_dir,
        "--events", str(args.events), "--loss", args.loss, "--n-sample", str(args.n_sample),
        "--batch-size", str(batch), "--layers", str(layers), "--device", device, "--harness", harness,
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        raise RuntimeError(f"worker failed ({harness}, {batch}, {layers}): {p.stderr[-800:]}")
    return json.loads(line[0][7:])


def run_official(args, tsv: Path, device, batch, layers) -> dict:
    loss = "cross-entropy" if args.loss == "ce" else args.loss
    ps = (
        f"loss={loss},layers={layers},batch_size={batch},n_sample={args.n_sample},sample_alpha=0.5,"
        f"logq={1 if args.loss == 'ce' else 0},n_epochs=1,learning_rate=0.05"
    )
    code = (
        "import resource,runpy,sys;sys.argv=sys.argv[1:];"
        "sys.path.insert(0, sys.argv[0].rsplit('/',1)[0]);"
        "runpy.run_path(sys.argv[0], run_name='__main__');"
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    cmd = [
        args.official_python,
        "-c",
        code,
        str(Path(args.official) / "run.py"),
        str(tsv),
        "-d",
        device,
        "-ps",
        ps,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True)
    m = EPOCH_LINE.search(p.stdout)
    peak = re.search(r"PEAK_RSS_KB (\d+)", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(
            f"official run failed ({batch}, {layers}): {p.stdout[-500:]} {p.stderr[-800:]}"
        )
    return {
        "minibatches_per_s": float(m.group(1)),
        "events_per_s": float(m.group(2)),
        "peak_rss_mb": int(peak.group(1)) / 1024,
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median events/s, plus every repeat's events/s."""
    ordered = sorted(runs, key=lambda r: r["events_per_s"])
    out = dict(ordered[len(ordered) // 2])
    out["events_per_s_all"] = [r["events_per_s"] for r in runs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="diginetica_srgnn")
    ap.add_argument("--data-dir", default=None, help="default: BENCH_DATA_DIR or ../shared/data")
    ap.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="train on the first sessions covering this many events (0 = all)",
    )
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--layer-sizes", type=int, nargs="+", default=[100, 480])
    ap.add_argument("--loss", default="ce")
    ap.add_argument("--n-sample", type=int, default=2048)
    ap.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats per setting (median reported)"
    )
    ap.add_argument(
        "--devices", nargs="+", default=None, help="default: cpu, plus cuda when available"
    )
    ap.add_argument(
        "--official", default=None, help="checkout of GRU4Rec_PyTorch_Official to run side by side"
    )
    ap.add_argument("--official-python", default=sys.executable)
    ap.add_argument("--out", default=str(HERE / "results" / "throughput.json"))
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--device", help=argparse.SUPPRESS)
    ap.add_argument("--harness", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.data_dir is None:
        from bench.datasets import default_data_dir

        args.data_dir = default_data_dir()
    if args.worker:
        worker(args)
        return
    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    _, tr = subset(args.dataset, args.data_dir, args.events)
    tmp = Path(tempfile.mkdtemp())
    tsv = tmp / "train.tsv"
    if args.official:
        write_gru4rec_tsv(tsv, tr)
    rows = []
    for device in devices:
        for layers in args.layer_sizes:
            for batch in args.batch_sizes:
                row = {
                    "device": device,
                    "batch_size": batch,
                    "layers": layers,
                    "repeats": args.repeats,
                }
                runs = {"bare": [], "lightning": [], "official": []}
                # Interleaved repeats: a noisy neighbour slows all three alike.
                for _ in range(args.repeats):
                    runs["bare"].append(run_ours(args, device, batch, layers, "bare"))
                    runs["lightning"].append(run_ours(args, device, batch, layers, "lightning"))
                    if args.official:
                        runs["official"].append(run_official(args, tsv, device, batch, layers))
                for name, rs in runs.items():
                    if rs:
                        row[name] = median_run(rs)
                row["lightning_vs_bare_time"] = row["lightning"]["seconds"] / row["bare"]["seconds"]
                # The reliable figure: time outside the core loop inside the Lightning epochs.
                row["lightning_overhead"] = max(r["harness_overhead"] for r in runs["lightning"])
                if args.official:
                    row["speedup_vs_official"] = (
                        row["bare"]["events_per_s"] / row["official"]["events_per_s"]
                    )
                    row["lightning_speedup_vs_official"] = (
                        row["lightning"]["events_per_s"] / row["official"]["events_per_s"]
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
    report = {
        "benchmark": "throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": args.dataset,
        "train_events": tr.n_events,
        "train_sessions": tr.n_sessions,
        "loss": args.loss,
        "n_sample": args.n_sample,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "official": args.official is not None,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
