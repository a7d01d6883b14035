"""Ours' training step with glibc's default allocator settings against freed memory kept
in the process (src/bench/allocator.py, what bench.run does for every job).

Issue #30's ce 512 x 480 runs of ours fell into two modes 15-20% apart. Each run here is a
fresh worker process of throughput.py timing a window of full-Diginetica steps; the modes
alternate run by run, and each run's CPU seconds and page faults are read from the kernel's
accounting of the finished child (getrusage), so a slow run can be told apart as one that
spends its extra time faulting pages in.

  python benchmarks/allocator_modes.py --runs 5      # with the machine otherwise idle
"""

from __future__ import annotations

import resource
import statistics
from pathlib import Path
from types import SimpleNamespace

from common import data_dir, machine_info, write_report
from throughput import (
    full_split_file,
    ours_command,
    run_settings,
    setting_fields,
    setting_parser,
    window_setting,
)

HERE = Path(__file__).resolve().parent
MODES = ("glibc", "kept")
USAGE = ("ru_utime", "ru_stime", "ru_minflt")


def one_run(args, subset_file: str, mode: str) -> dict:
    common = SimpleNamespace(subset_file=subset_file, n_sample=args.n_sample)
    cmd, env = ours_command(common, [window_setting(args, args.steps)], "bare", allocator=mode)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_settings(cmd, 1, env)[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if isinstance(r, str):
        raise SystemExit(f"error: the {mode} run failed: {r}")
    usage = {k.removeprefix("ru_"): getattr(after, k) - getattr(before, k) for k in USAGE}
    return {
        "mode": mode,
        "events_per_s": r["events_per_s"],
        "ms_per_step": 1000 * r["seconds"] / r["steps"],
        **usage,  # the whole process's, loading included
    }


def summary(runs: list[dict]) -> dict:
    out = {}
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]
        out[mode] = {
            "events_per_s_range": [
                min(r["events_per_s"] for r in rs),
                max(r["events_per_s"] for r in rs),
            ],
            "minflt_range": [min(r["minflt"] for r in rs), max(r["minflt"] for r in rs)],
            "stime_median": statistics.median(r["stime"] for r in rs),
        }
    return out


def main() -> None:
    ap = setting_parser(__doc__)
    ap.add_argument("--steps", type=int, default=600, help="timed steps per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per mode, alternating")
    ap.add_argument("--out", default=str(HERE / "results" / "allocator_modes.json"))
    args = ap.parse_args()
    subset_file, _ = full_split_file(args.dataset, data_dir(args))
    runs = []
    for i in range(args.runs):
        for mode in MODES if i % 2 == 0 else MODES[::-1]:
            runs.append(one_run(args, subset_file, mode))
            r = runs[-1]
            print(
                f"{mode:5s} {r['events_per_s']:8,.0f} e/s  {r['ms_per_step']:5.2f} ms/step  "
                f"system {r['stime']:4.1f} s  faults {r['minflt']:,}",
                flush=True,
            )
    write_report(
        args.out,
        "allocator_modes",
        {
            "setting": {**setting_fields(args), "steps": args.steps},
            "runs": runs,
            "summary": summary(runs),
            "machine": machine_info(),
        },
    )


if __name__ == "__main__":
    main()
