"""A log of the seed paper's size, end to end. RSC15 after the official preprocessing
holds about 31.6M training clicks in 7.97M sessions over 37.5k items; it is not on these
machines, so the seeded synthetic generator makes one of that shape (sessions of mean
length 4 over a Zipf catalogue of 37,500 items, spread over six months).

Measured, each in a process of its own: the preparation of the raw TSV by the `generic`
recipe (`python -m bench.data prepare`, the last day as test) with its peak memory; then
one training epoch of GRU4Rec on the prepared files and the evaluation of their test set
(`python -m bench.run`, with the record's timings and events/s). Writing the raw log is
not counted. Written to benchmarks/results/scale.json. Run it with the machine otherwise
idle (pause a study worker with kill -STOP).

  python benchmarks/scale.py --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import host, machine_info, run_measured, write_report

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scale.json"
DAY = 86400.0


def write_log(path: Path, sessions: int, items: int, seed: int) -> dict:
    """The synthetic log as SessionId/ItemId/Time TSV, its clicks over six months."""
    from bench.data.synthetic import generate

    log, _ = generate(
        n_items=items, n_train_sessions=sessions, n_test_sessions=0, mean_length=4.0, seed=seed
    )
    start, span = log["Time"].min(), log["Time"].max() - log["Time"].min()
    log["Time"] = (start + (log["Time"] - start) * (183 * DAY / span)).round(3)
    log.to_csv(path, sep="\t", index=False)
    return {
        "events": len(log),
        "sessions": sessions,
        "items": items,
        "mb": path.stat().st_size / 1e6,
    }


GOAL_PREPARE_MB, GOAL_PREPARE_S = 8000, 300  # issue #30: under 8 GB and 5 minutes


def table(report: dict) -> str:
    """The README's scale block, from the JSON."""
    log, prep, run, m = report["log"], report["prepared"], report["run"], report["machine"]
    test = prep["statistics"]["test"]
    fits = lambda ok: "within" if ok else "**over**"
    rows = [
        "| step | wall | peak memory | what |",
        "|---|---:|---:|---|",
        f"| preparation (`generic` recipe, last day = test) | {prep['seconds']:.0f} s | "
        f"{prep['peak_rss_mb'] / 1000:.1f} GB | {log['events']:,} raw events, "
        f"{fits(prep['seconds'] <= GOAL_PREPARE_S)} the 5-minute goal, "
        f"{fits(prep['peak_rss_mb'] <= GOAL_PREPARE_MB)} the 8 GB goal |",
        f"| one training epoch (GRU4Rec defaults: ce, layers 100, batch 64) | "
        f"{run['epoch_s']:.0f} s | {run['peak_rss_mb'] / 1000:.1f} GB | "
        f"{run['train_events']:,} events at {run['events_per_s']:,} events/s; loading "
        f"{run['load_s']:.0f} s |",
        f"| evaluation (full ranking) | {run['eval_s']:.0f} s | (same process) | "
        f"{run['test_events']:,} test events ({test['sessions']:,} sessions) |",
    ]
    return (
        "\n".join(rows)
        + f"\n\nMeasured by `benchmarks/scale.py` on {host(m)}, {m['cpu_count']} cores, "
        f"torch {report['versions']['torch']} ({m['torch_threads']} threads), "
        f"{report['date'][:10]}, nothing else running; the log is synthetic (seeded), "
        f"{log['sessions']:,} sessions over {log['items']:,} items.\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, help="a folder with room for ~3 GB")
    p.add_argument("--readme", type=Path, help="write the table into this README's block")
    p.add_argument("--table-only", action="store_true", help="redraw the table from the JSON")
    p.add_argument("--sessions", type=int, default=7_970_000)
    p.add_argument("--items", type=int, default=37_500)
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    if not args.table_only:
        if args.work is None:
            p.error("--work is required to measure")
        measure(args)
    if args.readme:
        from bench.records import replace_block

        if not replace_block(args.readme, "scale", table(json.loads(OUT.read_text()))):
            raise SystemExit(f"{args.readme}: no <!-- scale:start/end --> block")
    return 0


def measure(args) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.work / "log.tsv"
    if not raw.is_file():
        print("writing the log ...", flush=True)
        log = write_log(raw, args.sessions, args.items, args.seed)
        (args.work / "log.json").write_text(json.dumps(log))
    log = json.loads((args.work / "log.json").read_text())
    cache = args.work / "cache"
    prep = run_measured(
        [
            sys.executable,
            "-m",
            "bench.data",
            "prepare",
            "generic",
            "--raw",
            str(raw),
            "--set",
            "test_days=1",
            "--cache",
            str(cache),
        ],
        ROOT,
        args.work / "prepare.log",
    )
    entry = next(cache.glob("generic-*"))
    stats = json.loads((entry / "stats.json").read_text())
    print("prepared", prep, flush=True)
    run_dir = args.work / "run"
    train = run_measured(
        [
            sys.executable,
            "-m",
            "bench.run",
            "dataset=files",
            f"dataset.train={entry / 'train.parquet'}",
            f"dataset.test={entry / 'test.parquet'}",
            "n_epochs=1",
            "save_model=false",
            "trainer.checkpoint=false",
            f"hydra.run.dir={run_dir}",
        ],
        ROOT,
        args.work / "run.log",
    )
    record = json.loads((run_dir / "result.json").read_text())
    epoch = record["epochs"][0]
    report = {
        "log": log,
        "prepared": {**prep, "statistics": stats["statistics"]},
        "run": {
            **train,
            "events_per_s": round(epoch["events_per_s"]),
            "epoch_s": round(epoch["seconds"], 1),
            "train_events": record["dataset"].get("train_events"),
            "eval_s": round(record["timings"]["eval_s"], 1),
            "load_s": round(record["timings"]["load_s"], 1),
            "test_events": record["protocol"].get("evaluated_events"),
            "recall@20": record["metrics"]["recall@20"],
        },
        "machine": machine_info(),
    }
    write_report(OUT, "scale", report)


if __name__ == "__main__":
    sys.exit(main())
