"""Full-ranking evaluation speed: ours against the official `batch_eval`, same data.

Both evaluate an untrained model of the same size (speed does not depend on the
weights) on the test sessions of the chosen dataset, in interleaved repeats; writes JSON.

  python benchmarks/eval_speed.py --official ~/src/GRU4Rec_PyTorch_Official \
      --official-python ~/venvs/gru4rec/bin/python
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_data_options, data_dir, load_named_dataset, write_gru4rec_tsv, write_report

HERE = Path(__file__).resolve().parent

OFFICIAL_SNIPPET = """
import sys, time
sys.path.insert(0, sys.argv[1])
import pandas as pd, torch
from gru4rec_pytorch import GRU4Rec
from evaluation import batch_eval
train = pd.read_csv(sys.argv[2], sep='\\t', dtype={'ItemId': str})
test = pd.read_csv(sys.argv[3], sep='\\t', dtype={'ItemId': str})
gru = GRU4Rec(layers=[int(sys.argv[4])], n_epochs=0, n_sample=2048,
              device=torch.device(sys.argv[6]))
gru.fit(train)
t = time.perf_counter()
batch_eval(gru, test, cutoff=[1, 5, 10, 20], batch_size=512, mode=sys.argv[5])
print('SECONDS', time.perf_counter() - t)
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--tie-mode", default="conservative", choices=["standard", "conservative"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--official", default=None)
    ap.add_argument("--official-python", default=sys.executable)
    ap.add_argument("--out", default=str(HERE / "results" / "eval_speed.json"))
    args = ap.parse_args()

    import torch

    from bench.core.config import GRU4RecConfig
    from bench.core.evaluate import evaluate
    from bench.core.model import GRU4RecModel

    data = load_named_dataset(args.dataset, data_dir(args))
    model = GRU4RecModel(len(data.item_map), GRU4RecConfig(layers=[args.layers]))
    model.reset_parameters(torch.Generator().manual_seed(0))
    model.to(args.device)

    tmp = Path(tempfile.mkdtemp())
    if args.official:
        ids = [str(x) for x in data.item_map.ids]
        write_gru4rec_tsv(tmp / "train.tsv", data.train, ids)
        write_gru4rec_tsv(tmp / "test.tsv", data.test, ids)
    ours, official, official_error = [], [], None
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = evaluate(model, data.test, [1, 5, 10, 20], args.tie_mode, 512, args.device)
        ours.append(time.perf_counter() - t)
        if args.official:
            p = subprocess.run(
                [
                    args.official_python,
                    "-c",
                    OFFICIAL_SNIPPET,
                    args.official,
                    str(tmp / "train.tsv"),
                    str(tmp / "test.tsv"),
                    str(args.layers),
                    args.tie_mode,
                    args.device,
                ],
                capture_output=True,
                text=True,
            )
            if p.returncode != 0 or "SECONDS" not in p.stdout:  # ours is kept, the error said
                official_error = f"official evaluation failed: {p.stderr[-600:]}"
                print(official_error, file=sys.stderr)
            else:
                official.append(float(p.stdout.split("SECONDS")[-1]))
    report = {
        "dataset": args.dataset,
        "n_items": len(data.item_map),
        "events": res.n_events,
        "layers": args.layers,
        "tie_mode": args.tie_mode,
        "device": args.device,
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "ours_seconds": ours,
        "ours_median_s": statistics.median(ours),
        "ours_events_per_s": res.n_events / statistics.median(ours),
    }
    if args.device.startswith("cuda"):
        report["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if official:
        report["official_seconds"] = official
        report["official_median_s"] = statistics.median(official)
        report["speedup_vs_official"] = statistics.median(official) / statistics.median(ours)
    if official_error:
        report["official_error"] = official_error
    write_report(args.out, "eval_speed", report)


if __name__ == "__main__":
    main()
