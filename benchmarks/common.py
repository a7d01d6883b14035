"""What the benchmark scripts share: loading a named dataset, writing the official
GRU4Rec's TSV input, and writing a report JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path


def load_named_dataset(name: str, data_dir: str, split: str = "final"):
    """The dataset a `dataset=NAME` config names, prepared as `bench.run` prepares it
    (split="tune": train_tr -> validation, what a study's trial sees)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from bench.datasets import load_dataset
    from bench.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("run", overrides=[f"dataset={name}", f"data_dir={data_dir}"])
    return load_dataset(OmegaConf.to_object(cfg.dataset), data_dir, split)


def add_data_options(ap) -> None:
    """--dataset and --data-dir, as every benchmark on a named dataset takes them."""
    ap.add_argument("--dataset", default="diginetica_srgnn")
    ap.add_argument("--data-dir", default=None, help="default: BENCH_DATA_DIR or ../shared/data")


def tune_split_benchmark(doc: str, name: str):
    """(args, data) of a benchmark that times validation passes as a study worker runs
    them: --out (results/NAME.json), --repeats, the data options (yoochoose1/64 by
    default), one torch thread, the tune split (train_tr -> validation)."""
    import argparse

    import torch

    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / f"{name}.json")
    p.add_argument("--repeats", type=int, default=2)
    add_data_options(p)
    p.set_defaults(dataset="yoochoose1_64")
    args = p.parse_args()
    torch.set_num_threads(1)
    return args, load_named_dataset(args.dataset, data_dir(args), split="tune")


def data_dir(args) -> str:
    """--data-dir, else the project's default data directory."""
    from bench.paths import default_data_dir

    return str(args.data_dir or default_data_dir())


def write_gru4rec_tsv(path: Path, sessions, item_ids=None) -> None:
    """SessionId/ItemId/Time TSV; times keep our session order (start order) and click order."""
    with open(path, "w") as f:
        f.write("SessionId\tItemId\tTime\n")
        for s in range(sessions.n_sessions):
            for pos, it in enumerate(sessions.items[sessions.offsets[s] : sessions.offsets[s + 1]]):
                f.write(f"{s}\t{it if item_ids is None else item_ids[it]}\t{s * 1000 + pos}\n")


def machine_info() -> dict:
    """The machine a figure was measured on, as the summaries print it."""
    import torch

    from bench.core import native

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": native.cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def host(m: dict) -> str:
    """A report's machine as its caption names it: the CPU model where recorded (which
    library or kernel wins depends on it), else the platform's processor string."""
    return f"{m['cpu']} ({m['processor']})" if m.get("cpu") else m["processor"]


def write_report(out: str | Path, benchmark: str, fields: dict) -> None:
    """The report JSON: kind, date and versions first, then the benchmark's own fields."""
    import torch

    report = {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        **fields,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def run_measured(argv: list[str], cwd: Path, log: Path) -> dict:
    """One process to its end: wall seconds and its peak resident set (MB; Linux reports
    the largest process of the tree it waited for), its output in `log`; a failure ends
    the benchmark with the log's tail."""
    import subprocess
    import time

    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, argv))}: failed\n{log.read_text()[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
