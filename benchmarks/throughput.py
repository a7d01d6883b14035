"""Training throughput of GRU4Rec: ours (the unoptimised autograd step, the fused step
in the bare core loop and in the Lightning harness; on a GPU also the fused step without
CUDA graphs) and, side by side when given, the official GRU4Rec_PyTorch_Official.

Each setting runs one epoch in a fresh subprocess (so peak memory is per setting; on a
lent GPU, `--shared-processes` runs a batch size's settings in one process per side and
`--window-events` times only each epoch's first minibatches, so that the grid fits the
lend) over the training split of the chosen dataset (`--events 0`), its first sessions covering
`--events` events (the quick mode), or synthetic sessions over a catalogue of
`--catalogue` items (the catalogue sweep). For CPU rows the GEMM floor is also measured:
the events/s a step would reach if it were only its matrix products (best of repeated
timings), the ceiling no implementation passes. Writes JSON: by default the quick mode's
`results/throughput_subset.json`; with `--merge` a part of the collection
`results/throughput.json` (full splits and the sweep), which the README's table reads.

  python benchmarks/throughput.py --events 0 --dataset yoochoose1_64 --merge \
      --out benchmarks/results/throughput.json \
      --official ~/src/GRU4Rec_PyTorch_Official --official-python ~/venvs/gru4rec/bin/python
  python benchmarks/throughput.py --catalogue 1000000 --events 900000 --merge ...

The official code is never part of this repository: pass a checkout and a Python that
can run it (it needs numpy<2 and pandas<3).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from common import (
    add_data_options,
    data_dir,
    load_named_dataset,
    machine_info,
    write_gru4rec_tsv,
    write_report,
)

HERE = Path(__file__).resolve().parent
SETTING = ("device", "loss", "batch_size", "layers")  # what tells a row from another
# Minibatches of a window's epoch run before its timing starts, on both sides: past our
# CUDA-graph capture (after 3 eager steps) and both sides' first-call costs.
WINDOW_WARMUP = 20
# name -> (loop, training step, CUDA graphs: None = where possible, compiled kernels)
HARNESSES = {
    "autograd": ("bare", "autograd", False, True),
    "bare": ("bare", "fused", None, True),
    "lightning": ("lightning", "fused", None, True),
    "fused_no_graphs": ("bare", "fused", False, True),
    "fused_pytorch": ("bare", "fused", None, False),  # without native.py's kernels
}


def gemm_floor(batch: int, layers: int, n_sample: int, repeats: int = 20) -> float:
    """Events/s of a step made only of its matrix products (forward and backward of the
    output layer and of one GRU layer, the hidden state detached), best of `repeats`;
    each product timed both as torch computes it and, where built, as the compiled step
    does (native.matmul: split between threads over numpy's OpenBLAS), the faster counted."""
    import time

    import torch

    from bench.core import native

    lib = native.kernel()
    n_cols = batch + n_sample
    h, W, dO = torch.randn(batch, layers), torch.randn(n_cols, layers), torch.randn(batch, n_cols)
    Wg, dG = torch.randn(3 * layers, layers), torch.randn(batch, 3 * layers)
    torch_forms = [
        lambda: h @ W.T,
        lambda: dO @ W,
        lambda: dO.T @ h,  # output layer
        lambda: h @ Wg.T,
        lambda: h @ Wg.T,
        lambda: dG @ Wg,
        lambda: dG.T @ h,
        lambda: dG.T @ h,
    ]
    split_forms = (
        [
            lambda: native.matmul(lib, h, W, trans_b=True),
            lambda: native.matmul(lib, dO, W),
            lambda: native.matmul(lib, dO, h, trans_a=True),
        ]
        if lib is not None and lib.blas
        else []
    )

    def best_of(f) -> float:
        f()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t)
        return best

    times = [best_of(f) for f in torch_forms]
    for i, f in enumerate(split_forms):
        times[i] = min(times[i], best_of(f))
    return batch / sum(times)


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


def catalogue_sessions(n_items: int, events: int, seed: int = 0):
    """Synthetic sessions of about `events` training events over exactly `n_items` items,
    for the catalogue sweep: the seeded generator's sessions (Zipf popularity, mean length
    4), then n_items clicks at random positions set to a permutation of the catalogue, so
    that every item occurs and both implementations, which size their item tables by the
    items in the data, hold n_items rows. The larger the catalogue, the flatter the
    popularity (at 1M items most clicks are those covering ones), as a long tail is."""
    from bench.data.io import ITEM, SESSION
    from bench.data.sessions import Sessions
    from bench.data.synthetic import generate

    log, _ = generate(
        n_items=n_items,
        n_train_sessions=round(events / 3),  # mean length 4: 3 training events a session
        n_test_sessions=0,
        mean_length=4.0,
        seed=seed,
    )
    items = log[ITEM].str.slice(1).astype(np.int64).to_numpy().copy()
    if len(items) < n_items:
        raise SystemExit(f"error: --events {events} is too few to cover {n_items:,} items")
    rng = np.random.default_rng(seed)
    items[rng.choice(len(items), size=n_items, replace=False)] = rng.permutation(n_items)
    lengths = log.groupby(SESSION, sort=False).size().to_numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return n_items, Sessions(items, offsets, np.arange(len(lengths)))


def source_key(report: dict) -> tuple:
    """What a part of the collection measured: a named dataset (all of it or its first
    events) or a synthetic catalogue."""
    return (report.get("dataset"), report.get("catalogue"), report.get("events_requested"))


def merge(out: Path, report: dict) -> dict:
    """The collection at `out` with `report` folded in: its part (same source) gains the
    report's rows, each replacing a row of the same setting measured on the same CPU model;
    every row keeps its date and CPU (where recorded), so settings measured on different
    days or hosts stay told apart (ratios are paired within a row)."""
    setting = lambda r: (r["device"], r["loss"], r["batch_size"], r["layers"], r.get("host"))
    cpu = lambda rep: {"host": c} if (c := rep.get("machine", {}).get("cpu")) else {}
    as_part = lambda rep: (
        {k: v for k, v in rep.items() if k not in ("benchmark", "parts")}
        | {"rows": [{"date": rep["date"], **cpu(rep), **r} for r in rep["rows"]]}
    )
    part = as_part(report)
    coll = json.loads(out.read_text()) if out.is_file() else {"benchmark": "throughput"}
    if "parts" not in coll:  # an older single report becomes the first part
        coll = {"benchmark": "throughput", "parts": [as_part(coll)] if coll.get("rows") else []}
    for old in coll["parts"]:
        if source_key(old) == source_key(part):
            new = {setting(r) for r in part["rows"]}
            kept = [r for r in old["rows"] if setting(r) not in new]
            old.update({**part, "rows": kept + part["rows"]})
            old["rows"].sort(key=lambda r: (r["device"], r["loss"], r["layers"], r["batch_size"]))
            break
    else:
        coll["parts"].append(part)
    return coll


def save_subset(path: Path, n_items: int, tr) -> None:
    np.savez(path, n_items=n_items, items=tr.items, offsets=tr.offsets, ids=tr.session_ids)


def load_subset(path: str):
    """The parent's subset: a worker reads only its events, as the official code reads only
    its TSV, so that peak memory compares training and not loading the whole dataset."""
    from bench.data.sessions import Sessions

    with np.load(path) as z:
        return int(z["n_items"]), Sessions(z["items"], z["offsets"], z["ids"])


def setting_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the scripts that time one CPU setting of the grid: the dataset and
    the setting (512 x 480 cross-entropy unless told)."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument("--loss", choices=["ce", "bpr-max"], default="ce")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--layers", type=int, default=480)
    ap.add_argument("--n-sample", type=int, default=2048)
    return ap


def setting_fields(args) -> dict:
    """That setting as a report names it."""
    keys = ("dataset", "loss", "batch_size", "layers", "n_sample")
    return {k: getattr(args, k) for k in keys}


def window_setting(args, steps: int) -> dict:
    """That setting as a worker reads it: `steps` minibatches after the warm-up (more than
    the epoch has: to its end)."""
    return {
        "device": "cpu",
        "loss": args.loss,
        "batch_size": args.batch_size,
        "layers": args.layers,
        "window_steps": steps,
        "window_warmup": WINDOW_WARMUP,
    }


def full_split_file(dataset: str, data_dir: str) -> tuple[str, object]:
    """A dataset's whole training split saved for the workers: (the file, the sessions)."""
    n_items, tr = subset(dataset, data_dir, 0)
    path = Path(tempfile.mkdtemp()) / "subset.npz"
    save_subset(path, n_items, tr)
    return str(path), tr


def worker(args) -> None:
    """One harness over the settings given (each one epoch, or its window); prints a line
    per setting, `RESULT {...}` or `FAILED {...}`, so that one failure spares the rest.
    Freed memory is kept in the process, as bench.run keeps it for every job: glibc's
    default hands some of a step's buffers back to the kernel, depending on the order of
    the process's first allocations, and ours' ce 512 x 480 epochs then fell into a second
    mode 15-20% slower, with 13x the page faults (benchmarks/README.md)."""
    from bench.allocator import keep_freed_memory

    if args.allocator == "kept":
        keep_freed_memory()
    n_items, tr = load_subset(args.subset_file)
    for i, st in enumerate(json.loads(args.settings)):
        try:
            out = worker_epoch(args, n_items, tr, st)
            print("RESULT " + json.dumps({"index": i, **out}), flush=True)
        except Exception as e:
            error = f"{type(e).__name__}: {e} | {traceback.format_exc(limit=2)[-300:]}"
            print("FAILED " + json.dumps({"index": i, "error": error}), flush=True)
        gc.collect()  # the last trainer's tensors (and CUDA graphs) gone before the next peak


def worker_epoch(args, n_items: int, tr, st: dict) -> dict:
    import torch

    from bench.core.config import GRU4RecConfig
    from bench.core.train import SessionParallelTrainer, fit

    cfg = GRU4RecConfig(
        layers=[st["layers"]],
        loss=st["loss"],
        batch_size=st["batch_size"],
        n_sample=args.n_sample,
        sample_alpha=0.5,
        logq=1.0 if st["loss"] == "ce" else None,
        n_epochs=1,
        learning_rate=0.05,
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loop, step, graphs, _ = HARNESSES[args.harness]
    t_setup = time.perf_counter()
    eng = SessionParallelTrainer(
        cfg, tr, n_items, device=args.device, seed=0, step=step, cuda_graphs=graphs
    )
    setup_s = time.perf_counter() - t_setup
    if st.get("window_steps"):
        stats = first_steps(eng, st["window_steps"], st["window_warmup"])
    elif loop == "bare":
        stats = fit(eng)[0]
    else:  # imported only here: Lightning alone adds ~190 MB to a process's peak RSS
        import logging

        from bench.lit import EpochCheckpoint, GRU4RecModule, make_trainer

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        # As a single run uses it: with the per-epoch checkpoint (written after the epoch's
        # timing ends, so its cost is measured apart, as the seconds of one more save).
        ckpt_dir = Path(tempfile.mkdtemp())
        module = GRU4RecModule(eng)
        trainer = make_trainer(
            1,
            "gpu" if args.device == "cuda" else "cpu",
            progress_bar=False,
            callbacks=[EpochCheckpoint(ckpt_dir)],
        )
        trainer.fit(module)
        stats = module.history[0]
        t0 = time.perf_counter()
        trainer.save_checkpoint(ckpt_dir / "again.ckpt")
        checkpoint_s = time.perf_counter() - t0
    out = {
        "seconds": stats.seconds,
        "minibatches_per_s": stats.minibatches_per_s,
        "events_per_s": stats.events_per_s,
        "steps": stats.steps,
        "events": stats.events,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "harness_overhead": stats.harness_overhead,
        # Building the trainer (schedule, sampler store, loading the compiled kernel): what
        # a one-epoch run pays on top of the epoch, for end-to-end comparisons.
        "setup_s": setup_s,
        "compiled_kernels": eng.optimizer.kernel is not None,
    }
    if st.get("window_steps"):  # its span on the monotonic clock (sliced_pair.py)
        out["window"] = list(stats.window)
    if loop == "lightning":
        out["checkpoint_s"] = checkpoint_s
    if args.device == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def first_steps(eng, steps: int, warmup: int) -> SimpleNamespace:
    """A window of the epoch (--window-events): `steps` minibatches after the first
    `warmup` (CUDA-graph capture and first-call costs left out, as the official's window
    leaves its own out), run and timed as fit() runs and times a whole epoch."""
    from bench.core.train import run_chunked

    if warmup >= eng.n_steps:
        raise RuntimeError(f"the epoch has no more than the window's {warmup} warm-up steps")
    end = min(warmup + steps, eng.n_steps)
    eng.start_epoch()
    run_chunked(eng, 0, warmup)
    t0 = time.perf_counter()
    run_chunked(eng, warmup, end)
    t1 = time.perf_counter()
    events = eng.events_before(end) - eng.events_before(warmup)
    seconds = t1 - t0
    return SimpleNamespace(
        window=(t0, t1),
        seconds=seconds,
        steps=end - warmup,
        events=events,
        minibatches_per_s=(end - warmup) / seconds,
        events_per_s=events / seconds,
        harness_overhead=None,
    )


def read_results(stdout: str, n: int) -> list[dict | str | None]:
    """A worker's `RESULT {...}` / `FAILED {...}` lines by setting index: the result, the
    error, or None where the setting printed neither."""
    got: list[dict | str | None] = [None] * n
    for line in stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag in ("RESULT", "FAILED"):
            rec = json.loads(rest)
            got[rec.pop("index")] = rec if tag == "RESULT" else rec["error"]
    return got


def run_settings(cmd: list[str], n: int, env=None) -> list[dict | str]:
    """Run a worker over `n` settings: each one's result, or its error as a string (a
    worker that dies leaves the settings it had not reported with its exit and stderr).
    A worker that ran one setting adds its whole wall time (`process_s`); one that ran
    several drops the peak RSS, which would be the process's over all of them."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    got = read_results(p.stdout, n)
    for i, r in enumerate(got):
        if r is None:
            got[i] = f"worker exited ({p.returncode}) before it: {p.stderr[-800:]}"
        elif isinstance(r, dict):
            r.update({"process_s": wall} if n == 1 else {"peak_rss_mb": None})
    return got


def ours_command(
    args, group: list[dict], harness: str, allocator: str = "kept"
) -> tuple[list[str], dict]:
    """The worker process of ours over `group` (command and environment); `allocator`
    "glibc" leaves glibc's defaults (allocator_modes.py)."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--subset-file",
        args.subset_file,
        "--n-sample",
        str(args.n_sample),
        "--device",
        group[0]["device"],
        "--harness",
        harness,
        "--settings",
        json.dumps(group),
        "--allocator",
        allocator,
    ]
    env = os.environ | ({} if HARNESSES[harness][3] else {"BENCH_NATIVE": "0"})
    return cmd, env


def run_ours(args, group: list[dict], harness: str) -> list[dict | str]:
    cmd, env = ours_command(args, group, harness)
    return run_settings(cmd, len(group), env)


def official_command(args, tsv: Path, group: list[dict]) -> list[str]:
    """The official code's process over `group` (benchmarks/official_epoch.py, under its
    own Python)."""
    settings = [
        {
            "params": f"loss={'cross-entropy' if st['loss'] == 'ce' else st['loss']},"
            f"layers={st['layers']},batch_size={st['batch_size']},n_sample={args.n_sample},"
            f"sample_alpha=0.5,logq={1 if st['loss'] == 'ce' else 0},n_epochs=1,"
            "learning_rate=0.05",
            "window_steps": st.get("window_steps"),
            "window_warmup": st.get("window_warmup", 0),
        }
        for st in group
    ]
    return [
        args.official_python,
        str(HERE / "official_epoch.py"),
        args.official,
        str(tsv),
        group[0]["device"],
        json.dumps(settings),
    ]


def run_official(args, tsv: Path, group: list[dict]) -> list[dict | str]:
    """The official code's epochs."""
    got = run_settings(official_command(args, tsv, group), len(group))
    for r in got:
        if isinstance(r, dict):
            # Its printed e/s counts every minibatch as a full batch (fit() sets n_valid to
            # batch_size and never updates it), overcounting the shrinking end of an epoch
            # (1.58x at batch 512 on the 50k-event subset): the counted events instead.
            r["events_per_s"] = r["events"] / r["seconds"]
    return got


def best_run(runs: list[dict]) -> dict:
    """The run with the most events/s, plus every repeat's events/s. The best, not the
    median: on a shared 2-core host, repeats of one setting differ by up to 88% and only
    ever downwards (a neighbour steals time, never gives it), so the best run of each side
    is the least disturbed estimate of what the code can do."""
    out = dict(max(runs, key=lambda r: r["events_per_s"]))
    out["events_per_s_all"] = [r["events_per_s"] for r in runs]
    return out


def measure(args, tsv, harnesses, group: list[dict]) -> tuple[list, list]:
    """The settings of one group: every harness once per repeat, repeats interleaved (a
    noisy neighbour slows all alike); each harness in one process for the whole group
    (one setting, unless --shared-processes). Returns the rows and the failed settings:
    one whose run of ours failed (the official failing keeps ours, its error said)."""
    runs = [{name: [] for name in [*harnesses, "official"]} for _ in group]
    errors: list[dict] = [{} for _ in group]
    for _ in range(args.repeats):
        sides = [(name, run_ours(args, group, name)) for name in harnesses]
        if args.official:
            sides.append(("official", run_official(args, tsv, group)))
        for name, results in sides:
            for i, r in enumerate(results):
                if isinstance(r, dict):
                    runs[i][name].append(r)
                else:
                    errors[i].setdefault(name, r)
    rows, failed = [], []
    for st, rs, err in zip(group, runs, errors):
        key = {k: st[k] for k in SETTING}
        ours = [f"{k}: {v}" for k, v in err.items() if k != "official"]
        if ours:
            failed.append({**key, "error": "; ".join(ours)[-600:]})
        else:
            rows.append(row_of(args, key, rs, err.get("official")))
    return rows, failed


def row_of(args, key: dict, runs: dict, official_error: str | None) -> dict:
    """One setting's row from its runs (each side's best) and the ratios between them."""
    row = {**key, "repeats": args.repeats}
    if official_error:
        row["official_error"] = official_error[-600:]
    for name, rs in runs.items():
        if rs:
            row[name] = best_run(rs)
    # The reliable figure: time outside the core loop inside the Lightning epochs.
    if runs.get("lightning"):
        row["lightning_overhead"] = max(r["harness_overhead"] for r in runs["lightning"])
        row["lightning_vs_bare"] = row["lightning"]["events_per_s"] / row["bare"]["events_per_s"]
    if runs.get("autograd"):
        row["fused_vs_autograd"] = row["bare"]["events_per_s"] / row["autograd"]["events_per_s"]
    if runs.get("official"):
        off = row["official"]["events_per_s"]
        for name in runs:
            if name != "official" and runs[name]:
                row[f"{name}_vs_official"] = row[name]["events_per_s"] / off
        row["speedup_vs_official"] = row["bare"]["events_per_s"] / off
    if key["device"] == "cpu":
        row["gemm_floor_events_per_s"] = gemm_floor(key["batch_size"], key["layers"], args.n_sample)
    return row


def measure_grid(args, tsv, devices, partial) -> tuple[list, list, list]:
    """Every setting, batch sizes outermost, so that a --budget-s cut leaves every loss and
    layer size measured at the first batch sizes rather than one loss whole (gpu.sh puts
    the cheap large batches first); the rows come back in table order. With
    --shared-processes the settings of one device and batch size share their processes.
    A setting whose run of ours fails is listed with its error and the rest go on;
    `partial(rows, skipped, failed)` saves the report after every group, so a run killed
    at a device's time limit keeps what it measured."""
    settings = [
        {"device": d, "loss": loss, "batch_size": b, "layers": h}
        | (
            {"window_steps": -(-args.window_events // b), "window_warmup": WINDOW_WARMUP}
            if args.window_events
            else {}
        )
        for d in devices
        for b in args.batch_sizes
        for loss in args.losses
        for h in args.layer_sizes
    ]
    one_process = lambda st: (st["device"], st["batch_size"])  # --shared-processes
    groups = (
        [list(g) for _, g in itertools.groupby(settings, one_process)]
        if args.shared_processes
        else [[st] for st in settings]
    )
    rows, skipped, failed, start = [], [], [], time.perf_counter()
    for group in groups:
        if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
            skipped += [{k: st[k] for k in SETTING} for st in group]
            continue
        harnesses = args.harnesses or ["autograd", "bare", "lightning"]
        if group[0]["device"] == "cuda" and args.harnesses is None:
            harnesses = [*harnesses, "fused_no_graphs"]
        done, broke = measure(args, tsv, harnesses, group)
        for r in done:
            print(json.dumps(r), flush=True)
        for f in broke:
            print(f"failed: {f}", file=sys.stderr, flush=True)
        rows, failed = rows + done, failed + broke
        partial(rows, skipped, failed)
    return sorted(rows, key=table_order(devices, args.losses)), skipped, failed


def table_order(devices: list[str], losses: list[str]):
    """The rows' order in a report and its table: device and loss as the run lists them,
    then layer size and batch size."""
    return lambda r: (
        devices.index(r["device"]),
        losses.index(r["loss"]),
        r["layers"],
        r["batch_size"],
    )


def report_fields(args, n_items, tr, rows, skipped, failed) -> dict:
    """The report's fields, the same for the final report and the partial ones."""
    return dict(
        dataset="synthetic" if args.catalogue else args.dataset,
        catalogue=args.catalogue,  # the synthetic sweep's item count (None: a named dataset)
        n_items=n_items,
        events_requested=args.events,  # 0: the whole training split
        window_events=args.window_events or None,  # None: whole epochs
        window_warmup=WINDOW_WARMUP if args.window_events else None,
        shared_processes=args.shared_processes,
        train_events=tr.n_events,
        train_sessions=tr.n_sessions,
        losses=args.losses,
        n_sample=args.n_sample,
        machine=machine_info(),
        official=args.official is not None,
        pick="best",
        rows=rows,
        skipped=skipped,  # settings not started within --budget-s
        failed=failed,  # settings whose run of ours failed, with the error's tail
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_options(ap)
    ap.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="train on the first sessions covering this many events (0 = all)",
    )
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--layer-sizes", type=int, nargs="+", default=[100, 480])
    ap.add_argument("--losses", nargs="+", default=["ce", "bpr-max"])
    ap.add_argument("--loss", help=argparse.SUPPRESS)
    ap.add_argument("--n-sample", type=int, default=2048)
    ap.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats per setting (the best reported)"
    )
    ap.add_argument(
        "--devices", nargs="+", default=None, help="default: cpu, plus cuda when available"
    )
    ap.add_argument(
        "--official", default=None, help="checkout of GRU4Rec_PyTorch_Official to run side by side"
    )
    ap.add_argument("--official-python", default=sys.executable)
    ap.add_argument(
        "--harnesses",
        nargs="+",
        default=None,
        choices=list(HARNESSES),
        help="ours to run (default: autograd, bare, lightning; on a GPU also fused_no_graphs)",
    )
    ap.add_argument("--out", default=str(HERE / "results" / "throughput_subset.json"))
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no further setting after this many seconds (those left are listed as skipped)",
    )
    ap.add_argument(
        "--window-events",
        type=int,
        default=None,
        help="time only each epoch's first ceil(N / batch) minibatches, ours and the "
        "official alike (the steady state, every lane busy): what lets the whole GPU grid "
        "fit a lend; default: whole epochs",
    )
    ap.add_argument(
        "--shared-processes",
        action="store_true",
        help="the settings of one batch size share one process per harness (and one for the "
        "official) instead of a fresh process each: on a GPU, starting a process costs more "
        "than a windowed epoch; peak RSS is then not per setting and is left out",
    )
    ap.add_argument(
        "--catalogue",
        type=int,
        default=None,
        help="instead of a dataset: synthetic sessions of --events training events over "
        "exactly this many items (the catalogue sweep)",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="fold the result into --out's collection (one part per dataset or catalogue; "
        "a setting measured again replaces its row) instead of overwriting it",
    )
    ap.add_argument(
        "--join",
        nargs="+",
        type=Path,
        default=None,
        help="measure nothing: join reports of one grid measured in several calls into --out",
    )
    ap.add_argument(
        "--add",
        nargs="+",
        type=Path,
        default=None,
        help="measure nothing: fold these finished reports into --out's collection",
    )
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--device", help=argparse.SUPPRESS)
    ap.add_argument("--harness", help=argparse.SUPPRESS)
    ap.add_argument("--subset-file", help=argparse.SUPPRESS)
    ap.add_argument("--allocator", default="kept", help=argparse.SUPPRESS)  # allocator_modes.py
    args = ap.parse_args()
    if args.worker:  # reads the parent's subset file
        worker(args)
        return
    args.data_dir = data_dir(args)
    if args.add:
        fold_in(Path(args.out), args.add, args.data_dir)
        return
    if args.join:
        join(Path(args.out), args.join)
        return
    if args.catalogue and not args.events:
        ap.error("--catalogue needs --events (the training events of the synthetic sessions)")
    if args.window_events and "lightning" in (args.harnesses or ["lightning"]):
        ap.error("--window-events times the bare loop: pick --harnesses without lightning")
    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if args.catalogue:
        n_items, tr = catalogue_sessions(args.catalogue, args.events)
    else:
        n_items, tr = subset(args.dataset, args.data_dir, args.events)
    tmp = Path(tempfile.mkdtemp())
    args.subset_file = str(tmp / "subset.npz")
    save_subset(Path(args.subset_file), n_items, tr)
    tsv = tmp / "train.tsv"
    if args.official:
        write_gru4rec_tsv(tsv, tr)

    def partial(rows, skipped, failed):  # a collection (--merge) is only written whole
        if not args.merge:
            fields = report_fields(args, n_items, tr, rows, skipped, failed)
            write_report(args.out, "throughput", {**fields, "partial": True})

    rows, skipped, failed = measure_grid(args, tsv, devices, partial)
    fields = report_fields(args, n_items, tr, rows, skipped, failed)
    if args.merge:
        write_report(tmp / "run.json", "throughput", fields)
        fold_in(Path(args.out), [tmp / "run.json"])
    else:
        write_report(args.out, "throughput", fields)


def setting(row: dict) -> tuple:
    return tuple(row[k] for k in SETTING)


def join(out: Path, reports: list[Path]) -> None:
    """One grid measured in several calls (a lent device's budget cut the first short):
    every call's rows, each kept as measured with its call's date (a setting measured in
    two calls: the later one's); skipped = the settings no call measured. The calls must
    share dataset, events, machine and versions."""
    found = [json.loads(p.read_text()) for p in reports]
    same = (
        "dataset",
        "events_requested",
        "window_events",
        "n_sample",
        "machine",
        "versions",
        "official",
    )
    for p, rep in zip(reports[1:], found[1:]):
        if any(rep.get(k) != found[0].get(k) for k in same):
            raise SystemExit(f"error: --join: {p} differs from {reports[0]} in one of {same}")
    latest = {setting(r): {**r, "date": rep["date"]} for rep in found for r in rep["rows"]}
    rows, done = list(latest.values()), list(latest)  # measured again: the later call's row
    skipped = []
    for s in (s for rep in found for s in rep["skipped"]):
        if setting(s) not in done and s not in skipped:
            skipped.append(s)
    devices = list(dict.fromkeys(r["device"] for r in rows))
    rows.sort(key=table_order(devices, found[0]["losses"]))
    joined = {**found[0], "rows": rows, "skipped": skipped}
    joined["failed"] = [f for rep in found for f in rep.get("failed", [])]
    joined["calls"] = [{"date": rep["date"], "rows": len(rep["rows"])} for rep in found]
    out.write_text(json.dumps(joined, indent=2) + "\n")
    print(f"joined {len(reports)} report(s) into {out}")


def fold_in(out: Path, reports: list[Path], data_dir: str | None = None) -> None:
    """Fold finished reports into the collection; a report of a whole named split written
    before reports held the catalogue size gets it from the dataset."""
    for path in reports:
        found = json.loads(path.read_text())
        for report in found.get("parts", [found]):  # a report, or another collection
            if "n_items" not in report and report.get("events_requested") == 0:
                report["n_items"] = subset(report["dataset"], data_dir, 0)[0]
            coll = merge(out, report)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(coll, indent=2) + "\n")
    print(f"merged {len(reports)} report(s) into {out}")


if __name__ == "__main__":
    main()
