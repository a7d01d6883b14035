"""Item-KNN of the GRU4Rec paper (official baselines.py ItemKNN), with sparse matrices.

sim(i, j) = co(i, j) / ((supp_i + lmbd)^alpha * (supp_j + lmbd)^(1 - alpha)), where co
counts, over the training sessions, occurrences of i times occurrences of j (the official
loop adds, for every event of i, one per event of each item in that session) and supp is
the number of events of an item; sim(i, i) = 0. alpha = 0.5 is cosine similarity with the
paper's regularisation `lmbd`. Only the `n_sims` most similar items of each item score.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from bench.baselines.base import Baseline
from bench.data.sessions import Sessions


def session_item_matrix(train: Sessions, n_items: int) -> sp.csr_matrix:
    """Sessions x items, each entry the number of events of the item in the session."""
    session_of_event = np.repeat(np.arange(train.n_sessions), train.lengths)
    return sp.csr_matrix(
        (np.ones(train.n_events, dtype=np.float64), (session_of_event, train.items)),
        shape=(train.n_sessions, n_items),
    )  # duplicates summed


def item_similarities(train: Sessions, n_items: int, lmbd: float, alpha: float) -> sp.csr_matrix:
    incidence = session_item_matrix(train, n_items)
    co = (incidence.T @ incidence).tocsr()
    co.setdiag(0.0)
    co.eliminate_zeros()
    supp = train.support(n_items) + lmbd
    rows = np.repeat(np.arange(n_items), np.diff(co.indptr))
    co.data = co.data / (supp[rows] ** alpha * supp[co.indices] ** (1.0 - alpha))
    return co


def top_k_rows(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest entries as (indices, values); rows with fewer entries are
    padded with value 0 at column 0, which adds nothing to a score."""
    n = m.shape[0]
    idx = np.zeros((n, k), dtype=np.int64)
    val = np.zeros((n, k))
    rows = np.repeat(np.arange(n), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))  # by row, then descending similarity
    rank = np.arange(len(order)) - m.indptr[rows[order]]
    keep = rank < k
    sel = order[keep]
    idx[rows[sel], rank[keep]] = m.indices[sel]
    val[rows[sel], rank[keep]] = m.data[sel]
    return idx, val


class ItemTable(Baseline):
    """Scores from the current item only: a row of an item x item matrix, kept as the `width`
    strongest (index, weight) pairs per item (Item-KNN neighbours, SR/AR rules)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("table_idx", torch.zeros(0, width, dtype=torch.int64))
        self.register_buffer("table_val", torch.zeros(0, width))
        self.width = width
        self.n_items = 0

    def weights(self, train: Sessions, n_items: int) -> sp.csr_matrix:
        raise NotImplementedError

    def fit(self, train: Sessions, n_items: int):
        idx, val = top_k_rows(self.weights(train, n_items), self.width)
        self.table_idx = torch.as_tensor(idx, dtype=torch.int64)
        self.table_val = torch.as_tensor(val, dtype=torch.float32)
        self.n_items = n_items
        return self

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        scores = torch.zeros(len(x), self.n_items, device=x.device)
        # Padding entries carry weight 0 at column 0: adding them changes nothing.
        return scores.scatter_add_(
            1, self.table_idx.index_select(0, x), self.table_val.index_select(0, x)
        )


class ItemKNN(ItemTable):
    def __init__(self, n_sims: int = 100, lmbd: float = 20.0, alpha: float = 0.5):
        if n_sims < 1 or lmbd < 0 or not 0 <= alpha <= 1:
            raise ValueError(
                f"got n_sims={n_sims}, lmbd={lmbd}, alpha={alpha}; expected n_sims >= 1, lmbd >= "
                "0, alpha in [0, 1]"
            )
        super().__init__(n_sims)
        self.n_sims, self.lmbd, self.alpha = n_sims, lmbd, alpha

    def weights(self, train: Sessions, n_items: int) -> sp.csr_matrix:
        return item_similarities(train, n_items, self.lmbd, self.alpha)
