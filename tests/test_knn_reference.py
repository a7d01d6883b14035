"""SKNN, V-SKNN and STAN side by side with session-rec's formulation on the RSC15 sample.

The reference below is written from session-rec's algorithms/knn (sknn.py, vsknn.py,
stan.py), session by session with Python sets and dicts as there, not from our code:
candidates are the sessions sharing an item with the current prefix; above `sample_size`
the most recent by *last* click are kept; the `k` most similar are the neighbours, and
among equally similar sessions the most recent (our documented rule; session-rec's order
there is a Python set's). Our batched sparse implementation scores all prefixes at once;
each prefix's top-20 must match the reference's (issue #16 asks for 99% of prefixes;
we hold 99.5%: the rules agree on all 1,025 today), scores equal within 1e-6 relative
(items whose reference scores are equal within that tolerance are ties).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from bench.baselines.sknn import DAY, SKNN, STAN, VSKNN
from bench.core.metrics import metrics_from_ranks

N_PREFIXES = 1025  # prefixes of the first test sessions, as in issue #16's check
TOP = 20
RTOL = 1e-6


@pytest.fixture(scope="module")
def rsc15(shared_data):
    from bench.datasets import load_dataset

    root = shared_data / "yoochoose" / "sessionrec_rsc15_100k"
    ds = {
        "name": "rsc15_100k",
        "kind": "files",
        "train": str(root / "yoochoose-clicks-100k_train_full.tsv.gz"),
        "test": str(root / "yoochoose-clicks-100k_test.tsv.gz"),
    }
    return load_dataset(ds, str(shared_data))


def prefixes(test, n):
    """(items so far, next item, time of the last item so far) for the first n prefixes."""
    out = []
    for s in range(test.n_sessions):
        a, b = test.offsets[s], test.offsets[s + 1]
        for t in range(a + 1, b):
            out.append((test.items[a:t].tolist(), int(test.items[t]), float(test.times[t - 1])))
            if len(out) == n:
                return out
    return out


class Reference:
    """session-rec's neighbour methods, one prefix at a time."""

    def __init__(self, train, n_items: int, mode: str, **params):
        self.mode, self.p, self.n_items = mode, params, n_items
        self.items = [train.items[a:b].tolist() for a, b in zip(train.offsets, train.offsets[1:])]
        self.sets = [set(s) for s in self.items]
        self.last_time = train.times[train.offsets[1:] - 1]
        self.by_item: dict[int, set[int]] = {}
        for s, items in enumerate(self.sets):
            for i in items:
                self.by_item.setdefault(i, set()).add(s)
        # session-rec's session_time is the last click; ties by session order.
        order = sorted(range(len(self.items)), key=lambda s: (self.last_time[s], s))
        self.recency = {s: r for r, s in enumerate(order)}

    def neighbours(self, cur: list[int], now: float) -> list[tuple[int, float]]:
        relevant = set().union(*(self.by_item.get(i, set()) for i in set(cur)))
        if len(relevant) > self.p["sample_size"]:
            relevant = sorted(relevant, key=self.recency.get, reverse=True)
            relevant = relevant[: self.p["sample_size"]]
        sims = [(s, self.similarity(cur, s, now)) for s in relevant]
        # Exact similarities where they are rational (SKNN squared, V-SKNN): equal is equal.
        sims.sort(key=lambda p: (self.exact(cur, p[0], p[1]), self.recency[p[0]]), reverse=True)
        return [(s, float(sim)) for s, sim in sims[: self.p["k"]] if sim > 0]

    def exact(self, cur: list[int], s: int, sim):
        if self.mode == "sknn":
            return Fraction(len(set(cur) & self.sets[s]) ** 2, len(set(cur)) * len(self.sets[s]))
        return sim

    def similarity(self, cur: list[int], s: int, now: float) -> float:
        shared = set(cur) & self.sets[s]
        if self.mode == "sknn":
            return len(shared) / math.sqrt(len(set(cur)) * len(self.sets[s]))
        last = {i: p + 1 for p, i in enumerate(cur)}  # last 1-based position
        if self.mode == "vsknn":  # exact, so that equal similarities are equal
            return sum(Fraction(last[i], len(cur)) for i in shared) / len(set(cur))
        w = {i: math.exp((p - len(cur)) / self.p["lambda_spw"]) for i, p in last.items()}
        norm = math.sqrt(sum(v * v for v in w.values()))
        sim = sum(w[i] for i in shared) / (norm * math.sqrt(len(self.sets[s])))
        if self.p["snh_unit"] == "days":
            age = (now - self.last_time[s]) / DAY
        else:
            age = len(self.items) - self.recency[s]
        return sim * math.exp(-age / self.p["lambda_snh"])

    def scores(self, cur: list[int], now: float) -> np.ndarray:
        out = np.zeros(self.n_items)
        last = {i: p + 1 for p, i in enumerate(cur)}
        for s, sim in self.neighbours(cur, now):
            if self.mode == "sknn":
                for i in self.sets[s]:
                    out[i] += sim
            elif self.mode == "vsknn":
                # 1 for the last item of the prefix, counting back to one n contains.
                step = next(
                    len(cur) - p for p in range(len(cur) - 1, -1, -1) if cur[p] in self.sets[s]
                )
                for i in self.sets[s]:
                    out[i] += sim / step
            else:
                pos = {i: p + 1 for p, i in enumerate(self.items[s])}  # last positions in n
                anchor = max(pos[i] for i in self.sets[s] if i in last)
                for i, p in pos.items():
                    out[i] += sim * math.exp(-abs(p - anchor) / self.p["lambda_inh"])
        return out


def ours(model, cases) -> np.ndarray:
    """Scores of every prefix in one batch: the state after all but the last item, then
    one step with the last item (the evaluator's path)."""
    n = len(cases)
    pos, length = model.init_hidden(n)
    for r, (cur, _, _) in enumerate(cases):
        for p, i in enumerate(cur[:-1]):
            pos[r, i] = p + 1
        length[r, 0] = len(cur) - 1
    x = torch.as_tensor([c[0][-1] for c in cases])
    now = np.array([c[2] for c in cases])
    return model.step_all(x, [pos, length], now=now).double().numpy()


def same_top(mine: np.ndarray, ref: np.ndarray) -> bool:
    """Our top-20 are the reference's, up to items the reference scores equal (ties)."""
    tol = RTOL * max(1e-12, float(np.abs(ref).max()))
    top = np.argsort(-mine, kind="stable")[:TOP]
    if not np.allclose(mine[top], ref[top], rtol=RTOL, atol=tol):
        return False
    kth = np.sort(ref)[::-1][TOP - 1]
    # Every reference item strictly above the 20th score is in our list.
    return bool(np.isin(np.flatnonzero(ref > kth + tol), top).all())


def conservative_rank(scores: np.ndarray, target: int) -> float:
    """Items scored at least the target's (scores within RTOL count as equal: sums of the
    same votes in another order differ in the last bits)."""
    tol = RTOL * max(1e-12, float(np.abs(scores).max()))
    return float((scores >= scores[target] - tol).sum())


CASES = {
    "sknn": (SKNN, dict(k=100, sample_size=500)),
    "vsknn": (VSKNN, dict(k=100, sample_size=1000)),
    # session-rec's STAN default lambda_snh is 5 days; in sessions, about a tenth of them.
    "stan_days": (STAN, dict(k=100, sample_size=1000, lambda_snh=5.0, snh_unit="days")),
    "stan_sessions": (STAN, dict(k=100, sample_size=1000, lambda_snh=2000.0, snh_unit="sessions")),
}


@pytest.mark.real_data
@pytest.mark.parametrize("case", sorted(CASES))
def test_neighbour_methods_match_session_rec_on_rsc15(rsc15, case):
    cls, params = CASES[case]
    n_items = len(rsc15.item_map)
    model = cls(**params).fit(rsc15.train, n_items)
    cases = prefixes(rsc15.test, N_PREFIXES)
    assert len(cases) == N_PREFIXES
    defaults = dict(lambda_spw=1.02, lambda_inh=2.05, snh_unit="sessions")
    ref = Reference(rsc15.train, n_items, case.split("_")[0], **(defaults | params))
    mine = ours(model, cases)
    agree, ranks_mine, ranks_ref = 0, [], []
    for r, (cur, target, now) in enumerate(cases):
        expected = ref.scores(cur, now)
        agree += same_top(mine[r], expected)
        ranks_mine.append(conservative_rank(mine[r], target))
        ranks_ref.append(conservative_rank(expected, target))
    share = agree / len(cases)
    assert share >= 0.995, f"{case}: identical top-{TOP} on {share:.1%} of {len(cases)} prefixes"
    m = metrics_from_ranks(torch.as_tensor(ranks_mine), [TOP])
    e = metrics_from_ranks(torch.as_tensor(ranks_ref), [TOP])
    for key in (f"recall@{TOP}", f"mrr@{TOP}"):
        assert round(m[key], 4) == round(e[key], 4), (case, key, m[key], e[key])


@pytest.mark.real_data
def test_stan_measures_neighbour_age_in_days_where_there_are_timestamps(rsc15):
    auto = STAN().fit(rsc15.train, len(rsc15.item_map))
    assert auto.snh_unit == "days" and auto.uses_event_times
