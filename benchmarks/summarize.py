"""Markdown tables from the benchmark JSON files (so that no figure is typed by hand).

python benchmarks/summarize.py benchmarks/results/throughput.json benchmarks/results/eval_speed.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def throughput_table(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        f"Throughput, {rep['dataset']} (first {rep['train_sessions']:,} training sessions, "
        f"{rep['train_events']:,} events), loss {rep['loss']}, n_sample {rep['n_sample']}; "
        f"{m['processor']}, {m['cpu_count']} cores, torch {rep['versions']['torch']} "
        f"({m['torch_threads']} threads){', GPU ' + m['gpu'] if m.get('gpu') else ''}; {rep['date']}. "
        "Events/s is the median of interleaved repeats (all repeats in the JSON).",
        "",
        "| device | batch | layers | ours bare (e/s) | ours Lightning (e/s) | official (e/s) "
        "| bare / official | Lightning overhead (in-run, worst repeat) | peak RSS ours / official (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["rows"]:
        off = r.get("official")
        lines.append(
            f"| {r['device']} | {r['batch_size']} | {r['layers']} | {r['bare']['events_per_s']:,.0f} "
            f"| {r['lightning']['events_per_s']:,.0f} | {off['events_per_s']:,.0f} "
            f"| {r['speedup_vs_official']:.2f}x | {100 * r['lightning_overhead']:.1f}% "
            f"| {r['bare']['peak_rss_mb']:.0f} / {off['peak_rss_mb']:.0f} |"
            if off
            else f"| {r['device']} | {r['batch_size']} | {r['layers']} | {r['bare']['events_per_s']:,.0f} "
            f"| {r['lightning']['events_per_s']:,.0f} | - | - | {100 * r['lightning_overhead']:.1f}% "
            f"| {r['bare']['peak_rss_mb']:.0f} / - |"
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
        ]
    )


def main() -> None:
    for path in sys.argv[1:]:
        rep = json.loads(Path(path).read_text())
        print(throughput_table(rep) if rep["benchmark"] == "throughput" else eval_table(rep))
        print()


if __name__ == "__main__":
    main()
