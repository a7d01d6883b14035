"""Ours against the official GRU4Rec in one setting, both alive at once and run in turns.

`host_drift.py` showed that this host's speed moves by 15-25% over minutes, so the
interleaved repeats of `throughput.py` (one side's epoch after the other's) can pair a
fast state with a slow one. Here both sides' processes start together and the controller
lets one run while the other is stopped (SIGSTOP / SIGCONT), swapping every `--slice-s`
seconds, so both meet the same host states, a few seconds apart. Each side times a window
of its epoch (the first WINDOW_WARMUP minibatches left out, then to the end of the epoch
unless `--window-events` cuts it) and reports the window's span on the monotonic clock;
its time is the part of that span in which the controller had it running.

  python benchmarks/sliced_pair.py --loss ce --batch-size 512 --layers 480 --pairs 3 \
      --official ~/src/GRU4Rec_PyTorch_Official --official-python ~/venvs/gru4rec/bin/python

Needs the machine otherwise idle (the study workers stopped): a third process would take
the turns' cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import data_dir, machine_info, write_gru4rec_tsv, write_report
from throughput import (
    WINDOW_WARMUP,
    full_split_file,
    official_command,
    ours_command,
    read_results,
    setting_fields,
    setting_parser,
    window_setting,
)

HERE = Path(__file__).resolve().parent
SIDES = ("ours", "official")


def running_seconds(turns: list[tuple[float, float]], window: tuple[float, float]) -> float:
    """The part of `window` covered by `turns` (disjoint spans in which the side ran)."""
    lo, hi = window
    return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in turns)


def parse_result(stdout: str, side: str) -> dict:
    """The side's one result; a FAILED line or none is the side's error."""
    (r,) = read_results(stdout, 1)
    if isinstance(r, dict):
        return r
    raise RuntimeError(f"{side}: {r or 'its process printed no result'}")


def take_turns(procs: dict[str, subprocess.Popen], first: str, slice_s: float) -> dict:
    """Run the processes one at a time, `slice_s` each, until all have exited; returns
    each side's running spans (perf_counter, the clock both sides stamp their windows on).
    A side left alone runs on without turns."""
    for p in procs.values():
        p.send_signal(signal.SIGSTOP)
    turns: dict[str, list[tuple[float, float]]] = {k: [] for k in procs}
    order = [first, *(k for k in procs if k != first)]
    i = 0
    while any(p.poll() is None for p in procs.values()):
        side = order[i % len(order)]
        i += 1
        p = procs[side]
        if p.poll() is not None:
            continue
        start = time.perf_counter()
        p.send_signal(signal.SIGCONT)
        try:
            p.wait(timeout=slice_s)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGSTOP)
        turns[side].append((start, time.perf_counter()))
    return turns


def one_pair(args, subset_file: str, tsv: Path, first: str) -> dict:
    # to the end of the epoch unless --window-events cuts it
    steps = -(-args.window_events // args.batch_size) if args.window_events else 10**9
    st = window_setting(args, steps)
    common = SimpleNamespace(
        subset_file=subset_file,
        n_sample=args.n_sample,
        official=args.official,
        official_python=args.official_python,
    )
    ours_cmd, env = ours_command(common, [st], "bare")
    cmds = {"ours": (ours_cmd, env), "official": (official_command(common, tsv, [st]), None)}
    with contextlib.ExitStack() as stack:
        logs = {k: stack.enter_context(tempfile.TemporaryFile("w+")) for k in SIDES}
        procs = {
            k: subprocess.Popen(cmd, stdout=logs[k], stderr=subprocess.STDOUT, text=True, env=e)
            for k, (cmd, e) in cmds.items()
        }
        try:
            turns = take_turns(procs, first, args.slice_s)
        finally:  # never leave a stopped process behind (Ctrl+C, an error)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        texts = {}
        for k in SIDES:
            logs[k].seek(0)
            texts[k] = logs[k].read()
    out = {"first_turn": first, "slice_s": args.slice_s}
    for k in SIDES:
        if procs[k].returncode:
            raise RuntimeError(f"{k}: exited {procs[k].returncode}: {texts[k][-800:]}")
        r = parse_result(texts[k], k)
        ran = running_seconds(turns[k], tuple(r["window"]))
        span = r["window"][1] - r["window"][0]
        out[k] = {
            "events": r["events"],
            "steps": r["steps"],
            "running_s": ran,
            "window_span_s": span,
            "events_per_s": r["events"] / ran,
            "turns_in_window": sum(a < r["window"][1] and b > r["window"][0] for a, b in turns[k]),
        }
    out["ratio"] = out["ours"]["events_per_s"] / out["official"]["events_per_s"]
    return out


def main() -> None:
    ap = setting_parser(__doc__)
    ap.add_argument("--pairs", type=int, default=3, help="sliced pairs (the first turn alternates)")
    ap.add_argument("--slice-s", type=float, default=2.0, help="seconds of one turn")
    ap.add_argument("--window-events", type=int, default=None, help="default: the whole epoch")
    ap.add_argument("--official", required=True, help="checkout of GRU4Rec_PyTorch_Official")
    ap.add_argument("--official-python", default=sys.executable)
    ap.add_argument("--out", default=str(HERE / "results" / "sliced_pair.json"))
    args = ap.parse_args()
    if not (Path(args.official) / "gru4rec_pytorch.py").is_file():
        ap.error(f"--official: no gru4rec_pytorch.py in {args.official}")
    impl = time.get_clock_info("perf_counter").implementation  # both sides stamp on it
    if "CLOCK_MONOTONIC" not in impl:
        sys.exit(f"error: perf_counter is {impl} here, not the system-wide CLOCK_MONOTONIC")
    args.data_dir = data_dir(args)
    subset_file, tr = full_split_file(args.dataset, args.data_dir)
    tsv = Path(subset_file).with_name("train.tsv")
    write_gru4rec_tsv(tsv, tr)
    pairs = []
    for i in range(args.pairs):
        try:
            pair = one_pair(args, subset_file, tsv, SIDES[i % 2])
        except RuntimeError as e:  # a side's failure, its last output included
            sys.exit(f"error: pair {i + 1}: {e}")
        pairs.append(pair)
        print(
            f"pair {i + 1}: ours {pair['ours']['events_per_s']:,.0f} e/s, official "
            f"{pair['official']['events_per_s']:,.0f} e/s: {pair['ratio']:.3f}x",
            flush=True,
        )
    ratios = [p["ratio"] for p in pairs]
    write_report(
        args.out,
        "sliced_pair",
        {
            "setting": {
                **setting_fields(args),
                "train_events": len(tr.items),
                "window_warmup": WINDOW_WARMUP,
                "window_events": args.window_events,
                "threads_each": os.environ.get("OMP_NUM_THREADS", "torch's default"),
                "allocator": "kept",  # ours' worker keeps freed memory, as bench.run does
            },
            "pairs": pairs,
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "machine": machine_info(),
        },
    )


if __name__ == "__main__":
    main()
