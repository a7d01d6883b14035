"""Training throughput of GRU4Rec: ours (the unoptimised autograd step, the fused step
in the bare core loop and in the Lightning harness; on a GPU also the fused step without
CUDA graphs) and, side by side when given, the official GRU4Rec_PyTorch_Official.

Each setting runs one epoch in a fresh subprocess (so peak memory is per setting) over
the training split of the chosen dataset (`--events 0`), its first sessions covering
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
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
# The official's epoch line: "Epoch1 --> loss: 5.36 \t(5.22s) \t[23.37 mb/s | 11963 e/s]".
# Its e/s counts every minibatch as a full batch (fit() sets n_valid = batch_size and never
# updates it), so the shrinking end of the epoch is overcounted: 1.58x at batch 512 on the
# 50k-event subset. Events/s here is the true number of training events over its seconds.
EPOCH_LINE = re.compile(r"\(([\d.]+)s\)\s*\[([\d.]+) mb/s \| (\d+) e/s\]")
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
    report's rows, each replacing a row of the same setting; every row keeps its date, so
    settings measured on different days stay told apart (ratios are paired within a row)."""
    setting = lambda r: (r["device"], r["loss"], r["batch_size"], r["layers"])
    as_part = lambda rep: (
        {k: v for k, v in rep.items() if k not in ("benchmark", "parts")}
        | {"rows": [{"date": rep["date"], **r} for r in rep["rows"]]}
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


def worker(args) -> None:
    """One setting, one harness, one epoch; prints a JSON line."""
    import torch

    from bench.core.config import GRU4RecConfig
    from bench.core.train import SessionParallelTrainer, fit

    n_items, tr = load_subset(args.subset_file)
    cfg = GRU4RecConfig(
        layers=[args.layers],
        loss=args.loss,
        batch_size=args.batch_size,
        n_sample=args.n_sample,
        sample_alpha=0.5,
        logq=1.0 if args.loss == "ce" else None,
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
    if loop == "bare":
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
    if loop == "lightning":
        out["checkpoint_s"] = checkpoint_s
    if args.device == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out))


def run_ours(args, device, loss, batch, layers, harness) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--subset-file",
        args.subset_file,
        "--loss",
        loss,
        "--n-sample",
        str(args.n_sample),
        "--batch-size",
        str(batch),
        "--layers",
        str(layers),
        "--device",
        device,
        "--harness",
        harness,
    ]
    env = os.environ | ({} if HARNESSES[harness][3] else {"BENCH_NATIVE": "0"})
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        raise RuntimeError(f"worker failed ({harness}, {batch}, {layers}): {p.stderr[-800:]}")
    return {**json.loads(line[0][7:]), "process_s": wall}


def run_official(args, tsv: Path, events: int, device, loss, batch, layers) -> dict:
    """One epoch of the official code; `events` is the number of training events (every
    event but a session's first), the same count as ours."""
    ps = (
        f"loss={'cross-entropy' if loss == 'ce' else loss},layers={layers},batch_size={batch},"
        f"n_sample={args.n_sample},sample_alpha=0.5,logq={1 if loss == 'ce' else 0},"
        "n_epochs=1,learning_rate=0.05"
    )
    code = (
        "import resource,runpy,sys;sys.argv=sys.argv[1:];"
        "sys.path.insert(0, sys.argv[0].rsplit('/',1)[0]);"
        "runpy.run_path(sys.argv[0], run_name='__main__');"
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss);"
        "import torch;"
        "torch.cuda.is_available() and "
        "print('PEAK_CUDA_MB', torch.cuda.max_memory_allocated() / 2**20)"
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
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = EPOCH_LINE.search(p.stdout)
    peak = re.search(r"PEAK_RSS_KB (\d+)", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(
            f"official run failed ({batch}, {layers}): {p.stdout[-500:]} {p.stderr[-800:]}"
        )
    seconds, mb_per_s = float(m.group(1)), float(m.group(2))
    cuda = re.search(r"PEAK_CUDA_MB ([\d.]+)", p.stdout)
    return {
        **({"peak_cuda_mb": float(cuda.group(1))} if cuda else {}),
        "seconds": seconds,
        "minibatches_per_s": mb_per_s,
        "steps": round(mb_per_s * seconds),
        "events": events,
        "events_per_s": events / seconds,
        "events_per_s_printed": float(m.group(3)),
        "peak_rss_mb": int(peak.group(1)) / 1024,
        # End to end: the whole process (imports, data, model, the epoch, its evaluation-free
        # exit), the same span as ours; it reads the data from a TSV, ours from parquet.
        "process_s": wall,
    }


def best_run(runs: list[dict]) -> dict:
    """The run with the most events/s, plus every repeat's events/s. The best, not the
    median: on a shared 2-core host, repeats of one setting differ by up to 88% and only
    ever downwards (a neighbour steals time, never gives it), so the best run of each side
    is the least disturbed estimate of what the code can do."""
    out = dict(max(runs, key=lambda r: r["events_per_s"]))
    out["events_per_s_all"] = [r["events_per_s"] for r in runs]
    return out


def measure(args, tsv, events, device, harnesses, loss, batch, layers) -> dict:
    """One setting: interleaved repeats of every harness (a noisy neighbour slows all alike)."""
    row = {"device": device, "loss": loss, "batch_size": batch, "layers": layers}
    row["repeats"] = args.repeats
    runs = {name: [] for name in [*harnesses, "official"]}
    for _ in range(args.repeats):
        for name in harnesses:
            runs[name].append(run_ours(args, device, loss, batch, layers, name))
        if args.official:
            try:  # ours is still worth keeping when the official cannot run this setting
                runs["official"].append(
                    run_official(args, tsv, events, device, loss, batch, layers)
                )
            except RuntimeError as e:
                row["official_error"] = str(e)[-600:]
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
    if device == "cpu":
        row["gemm_floor_events_per_s"] = gemm_floor(batch, layers, args.n_sample)
    return row


def measure_grid(args, tsv, events, devices, partial) -> tuple[list, list, list]:
    """Every setting, batch sizes outermost, so that a --budget-s cut leaves every loss and
    layer size measured at the first batch sizes rather than one loss whole (gpu.sh puts
    the cheap large batches first); the rows come back in table order. A setting whose run
    of ours fails is listed with its error and the rest go on; `partial(rows, skipped,
    failed)` saves the report after every setting, so a run killed at a device's time limit
    keeps what it measured."""
    settings = [
        {"device": d, "loss": loss, "batch_size": b, "layers": h}
        for d in devices
        for b in args.batch_sizes
        for loss in args.losses
        for h in args.layer_sizes
    ]
    rows, skipped, failed, start = [], [], [], time.perf_counter()
    for st in settings:
        if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
            skipped.append(st)
            continue
        harnesses = args.harnesses or ["autograd", "bare", "lightning"]
        if st["device"] == "cuda" and args.harnesses is None:
            harnesses = [*harnesses, "fused_no_graphs"]
        try:
            loss, batch, layers = st["loss"], st["batch_size"], st["layers"]
            rows.append(measure(args, tsv, events, st["device"], harnesses, loss, batch, layers))
            print(json.dumps(rows[-1]), flush=True)
        except RuntimeError as e:
            failed.append({**st, "error": str(e)[-600:]})
            print(f"failed: {st}: {e}", file=sys.stderr, flush=True)
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
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--device", help=argparse.SUPPRESS)
    ap.add_argument("--harness", help=argparse.SUPPRESS)
    ap.add_argument("--subset-file", help=argparse.SUPPRESS)
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
    events = int(np.clip(tr.lengths - 1, 0, None).sum())
    if args.official:
        write_gru4rec_tsv(tsv, tr)

    def partial(rows, skipped, failed):  # a collection (--merge) is only written whole
        if not args.merge:
            fields = report_fields(args, n_items, tr, rows, skipped, failed)
            write_report(args.out, "throughput", {**fields, "partial": True})

    rows, skipped, failed = measure_grid(args, tsv, events, devices, partial)
    fields = report_fields(args, n_items, tr, rows, skipped, failed)
    if args.merge:
        write_report(tmp / "run.json", "throughput", fields)
        fold_in(Path(args.out), [tmp / "run.json"])
    else:
        write_report(args.out, "throughput", fields)


def setting(row: dict) -> tuple:
    return tuple(row[k] for k in ("device", "loss", "batch_size", "layers"))


def join(out: Path, reports: list[Path]) -> None:
    """One grid measured in several calls (a lent device's budget cut the first short):
    every call's rows, each kept as measured with its call's date (a setting measured in
    two calls: the later one's); skipped = the settings no call measured. The calls must
    share dataset, events, machine and versions."""
    found = [json.loads(p.read_text()) for p in reports]
    same = ("dataset", "events_requested", "n_sample", "machine", "versions", "official")
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
