"""Seeded synthetic session generator: the embedded default dataset (labelled SYNTHETIC).

It exists so that `make run` works offline on a fresh clone. The data has what a
session-based recommender needs to show skill: Zipf-like item popularity, session
lengths with a long tail, and sequential structure (each item has a few likely
successors), so a sequence model must clearly beat popularity on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.data.io import ITEM, SESSION, TIME

LABEL = "SYNTHETIC (seeded generator, not real data)"

# Each parameter's lower bound (and upper, for the probability), so a bad setting is one
# line before anything is drawn rather than an error from inside numpy.
BOUNDS = {
    "n_items": (2, None),
    "n_train_sessions": (1, None),
    "n_test_sessions": (1, None),
    "zipf_exponent": (0.0, None),
    "n_successors": (1, None),
    "p_follow": (0.0, 1.0),
    "mean_length": (2.0, None),
    "max_length": (2, None),
    "seed": (0, None),
}


def check_params(params: dict) -> str | None:
    """Why `params` cannot drive the generator (unknown name, wrong type, out of bounds),
    as `dataset.params.<name>: ...`; None when they can."""
    for name, value in params.items():
        key = f"dataset.params.{name}"
        if name not in BOUNDS:
            return f"{key}: not a parameter of the synthetic generator ({', '.join(BOUNDS)})"
        low, high = BOUNDS[name]
        whole = isinstance(low, int)
        if not isinstance(value, int if whole else int | float) or isinstance(value, bool):
            return f"{key}: got {value!r}; expected {'an integer' if whole else 'a number'}"
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            return f"{key}: got {value!r}; expected a value {bound}"
    return None


def generate(
    n_items: int = 1000,
    n_train_sessions: int = 8000,
    n_test_sessions: int = 1000,
    zipf_exponent: float = 1.1,
    n_successors: int = 4,
    p_follow: float = 0.75,
    mean_length: float = 5.0,
    max_length: int = 40,
    seed: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, test) event tables; test sessions start after every train session."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** zipf_exponent
    pop = pop[rng.permutation(n_items)]
    pop /= pop.sum()
    # Each item's successors are drawn by a flattened popularity, with decreasing weight.
    flat = np.sqrt(pop) / np.sqrt(pop).sum()
    succ = rng.choice(n_items, size=(n_items, n_successors), p=flat)
    succ_w = 0.5 ** np.arange(n_successors)
    succ_w /= succ_w.sum()

    n_total = n_train_sessions + n_test_sessions
    lengths = np.minimum(2 + rng.geometric(1.0 / (mean_length - 1.0), size=n_total) - 1, max_length)
    n_events = int(lengths.sum())
    # Draw all randomness up front; the loop below only indexes.
    follow = rng.random(n_events) < p_follow
    succ_pick = rng.choice(n_successors, size=n_events, p=succ_w)
    jump = rng.choice(n_items, size=n_events + n_total, p=pop)
    items = np.empty(n_events, dtype=np.int64)
    e = 0
    for s, length in enumerate(lengths):
        cur = jump[n_events + s]
        for _ in range(length):
            items[e] = cur
            cur = succ[cur, succ_pick[e]] if follow[e] else jump[e]
            e += 1
    sessions = np.repeat(np.arange(n_total), lengths)
    starts = 1_600_000_000.0 + np.cumsum(rng.exponential(60.0, size=n_total))
    pos = np.arange(n_events) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    times = np.repeat(starts, lengths) + 30.0 * pos
    df = pd.DataFrame(
        {SESSION: sessions, ITEM: np.char.add("i", items.astype(str)).astype(object), TIME: times}
    )
    is_train = df[SESSION] < n_train_sessions
    return df[is_train].reset_index(drop=True), df[~is_train].reset_index(drop=True)
