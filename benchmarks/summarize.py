"""Markdown tables from the benchmark JSON files (so that no figure is typed by hand).

python benchmarks/summarize.py benchmarks/results/throughput_subset.json \
    benchmarks/results/accuracy.json benchmarks/results/eval_speed.json \
    --readme benchmarks/README.md --block figures
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.records import replace_block
from common import host


def _eps(run: dict | None) -> str:
    return f"{run['events_per_s']:,.0f}" if run else "-"


# Our runs as throughput.py names them -> column header; a table shows those present.
OURS = {
    "autograd": "ours autograd",
    "fused_pytorch": "ours fused, PyTorch forms",
    "bare": "ours (default)",
    "lightning": "ours Lightning",
    "fused_no_graphs": "ours without CUDA graphs",
}


def overcount(rep: dict) -> str:
    """How far the official's printed e/s exceeds its true events/s, by batch size."""
    by_batch = {}
    for r in rep["rows"]:
        off = r.get("official", {})
        if "events_per_s_printed" in off:
            by_batch[r["batch_size"]] = off["events_per_s_printed"] / off["events_per_s"]
    return ", ".join(f"{v:.2f}x too high at batch {b}" for b, v in sorted(by_batch.items()))


def span(rep: dict) -> str:
    """What one run timed: a whole epoch, or a window of it (throughput.py --window-events)."""
    window = rep.get("window_events")
    if not window:
        return "one epoch"
    shared = "; a batch size's settings share a process per side" if rep["shared_processes"] else ""
    return (
        f"a window of each epoch ({window:,} training events' worth of minibatches after "
        f"{rep['window_warmup']} warm-up ones, the same on both sides{shared})"
    )


def cpu_caption(rep: dict, repeats: int) -> str:
    return (
        (
            f"Events/s of {span(rep)}, the best of {repeats} interleaved repeats"
            if repeats == 2 or rep.get("pick") == "best"
            else f"Events/s of {span(rep)}, the median of interleaved repeats"
        )
        + " (all repeats in the JSON); (x%) = share of the GEMM floor, the events/s of the "
        "step's matrix products alone (each timed as torch computes it and as the compiled "
        "step splits it over numpy's OpenBLAS, the faster counted). Paired ratio = the "
        "median over repeats of ours / official within a repeat (the two ran back to back). "
        "ours (default) = the fused step with the compiled kernels (src/bench/core/native.py); "
        "PyTorch forms = the same step without them; setup = building our trainer (schedule, "
        "sampler, kernel load), paid once per run "
        "on top of the epoch (no path compiles at run time)."
    )


def gpu_caption(rep: dict) -> str:
    """A lent device's minutes allow one run per setting, sometimes over several calls."""
    calls = rep.get("calls", [])
    return (
        f"Events/s of {span(rep)} on the device, one run per setting (a lent device's minutes "
        "allow no repeats), ours and the official back to back"
        + (
            f", in {len(calls)} calls on one machine ("
            + ", ".join(f"{c['rows']} settings done by {c['date'][11:16]}" for c in calls)
            + " UTC)"
            if len(calls) > 1
            else ""
        )
        + ". ours (default) = the fused step replayed from CUDA graphs; without CUDA graphs = "
        "the same step launched eagerly; setup = building our trainer; peak GPU memory = "
        "torch's largest allocation in the process (the official's after its epoch)."
    )


def throughput_table(rep: dict) -> str:
    """Official and ours side by side; each figure's share of the GEMM floor."""
    m = rep["machine"]
    ours = [k for k in OURS if k in rep["rows"][0]]
    official = rep.get("official", False)
    repeats = rep["rows"][0]["repeats"] if rep["rows"] else 0
    gpu = any("peak_cuda_mb" in r["bare"] for r in rep["rows"])
    scope = "all" if rep.get("events_requested") == 0 else "first"
    quick = (
        "Quick mode, not the published figure (a subset's small catalogue hides the cost of "
        "real catalogues; the full splits are in throughput.json). "
    )
    lines = [
        (quick if scope == "first" else "")
        + f"Throughput, {rep['dataset']} ({scope} {rep['train_sessions']:,} training sessions, "
        f"{rep['train_events']:,} events), n_sample {rep['n_sample']}; "
        f"{host(m)}, {m['cpu_count']} cores, torch {rep['versions']['torch']} "
        f"({m['torch_threads']} threads){', GPU ' + m['gpu'] if m.get('gpu') else ''}; "
        f"{rep['date']}. "
        + (gpu_caption(rep) if gpu else cpu_caption(rep, repeats))
        + (
            " Official events/s = the training events over its printed epoch seconds: its own "
            "e/s figure counts every minibatch as a full batch, the shrinking ones at the end "
            f"of the epoch too ({overcount(rep)} {'here' if scope == 'all' else 'on this subset'})."
            if official
            else ""
        ),
        "",
        "| device | loss | batch | layers | "
        + ("official (e/s) | " if official else "")
        + " | ".join(f"{OURS[k]} (e/s)" for k in ours)
        + (" | ours / official | paired ratio (median)" if official else "")
        + " | GEMM floor (e/s) | setup (s) | peak RSS ours"
        + (" / official (MB) |" if official else " (MB) |")
        + (" peak GPU memory ours / official (MB) |" if gpu else ""),
        "|---|---|---|---|" + "---|" * (len(ours) + 3 + 3 * official + gpu),
    ]

    def cell(run: dict | None, floor: float | None) -> str:
        if not run:
            return "-"
        share = f" ({100 * run['events_per_s'] / floor:.0f}%)" if floor else ""
        return f"{run['events_per_s']:,.0f}{share}"

    for r in rep["rows"]:
        floor = r.get("gemm_floor_events_per_s")
        off = r.get("official")
        cells = [cell(off, floor)] if official else []
        cells += [cell(r.get(k), floor) for k in ours]
        if official:
            ratio = r.get("speedup_vs_official")
            cells.append(f"{ratio:.2f}x" if ratio else "-")
            cells.append(paired_ratio(r) if off else "-")
        cells.append(f"{floor:,.0f}" if floor else "-")
        setup = r["bare"].get("setup_s")
        cells.append(f"{setup:.2f}" if setup is not None else "-")
        # None: the run shared its process with other settings (no peak of its own)
        mb = lambda v: f"{v:.0f}" if v is not None else "-"
        cells.append(" / ".join(mb(run["peak_rss_mb"]) for run in (r["bare"], off) if run))
        if gpu:
            mine = r["bare"].get("peak_cuda_mb")
            theirs = (off or {}).get("peak_cuda_mb")
            cells.append(" / ".join(f"{v:,.0f}" if v is not None else "-" for v in (mine, theirs)))
        lines.append(
            f"| {r['device']} | {r['loss']} | {r['batch_size']} | {r['layers']} | "
            + " | ".join(cells)
            + " |"
        )

    def what(k: dict) -> str:
        return f"{k['loss']} {k['batch_size']}x{k['layers']}"

    if rep.get("skipped"):
        left = ", ".join(what(k) for k in rep["skipped"])
        lines.append(f"\nNot run within the time budget: {left}.")
    for k in rep.get("failed", []):
        lines.append(f"\nFailed, ours: {what(k)}: {k['error']}")
    for r in rep["rows"]:
        if "official_error" in r:
            lines.append(f"\nFailed, the official: {what(r)}: {r['official_error']}")
    return "\n".join(lines)


def collection_table(coll: dict) -> str:
    """The collection throughput.json (full training splits and the catalogue sweep): one
    table per kind, each row with the day it was measured; ratios are within a row."""
    data = [p for p in coll["parts"] if p.get("catalogue") is None]
    sweep = sorted((p for p in coll["parts"] if p.get("catalogue")), key=lambda p: p["catalogue"])
    m = coll["parts"][0]["machine"]
    lines = [
        f"One training epoch on {m['processor']}, {m['cpu_count']} cores, torch "
        f"{coll['parts'][0]['versions']['torch']} ({m['torch_threads']} threads), "
        f"n_sample {coll['parts'][0]['n_sample']}, nothing else running; the official "
        "GRU4Rec_PyTorch_Official beside ours, repeats interleaved. Events/s: the best "
        "repeat of each side (x% = share of the GEMM floor, the events/s of the step's "
        "matrix products alone); paired = the median over repeats of ours / official run "
        "back to back. Official events/s = training events over its printed epoch seconds. "
        "A row naming a CPU under 'measured' ran on that CPU (rows before 2026-12-04 23:00 "
        "UTC did not record it; the sessions' notes name AMD EPYC hosts).",
        "",
    ]
    if data:
        lines[0] += (
            " Data: "
            + "; ".join(
                f"{p['dataset']}, the whole training split: "
                f"{p['train_events'] - p['train_sessions']:,} training events"
                + (f" over {p['n_items']:,} items" if p.get("n_items") else "")
                for p in data
            )
            + " (a session's first click is no training event)."
        )
        lines += [
            "| data | loss | batch | layers | official (e/s) | ours (e/s) | ours / official "
            "| paired | repeats | peak RSS ours / official (MB) | measured |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for part in data:
            for r in sorted(part["rows"], key=setting_order):
                lines.append(_row(part["dataset"], r, r.get("gemm_floor_events_per_s")))
    if sweep:
        base = {(r["loss"], r["batch_size"], r["layers"]): r for r in sweep[0]["rows"]}
        lines += [
            "",
            "Catalogue sweep: the same number of synthetic training events over catalogues "
            "of growing size (`--catalogue`; every item occurs, so both implementations "
            f"hold that many rows). vs {sweep[0]['catalogue']:,} = events/s against the "
            "smallest catalogue's, same implementation.",
            "",
            "| catalogue (items) | events | loss | batch | layers | official (e/s) "
            f"| ours (e/s) | ours / official | paired | official vs {sweep[0]['catalogue']:,} "
            f"| ours vs {sweep[0]['catalogue']:,} | measured |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for part in sweep:
            for r in sorted(part["rows"], key=setting_order):
                b = base.get((r["loss"], r["batch_size"], r["layers"]))
                rel = [
                    f"{r[k]['events_per_s'] / b[k]['events_per_s']:.2f}" if b else "-"
                    for k in ("official", "bare")
                ]
                events = part["train_events"] - part["train_sessions"]
                lines.append(
                    f"| {part['catalogue']:,} | {events:,} | {r['loss']} | "
                    f"{r['batch_size']} | {r['layers']} | {_eps(r['official'])} | "
                    f"{_eps(r['bare'])} | {r['speedup_vs_official']:.2f}x | {paired_ratio(r)} "
                    f"| {rel[0]} | {rel[1]} | {measured(r)} |"
                )
    return "\n".join(lines)


def setting_order(r: dict) -> tuple:
    """Rows by device, layer size, loss (cross-entropy first), batch size."""
    return (r["device"], r["layers"], r["loss"] != "ce", r["loss"], r["batch_size"])


def _row(name: str, r: dict, floor: float | None) -> str:
    share = lambda run: f" ({100 * run['events_per_s'] / floor:.0f}%)" if floor else ""
    off, ours = r["official"], r["bare"]
    return (
        f"| {name} | {r['loss']} | {r['batch_size']} | {r['layers']} | "
        f"{_eps(off)}{share(off)} | {_eps(ours)}{share(ours)} | "
        f"{r['speedup_vs_official']:.2f}x | {paired_ratio(r)} | {r['repeats']} | "
        f"{ours['peak_rss_mb']:.0f} / {off['peak_rss_mb']:.0f} | {measured(r)} |"
    )


def measured(row: dict) -> str:
    """A row's day, and its CPU model where the report recorded it."""
    return row["date"][:10] + (f", {row['host']}" if row.get("host") else "")


def paired_ratio(row: dict) -> str:
    """The median over repeats of ours / official within each repeat's pair (the two ran
    back to back, so in the same state of the machine), beside the best-against-best
    ratio: less moved by one side catching a fast spell the other missed."""
    ours, off = row["bare"].get("events_per_s_all"), row["official"].get("events_per_s_all")
    if not ours or not off or len(ours) != len(off):
        return "-"
    return f"{statistics.median(a / b for a, b in zip(ours, off)):.2f}x"


def harness_table(rep: dict) -> str:
    """Lightning against the bare core loop alone (a throughput run with --harnesses bare
    lightning): the in-run overhead and the per-epoch checkpoint's cost."""
    m = rep["machine"]
    lines = [
        f"Lightning harness against the bare core loop, {rep['dataset']} (first "
        f"{rep['train_sessions']:,} training sessions, {rep['train_events']:,} events), "
        f"n_sample {rep['n_sample']}; {host(m)}, {m['cpu_count']} cores, torch "
        f"{rep['versions']['torch']} ({m['torch_threads']} threads); {rep['date']}. One epoch "
        f"per run, interleaved repeats ({rep.get('pick', 'median')}; all in the JSON). In-run "
        "overhead = share of "
        "the Lightning epoch spent outside the core loop; the checkpoint (written after the "
        "epoch's timing, as a single run does every epoch) is timed apart.",
        "",
        "| device | loss | batch | layers | bare (e/s) | Lightning (e/s) | Lightning / bare "
        "| overhead (in-run) | checkpoint (s) | checkpoint / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["rows"]:
        lit = r["lightning"]
        lines.append(
            f"| {r['device']} | {r['loss']} | {r['batch_size']} | {r['layers']} "
            f"| {_eps(r['bare'])} | {_eps(lit)} | {r['lightning_vs_bare']:.3f} "
            f"| {100 * r['lightning_overhead']:.2f}% | {lit['checkpoint_s']:.3f} "
            f"| {100 * lit['checkpoint_s'] / lit['seconds']:.1f}% |"
        )
    return "\n".join(lines)


PHASES = ("sampling", "forward", "loss", "backward", "optimizer", "bookkeeping")


def step_profile_table(rep: dict) -> str:
    """ms per step by phase (step_profile.py), the GEMM floor, and the heaviest operators."""
    m = rep["machine"]
    scope = (
        f"synthetic sessions over {rep['catalogue']:,} items ({rep['events']:,} events)"
        if rep.get("catalogue")
        else f"{rep['dataset']} (first {rep['events']:,} events)"
        if rep["events"]
        else f"{rep['dataset']} (the whole training split)"
    )
    lines = [
        f"Step profile ({rep['label']}), fused step, {scope}, n_sample {rep['n_sample']}; "
        f"{host(m)}, {m['cpu_count']} cores, torch "
        f"{rep['versions']['torch']} ({m['torch_threads']} threads); {rep['date']}. Milliseconds "
        "per step by phase (timers around the engine's own parts; bookkeeping is the rest of "
        "the step); GEMM floor = the step's matrix products alone; ops = operators per step.",
        "",
        "| loss | batch | layers | step (ms) | sampling | forward | loss | backward | optimizer "
        "| bookkeeping | GEMM floor (ms) | floor / step | ops | heaviest operators (ms per step) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["rows"]:
        ph = r["phases_ms"]
        top = ", ".join(
            f"{o['op'].removeprefix('aten::')} {o['ms_per_step']:.2f}" for o in r["top_ops"][:4]
        )
        lines.append(
            f"| {r['loss']} | {r['batch_size']} | {r['layers']} | {r['ms_per_step']:.2f} | "
            + " | ".join(f"{ph[k]:.2f}" for k in PHASES)
            + f" | {r['gemm_floor_ms']:.2f} | {100 * r['share_of_floor']:.0f}% "
            f"| {r['ops_per_step']:.0f} | {top} |"
        )
    return "\n".join(lines)


def accuracy_table(rep: dict) -> str:
    lines = [
        f"Accuracy of each optimisation, {rep['dataset']} test set, official Diginetica "
        f"parameters per loss, {rep['n_epochs']} epoch(s), torch {rep['versions']['torch']}, "
        "each row on the date it gives. Metrics are the mean over the row's seeds. Pass: "
        f"both within {100 * rep['tolerance']:.0f}% relative of the unoptimised path's. "
        "Spread: max - min over the seeds, relative to the mean (the noise a single run "
        "carries).",
        "",
        "| loss | path | device | date | seeds | Recall@20 | MRR@20 | rel. diff R@20 "
        "| rel. diff MRR@20 | spread R@20 | spread MRR@20 | train (s) | within 1% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["rows"]:
        seeds = ", ".join(map(str, r.get("seeds", [rep.get("seed")])))
        d, spread = r["relative_diff"], r.get("spread")
        spreads = (
            f"{100 * spread['recall@20']:.2f}% | {100 * spread['mrr@20']:.2f}%"
            if spread
            else "– | –"
        )
        lines.append(
            f"| {r['loss']} | {r['variant']} | {r['device']} "
            f"| {r.get('date', rep['date'][:10])} | {seeds} "
            f"| {r['metrics']['recall@20']:.4f} "
            f"| {r['metrics']['mrr@20']:.4f} | {100 * d['recall@20']:+.2f}% "
            f"| {100 * d['mrr@20']:+.2f}% | {spreads} | {r['train_s']:.0f} "
            f"| {'yes' if r['within_tolerance'] else 'NO'} |"
        )
    return "\n".join(lines)


def eval_table(rep: dict) -> str:
    off = rep.get("official_median_s")
    return "\n".join(
        [
            f"Evaluation, {rep['dataset']}: {rep['events']:,} events ranked against all "
            f"{rep['n_items']:,} items, layers {rep['layers']}, {rep['tie_mode']} ties, "
            f"{rep['device']}, torch {rep['versions']['torch']}; {rep['date']}.",
            "",
            "| ours (s, median) | official batch_eval (s, median) | speed-up |",
            "|---|---|---|",
            f"| {rep['ours_median_s']:.2f} | {off:.2f} | {rep['speedup_vs_official']:.2f}x |"
            if off
            else f"| {rep['ours_median_s']:.2f} | - | - |",
            *(
                [f"\nFailed, the official: {rep['official_error']}"]
                if "official_error" in rep
                else []
            ),
        ]
    )


def worker_layout_table(rep: dict) -> str:
    lines = [
        f"Worker layouts, {rep['dataset']}: one epoch over {rep['events']:,} events per "
        f"worker, whole item table, {rep['machine']['cpu_count']} cores, torch "
        f"{rep['versions']['torch']}; {rep['date']}.",
        "",
        "| paramfile | 1 worker x 1 thread | 1 worker x 2 threads | 2 workers x 1 thread "
        "| 2 workers / 2 threads (best, median) |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(by: dict, key: tuple) -> str:
        x = by[key]
        return f"{x['best_events_per_s']:,.0f} ({x['median_events_per_s']:,.0f})"

    for row in rep["rows"]:
        by = {(x["processes"], x["threads"]): x for x in row["layouts"]}

        lines.append(
            f"| {row['paramfile']} | {cell(by, (1, 1))} | {cell(by, (1, 2))} | {cell(by, (2, 1))} "
            f"| {row['two_workers_over_two_threads_best']:.2f}x, "
            f"{row['two_workers_over_two_threads_median']:.2f}x |"
        )
    lines.append(
        "\nCells: events/s of all the layout's workers together, best (median) of the repeats."
    )
    return "\n".join(lines)


def tie_modes_table(rep: dict) -> str:
    lines = [
        f"Tie modes, {rep['dataset']}: conservative and standard ties over {rep['events']:,} "
        f"validation events, {rep['threads']} thread, torch {rep['versions']['torch']}; "
        f"{rep['date']}.",
        "",
        "| method | conservative only (s) | both, one pass (s) | both, two passes (s) "
        "| standard ties cost | one pass vs two | MRR@20 conservative / standard |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["rows"]:
        lines.append(
            f"| {r['method']} | {r['one_mode_median_s']:.1f} | {r['one_pass_median_s']:.1f} "
            f"| {r['two_passes_median_s']:.1f} | +{r['standard_ties_cost']:.0%} "
            f"| {r['speedup_vs_two_passes']:.2f}x | {r['mrr@20']['conservative']:.4f} / "
            f"{r['mrr@20']['standard']:.4f} |"
        )
    lines.append("\nSeconds: median of the repeats, each on a freshly built model.")
    return "\n".join(lines)


def tie_counting_table(rep: dict) -> str:
    return (
        f"Tie counting, one {rep['rows']} x {rep['items']:,} block, {rep['threads']} thread, "
        f"torch {rep['versions']['torch']}; {rep['date']}: bool masks "
        f"{rep['bool_masks_median_ms']:.1f} ms, float masks {rep['float_masks_median_ms']:.1f} ms "
        f"(median of {rep['repeats']} interleaved repeats), {rep['speedup']:.1f}x."
    )


def knn_state_csr_table(rep: dict) -> str:
    lines = [
        f"KNN state as CSR, {rep['dataset']}: one validation pass over {rep['events']:,} "
        f"events, configured parameters, {rep['threads']} thread, torch "
        f"{rep['versions']['torch']}; {rep['date']}.",
        "",
        "| method | scipy from a float64 copy (s) | positions_csr (s) | speed-up | MRR@20 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rep["rows"]:
        lines.append(
            f"| {r['method']} | {r['scipy_from_float64_median_s']:.1f} "
            f"| {r['positions_csr_median_s']:.1f} | {r['speedup']:.2f}x | {r['mrr@20']:.4f} |"
        )
    lines.append(f"\nSeconds: median of {rep['repeats']} interleaved repeats, same model.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+", type=Path, help="benchmark JSON files")
    ap.add_argument("--readme", type=Path, help="write the tables into this file's marked block")
    ap.add_argument("--block", default="figures", help="marker name: <!-- NAME:start/end -->")
    args = ap.parse_args()
    tables = {"throughput": throughput_table, "accuracy": accuracy_table, "eval": eval_table}
    out = []
    for path in args.files:
        rep = json.loads(path.read_text())
        kind = rep["benchmark"]
        if kind == "throughput" and "parts" in rep:
            kind = "throughput_collection"
        elif (
            kind == "throughput"
            and set(rep["rows"][0]) >= {"lightning", "lightning_overhead"}
            and not rep.get("official")
        ):
            kind = "harness"  # --harnesses bare lightning
        extra = {
            "harness": harness_table,
            "throughput_collection": collection_table,
            "step_profile": step_profile_table,
            "worker_layout": worker_layout_table,
            "tie_modes_speed": tie_modes_table,
            "tie_counting": tie_counting_table,
            "knn_state_csr": knn_state_csr_table,
        }
        out.append({**tables, **extra}.get(kind, eval_table)(rep))
    text = "\n\n".join(out)
    if args.readme:
        if not replace_block(args.readme, args.block, text + "\n"):
            start, end = f"<!-- {args.block}:start -->", f"<!-- {args.block}:end -->"
            raise SystemExit(f"error: --readme: {args.readme} has no {start} ... {end} markers")
    else:
        print(text)


if __name__ == "__main__":
    main()
