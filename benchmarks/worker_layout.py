"""How a study should use a machine's cores: one GRU4Rec worker with all the threads, or
one single-threaded worker per core (what `python -m bench.studies --workers N` runs).

For each official paramfile given (a headline study's enqueued first trial), every layout
trains one epoch over the first sessions of the split covering `--events` events, with
the whole item table (as a trial has it). Workers of one layout load and build first,
then start training together; the layout's events/s is all its workers' training events
over the slowest one's seconds. Layouts alternate within each repeat. Writes JSON.

  python benchmarks/worker_layout.py --events 100000 --repeats 3

Run it on an otherwise idle machine: a study worker beside it skews every layout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import add_data_options, data_dir, load_named_dataset, machine_info, write_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (processes, threads each)
LAYOUTS = ((1, 1), (1, 2), (2, 1))


def paramfile_config(name: str, n_epochs: int = 1):
    """The GRU4Rec config an official paramfile of conf/paramfile describes."""
    import yaml

    from bench.core.config import GRU4RecConfig

    path = ROOT / "conf" / "paramfile" / f"{name}.yaml"
    if not path.is_file():
        sys.exit(f"error: --paramfiles: {path} does not exist")
    values = yaml.safe_load(path.read_text())
    values.pop("paramfile", None)
    loss = "bpr-max" if name.endswith("bpr-max") else "ce"
    return GRU4RecConfig(**values, loss=loss, n_epochs=n_epochs)


def worker(args) -> None:
    """Builds the trainer, says READY, waits for GO on stdin, trains one epoch. Freed
    memory is kept as a study's bench.run job keeps it (results/worker_layout.json was
    measured before the worker did: throughput.worker says what that changed)."""
    import torch

    from bench.allocator import keep_freed_memory
    from bench.core.train import SessionParallelTrainer, fit
    from bench.data.sessions import Sessions

    keep_freed_memory()
    data = load_named_dataset(args.dataset, args.data_dir)
    tr = data.train
    if args.events and args.events < tr.n_events:
        n = int((tr.offsets <= args.events).sum()) - 1
        tr = Sessions(tr.items[: tr.offsets[n]], tr.offsets[: n + 1], tr.session_ids[:n])
    eng = SessionParallelTrainer(
        paramfile_config(args.paramfile), tr, len(data.item_map), device="cpu", seed=0
    )
    print("READY", flush=True)
    sys.stdin.readline()
    cpu0 = time.process_time()
    stats = fit(eng)[0]
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": stats.seconds,
                "events": stats.events,
                "cpu_seconds": time.process_time() - cpu0,
                "torch_threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


def run_layout(args, paramfile: str, processes: int, threads: int) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--paramfile",
        paramfile,
        "--dataset",
        args.dataset,
        "--data-dir",
        args.data_dir,
        "--events",
        str(args.events),
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for p in procs:  # every worker built before any trains
        while (line := p.stdout.readline()) and line.strip() != "READY":
            pass
    for p in procs:
        p.stdin.write("GO\n")
        p.stdin.flush()
    runs = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"error: a {processes} x {threads} worker failed (exit {p.returncode})")
        runs.append(json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:]))
    seconds = max(r["seconds"] for r in runs)
    events = sum(r["events"] for r in runs)
    return {
        "processes": processes,
        "threads": threads,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_per_event_us": 1e6 * sum(r["cpu_seconds"] for r in runs) / events,
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument("--events", type=int, default=100_000, help="training events per epoch")
    ap.add_argument(
        "--paramfiles",
        nargs="+",
        default=["official_diginetica_srgnn_bpr-max", "official_diginetica_srgnn_ce"],
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "worker_layout.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--paramfile", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.data_dir = data_dir(args)
    if args.worker:
        worker(args)
        return
    rows = []
    for paramfile in args.paramfiles:
        paramfile_config(paramfile)  # a missing file is an error before anything runs
        runs = {layout: [] for layout in LAYOUTS}
        for _ in range(args.repeats):
            for layout in LAYOUTS:
                runs[layout].append(run_layout(args, paramfile, *layout))
                print(paramfile, layout, f"{runs[layout][-1]['events_per_s']:.0f} e/s", flush=True)
        row = {"paramfile": paramfile, "layouts": []}
        for (processes, threads), rs in runs.items():
            eps = [r["events_per_s"] for r in rs]
            row["layouts"].append(
                {
                    "processes": processes,
                    "threads": threads,
                    "best_events_per_s": max(eps),
                    "median_events_per_s": statistics.median(eps),
                    "repeats": rs,
                }
            )
        by = {(x["processes"], x["threads"]): x for x in row["layouts"]}
        row["two_workers_over_two_threads_best"] = (
            by[2, 1]["best_events_per_s"] / by[1, 2]["best_events_per_s"]
        )
        row["two_workers_over_two_threads_median"] = (
            by[2, 1]["median_events_per_s"] / by[1, 2]["median_events_per_s"]
        )
        rows.append(row)
    fields = dict(dataset=args.dataset, events=args.events, machine=machine_info(), rows=rows)
    write_report(args.out, "worker_layout", fields)


if __name__ == "__main__":
    main()
