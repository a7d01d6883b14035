"""Training epochs of the official GRU4Rec PyTorch code, one per setting, in one process.

Run by throughput.py under the official code's own Python (numpy<2, pandas<3), so it
imports nothing of ours. It does what the official run.py does (read the TSV with its
dtypes, `GRU4Rec(device=...)`, `set_params` from the same parameter string, `fit`) and
reads the epoch seconds from the official's own epoch line. Two things run.py cannot do:
several settings in one process (on a lent GPU, a process per setting costs more than the
epochs themselves), and a window: a setting's `window_steps` N times only N minibatches
of the epoch after its first `window_warmup` (the steady state, every lane busy, start-up
costs left out), so that the slowest settings fit a lend.
Every minibatch's inputs are counted, so events are exact even where lanes run out.

    python official_epoch.py OFFICIAL_DIR TRAIN_TSV DEVICE SETTINGS_JSON

Prints one line per setting, `RESULT {...}` or `FAILED {...}`, each with the setting's index.
"""

import argparse
import contextlib
import gc
import io
import itertools
import json
import re
import resource
import sys
import time
import traceback
from collections import OrderedDict

EPOCH_LINE = re.compile(r"\(([\d.]+)s\)\s*\[([\d.]+) mb/s \| (\d+) e/s\]")


def windowed(iterate, counter: dict, steps: int | None, warmup: int = 0):
    """The official iterator's `__call__`: with a window, cut after `warmup + steps`
    minibatches and timed over the last `steps` (the official reads the loss back after
    every step, so a step is done when the next is asked for); the events it hands out are
    counted from the inputs' lengths (the lanes still running)."""

    def call(self, *args, **kwargs):
        end = None if steps is None else warmup + steps
        for i, (in_idx, y) in enumerate(itertools.islice(iterate(self, *args, **kwargs), end)):
            if i == warmup:
                counter["t0"] = time.perf_counter()
            if i >= warmup:
                counter["steps"] += 1
                counter["events"] += len(in_idx)
            yield in_idx, y
        counter["t1"] = time.perf_counter()

    return call


def one_epoch(official, iterate, data, device: str, setting: dict) -> dict:
    """One setting's epoch (or window); `iterate` is the official iterator's own `__call__`."""
    import torch

    counter = {"steps": 0, "events": 0}
    steps, warmup = setting.get("window_steps"), setting.get("window_warmup", 0)
    official.SessionDataIterator.__call__ = windowed(iterate, counter, steps, warmup)
    params = OrderedDict(kv.split("=") for kv in setting["params"].split(","))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gru = official.GRU4Rec(device=device)
        gru.set_params(**params)
        gru.fit(data)
    m = EPOCH_LINE.search(printed.getvalue())
    if not m:
        raise RuntimeError(f"no epoch line in the official's output: {printed.getvalue()[-400:]}")
    if steps and "t0" not in counter:
        raise RuntimeError(f"the epoch has no more than the window's {warmup} warm-up steps")
    # A window: the span of its steps; a whole epoch: the official's own epoch seconds.
    seconds = counter["t1"] - counter["t0"] if steps else float(m.group(1))
    out = {
        "seconds": seconds,
        "minibatches_per_s": counter["steps"] / seconds,
        # a window's span on the monotonic clock (sliced_pair.py)
        **({"window": [counter["t0"], counter["t1"]]} if steps else {}),
        **({} if steps else {"events_per_s_printed": float(m.group(3))}),
        **{k: counter[k] for k in ("steps", "events")},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    del gru
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("official")
    ap.add_argument("tsv")
    ap.add_argument("device")
    ap.add_argument(
        "settings", help="JSON list of {'params': parameter string, 'window_steps': N or null}"
    )
    args = ap.parse_args()
    sys.path.insert(0, args.official)
    import pandas as pd

    official = __import__("gru4rec_pytorch")
    iterate = official.SessionDataIterator.__call__
    data = pd.read_csv(
        args.tsv,
        sep="\t",
        usecols=["SessionId", "ItemId", "Time"],
        dtype={"SessionId": "int32", "ItemId": "str"},
    )
    for i, setting in enumerate(json.loads(args.settings)):
        try:
            out = one_epoch(official, iterate, data, args.device, setting)
            print("RESULT " + json.dumps({"index": i, **out}), flush=True)
        except Exception as e:  # the next setting may still run (e.g. after an out-of-memory)
            error = f"{type(e).__name__}: {e} | {traceback.format_exc(limit=2)[-300:]}"
            print("FAILED " + json.dumps({"index": i, "error": error}), flush=True)


if __name__ == "__main__":
    main()
