"""The one paired test of every table (the comparison tables and the headline): per-event
values of a metric from the ranks each run kept (its rank file, or the ranks its study
storage holds), averaged over the seeds, and the two-sided Wilcoxon signed-rank test
between two rows that ranked the very same test events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bench.records import RANKS_KEY, decode_ranks

ALPHA = 0.05  # significance level, marked † in every table


def per_event(ranks: np.ndarray, metric: str) -> np.ndarray:
    """The evaluator's per-event values of `metric` ("name@K") for stored ranks."""
    from bench.core.metrics import per_event_metric

    name, k = metric.split("@")
    return per_event_metric(torch.as_tensor(ranks, dtype=torch.float64), name, int(k)).numpy()


def run_ranks(run: pd.Series) -> np.ndarray | None:
    """A run's per-event ranks: those its study storage keeps, else its rank file."""
    text = run.get(RANKS_KEY)
    if isinstance(text, str):
        return decode_ranks(text)
    path = run.get("ranks")
    if not isinstance(path, str):
        return None
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None


def event_values(runs: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Per-event values of `metric` averaged over the runs (seeds) of one row; None where a
    run's ranks are missing or the runs do not rank the same number of events."""
    arrays = []
    for _, run in runs.iterrows():
        ranks = run_ranks(run)
        if ranks is None:
            return None
        arrays.append(per_event(np.asarray(ranks, dtype=np.float64), metric))
    if not arrays or len({len(a) for a in arrays}) != 1:
        return None
    return np.mean(arrays, axis=0)


def paired_p(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    if np.all(a == b):
        return 1.0
    return float(wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


@dataclass(frozen=True)
class RowEvents:
    """What a row (its runs) brings to the paired test: the test events it ranked
    (fingerprints) and its per-event values of one metric, averaged over seeds."""

    fingerprints: frozenset
    values: np.ndarray | None

    @classmethod
    def of(cls, runs: pd.DataFrame, metric: str) -> RowEvents:
        return cls(frozenset(runs["fingerprint"]), event_values(runs, metric))


def paired_test(a: RowEvents, b: RowEvents) -> tuple[float | None, int | None]:
    """(p, test events) of row `a` against row `b`; p is None where the two did not rank the
    very same test events (one fingerprint each, equal) or ranks are missing."""
    va, vb = a.values, b.values
    n = None if va is None else len(va)
    same = a.fingerprints == b.fingerprints and len(a.fingerprints) == 1
    if not same or va is None or vb is None or len(va) != len(vb):
        return None, n
    return paired_p(va, vb), n
