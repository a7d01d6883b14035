"""What the README's real-data commands cost as written: wall seconds, peak memory (the
largest resident set of the process tree) and the disk each leaves in its run folder.

Each command runs once, in this checkout, one after the other, with its run folder under
results/raw/readme_times/; run it with the machine otherwise idle (pause any study worker
with kill -STOP). Writes benchmarks/results/readme_times.json and, with --readme, the
README's `readme-times` table from it (`--table-only` redraws the table from the JSON).

  python benchmarks/readme_times.py --readme README.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from common import host, machine_info, run_measured, write_report

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "readme_times.json"
RUNS = ROOT / "results" / "raw" / "readme_times"
# The README's commands that read real data, as its bash blocks write them.
COMMANDS = [
    "python -m bench.run",
    "python -m bench.run dataset=rsc15_100k n_epochs=5",
    "python -m bench.run dataset=rsc15_100k split=tune patience=2 stop_metric=recall@20",
    "python -m bench.run model=gru4rec_seq dataset=ml-100k",
    "python -m bench.run dataset=diginetica_srgnn loss=bpr-max n_epochs=5",
    "python -m bench.run dataset=diginetica_srgnn loss=ce layers=[100] batch_size=128 "
    "n_sample=2048 sample_alpha=0.75 logq=1 constrained_embedding=true dropout_p_embed=0.1 "
    "dropout_p_hidden=0 learning_rate=0.1 momentum=0 n_epochs=1 eval.tie_mode=standard",
    "python -m bench.run model=external model.target=examples.my_model:PrefixGRU "
    "+model.params.hidden=128 batch_size=256 n_epochs=3 dataset=yoochoose1_64 "
    "eval.per_epoch=true",
]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(command: str, run_dir: Path) -> dict:
    """One run: wall seconds, peak resident set, and the bytes of each file kind its run
    folder holds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, *shlex.split(command)[1:], f"hydra.run.dir={run_dir}"]
    cost = run_measured(argv, ROOT, run_dir.parent / f"{run_dir.name}.log")
    files = {f.name: f.stat().st_size for f in run_dir.rglob("*") if f.is_file()}
    return {
        "command": command,
        **cost,
        "disk_mb": round(folder_bytes(run_dir) / 1e6, 2),
        "largest_files_mb": {
            k: round(v / 1e6, 2) for k, v in sorted(files.items(), key=lambda kv: -kv[1])[:3]
        },
    }


def table(report: dict) -> str:
    m = report["machine"]
    rows = [
        "| command | wall | peak memory | run folder |",
        "|---|---:|---:|---:|",
    ]
    for r in report["runs"]:
        big = ", ".join(f"{k} {v:.1f} MB" for k, v in r["largest_files_mb"].items() if v >= 0.5)
        rows.append(
            f"| `{r['command']}` | {r['seconds']:.0f} s | {r['peak_rss_mb']:.0f} MB | "
            f"{r['disk_mb']:.1f} MB{f' ({big})' if big else ''} |"
        )
    note = (
        f"\nMeasured by `benchmarks/readme_times.py` on {host(m)}, {m['cpu_count']} "
        f"cores, torch {report['versions']['torch']} ({m['torch_threads']} threads), "
        f"{report['date'][:10]}, each command once as written, nothing else running. The "
        "run folder holds the record, the per-event ranks, the model (`save_model=false` "
        "leaves it out) and the checkpoint (`trainer.checkpoint=false`).\n"
    )
    return "\n".join(rows) + "\n" + note


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readme", type=Path, help="write the table into this README's block")
    p.add_argument("--table-only", action="store_true", help="redraw the table from the JSON")
    args = p.parse_args()
    if args.table_only:
        report = json.loads(OUT.read_text())
    else:
        runs = []
        for i, command in enumerate(COMMANDS):
            runs.append(measure(command, RUNS / f"{i:02d}"))
            print(json.dumps(runs[-1]), flush=True)
        report = {"runs": runs, "machine": machine_info()}
        write_report(OUT, "readme_times", report)
        report = json.loads(OUT.read_text())
    if args.readme:
        from bench.records import replace_block

        if not replace_block(args.readme, "readme-times", table(report)):
            raise SystemExit(f"{args.readme}: no <!-- readme-times:start/end --> block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
