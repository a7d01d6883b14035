"""Session-neighbourhood baselines: SKNN, V-SKNN and STAN (the session-rec formulations).

All three take, as candidate neighbours of the current session s, the `sample_size` most
recent training sessions sharing at least one item with s, keep the `k` most similar, and
score item j by summing a per-neighbour weight over the neighbours that contain j. Which
neighbours, exactly as session-rec's algorithms/knn picks them:

- recency is a session's *last* click (session-rec's `session_time`), ties (and data
  without timestamps) by session order; without timestamps that is file order;
- at the k-th neighbour, among equally similar sessions the most recent are kept
  (session-rec's order there is a Python set's, i.e. arbitrary; ours is documented and
  tested, tests/test_knn_reference.py).

- SKNN (Jannach & Ludewig 2017): sim = |s ∩ n| / sqrt(|s| |n|) over item sets.
- V-SKNN (Ludewig & Jannach 2018, "div" weighting): item i of s weighs pos_i / L (pos_i its
  last position, L the events so far); sim = sum of those weights over s ∩ n, divided by
  |s|; a neighbour's vote is sim / step, step = L - pos of its most recent shared item + 1.
- STAN (Garg et al. 2019): w_i = exp((pos_i - L) / lambda_spw); sim = sum_{s ∩ n} w_i /
  (||w|| sqrt(|n|)), times exp(-age / lambda_snh); item j of n votes sim * exp(-|p_n(j) -
  p_n*| / lambda_inh), p_n(j) its last position in n and p_n* the last position in n of an
  item of s. A neighbour's age is, where the data has timestamps, the time from its last
  click to the current event in days (session-rec's unit); where it has none (the SR-GNN
  splits), the number of training sessions more recent than it plus one. `snh_unit`
  forces either; the record names the one used.

The per-session state is the last position of every item (0 = not seen) and the number of
events so far, reset and shrunk by the evaluator like GRU4Rec's hidden state. A batch of
prefixes is scored at once: one sparse product finds every candidate and its overlap,
the most recent `sample_size` are the last entries of each row (training sessions are
indexed by recency), and one partition per row picks the `k` nearest.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from bench.baselines.base import Baseline
from bench.data.sessions import Sessions, concat_ranges

DAY = 86400.0
SNH_UNITS = ("auto", "days", "sessions")


def last_position_matrix(train: Sessions, n_items: int) -> sp.csr_matrix:
    """Sessions x items, each entry the item's last 1-based position in the session."""
    session_of_event = np.repeat(np.arange(train.n_sessions), train.lengths)
    pos = np.arange(train.n_events) - train.offsets[session_of_event] + 1
    order = np.lexsort((pos, train.items, session_of_event))
    s, i, p = session_of_event[order], train.items[order], pos[order]
    is_last = np.r_[(s[1:] != s[:-1]) | (i[1:] != i[:-1]), True]
    return sp.csr_matrix(
        (p[is_last].astype(np.float64), (s[is_last], i[is_last])),
        shape=(train.n_sessions, n_items),
    )


def positions_csr(pos: np.ndarray) -> sp.csr_matrix:
    """The batch's last-position block (float32, >= 0) as CSR with float64 data. Positions
    are never negative, so a nonzero entry is one with a nonzero bit pattern: scanning
    the block as int32 beats scipy's conversion of a float64 copy, 1.16-1.33x on a whole
    evaluation (benchmarks/knn_state_csr.py)."""
    flat = np.flatnonzero(pos.view(np.int32))
    rows, cols = np.divmod(flat, pos.shape[1])
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=pos.shape[0]))]
    return sp.csr_matrix((pos.ravel()[flat].astype(np.float64), cols, indptr), shape=pos.shape)


def pair_entries(m: sp.csr_matrix, cand: np.ndarray):
    """For each pair p (neighbour cand[p]), the row's entries: (pair index, column, value)."""
    lengths = np.diff(m.indptr)[cand]
    flat = concat_ranges(m.indptr[cand], lengths)
    return np.repeat(np.arange(len(cand)), lengths), m.indices[flat], m.data[flat], lengths


def segment_max(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Maximum of each consecutive segment (all segments non-empty)."""
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return np.maximum.reduceat(values, starts)


def recency_order(train: Sessions) -> np.ndarray:
    """Training sessions from the oldest to the most recent last click (ties, and data
    without timestamps, by session order)."""
    last = train.last_click_times
    if last is None:
        return np.arange(train.n_sessions)
    return np.lexsort((np.arange(train.n_sessions), last))


def tie_key(values: np.ndarray) -> np.ndarray:
    """Values rounded to 40 significant bits: similarities that are equal in exact
    arithmetic but were summed in a different order (V-SKNN's pos_i / L) differ in their
    last bits; rounded, they tie, and the tie rule (most recent) decides."""
    mantissa, exponent = np.frexp(values)
    return np.ldexp(np.round(mantissa * 2.0**40) / 2.0**40, exponent)


def nearest_per_row(rows: np.ndarray, values: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """Indices of the entries kept: per row, the k largest `values`; among equal values
    (see tie_key) at the boundary the later entries (rows' entries come from the oldest to the
    most recent candidate, so the most recent win). One partition over a rows x width block."""
    counts = np.bincount(rows, minlength=n_rows)
    width = int(counts.max()) if len(rows) else 0
    if width <= k:
        return np.arange(len(rows))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    col = np.arange(len(rows)) - starts[rows]
    block = np.full((n_rows, width), -np.inf)
    block[rows, col] = tie_key(values)
    kth = np.partition(block, width - k, axis=1)[:, width - k][:, None]
    greater = block > kth
    equal = block == kth
    need = k - greater.sum(axis=1, keepdims=True)
    from_right = np.cumsum(equal[:, ::-1], axis=1)[:, ::-1]  # equal entries at or after
    keep = (greater | (equal & (from_right <= need))) & (block > -np.inf)  # not padding
    r, c = np.nonzero(keep)  # row-major: the entries' own order
    return starts[r] + c


class _SessionNeighbours(Baseline):
    def __init__(self, k: int, sample_size: int):
        super().__init__()
        if k < 1 or sample_size < 1:
            raise ValueError(f"got k={k}, sample_size={sample_size}; expected positive integers")
        self.k, self.sample_size = k, sample_size
        self.n_items = 0
        # Training sessions indexed by recency (0 = oldest last click): see recency_order.
        self.sessions: sp.csr_matrix | None = None  # binary session x item
        self.sessions_t: sp.csr_matrix | None = None  # item x session, for the products
        self.last_pos: sp.csr_matrix | None = None  # last 1-based position of each item
        self.session_len: np.ndarray | None = None  # distinct items per session
        self.last_click: np.ndarray | None = None  # timestamps, where the data has them

    def fit(self, train: Sessions, n_items: int):
        order = recency_order(train)
        self.last_pos = last_position_matrix(train, n_items)[order].tocsr()
        self.sessions = self.last_pos.copy()
        self.sessions.data[:] = 1.0
        self.sessions_t = self.sessions.T.tocsr()
        self.session_len = np.diff(self.sessions.indptr).astype(np.float64)
        last = train.last_click_times
        self.last_click = None if last is None else last[order]
        self.n_items = n_items
        return self

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [
            torch.zeros(batch, self.n_items, device=device),
            torch.zeros(batch, 1, device=device),
        ]

    def item_weights(self, cur: sp.csr_matrix, length: np.ndarray) -> sp.csr_matrix | None:
        """Per current item, the weight its overlap with a neighbour adds (None: 1)."""
        return None

    def similarity(self, cur, length, rows, cand, shared, weighted, now, weights) -> np.ndarray:
        """Per (row, candidate) pair: `shared` items, `weighted` = their summed
        `weights` (the item_weights of the batch, computed once in candidates)."""
        raise NotImplementedError

    def candidates(self, cur: sp.csr_matrix, length: np.ndarray):
        """Per row, the `sample_size` most recent sessions sharing an item with it:
        (rows, candidates, shared item counts, summed item weights, the item weights)."""
        seen = cur.copy()
        seen.data[:] = 1.0
        counts = (seen @ self.sessions_t).tocsr()
        counts.sort_indices()
        weights = self.item_weights(cur, length)
        weighted = counts
        if weights is not None:
            # Weights are positive, so the product has exactly the counts' entries.
            weighted = (weights @ self.sessions_t).tocsr()
            weighted.sort_indices()
            assert np.array_equal(weighted.indptr, counts.indptr)
        rows = np.repeat(np.arange(cur.shape[0]), np.diff(counts.indptr))
        # Columns are recency ranks: a row's last `sample_size` entries are its most recent.
        keep = np.arange(counts.nnz) >= counts.indptr[1:][rows] - self.sample_size
        return rows[keep], counts.indices[keep], counts.data[keep], weighted.data[keep], weights

    def votes(self, pos: np.ndarray, length: np.ndarray, rows, cand, sims) -> np.ndarray:
        """Batch x items scores from the chosen neighbours; default: sum of similarities."""
        w = sp.csr_matrix((sims, (rows, cand)), shape=(len(pos), self.sessions.shape[0]))
        return (w @ self.sessions).toarray()

    def step_all(
        self, x: torch.Tensor, H: list[torch.Tensor], table=None, now=None
    ) -> torch.Tensor:
        pos_t, len_t = H
        len_t += 1
        pos_t[torch.arange(len(x), device=x.device), x] = len_t[:, 0]
        pos = np.ascontiguousarray(pos_t.cpu().numpy())  # float32: positions are exact
        length = len_t[:, 0].cpu().numpy().astype(np.float64)
        cur = positions_csr(pos)  # data = last positions of the session's items
        rows, cand, shared, weighted, weights = self.candidates(cur, length)
        sims = self.similarity(cur, length, rows, cand, shared, weighted, now, weights)
        keep = nearest_per_row(rows, sims, len(x), self.k)
        scores = self.votes(pos, length, rows[keep], cand[keep], sims[keep])
        return torch.as_tensor(scores, dtype=torch.float32, device=x.device)


class SKNN(_SessionNeighbours):
    def __init__(self, k: int = 100, sample_size: int = 500):
        super().__init__(k, sample_size)

    def similarity(self, cur, length, rows, cand, shared, weighted, now, weights):
        cur_len = np.diff(cur.indptr).astype(np.float64)
        return shared / np.sqrt(cur_len[rows] * self.session_len[cand])


class VSKNN(_SessionNeighbours):
    def __init__(self, k: int = 100, sample_size: int = 1000):
        super().__init__(k, sample_size)

    def item_weights(self, cur, length):
        return sp.csr_matrix(sp.diags(1.0 / np.maximum(length, 1.0)) @ cur)  # pos_i / L

    def similarity(self, cur, length, rows, cand, shared, weighted, now, weights):
        return weighted / np.diff(cur.indptr)[rows]

    def votes(self, pos, length, rows, cand, sims):
        pair, items, _, lengths = pair_entries(self.sessions, cand)
        latest = segment_max(pos[rows[pair], items], lengths)  # most recent shared item
        step = length[rows] - latest + 1.0
        return super().votes(pos, length, rows, cand, sims / step)


class STAN(_SessionNeighbours):
    def __init__(
        self,
        k: int = 100,
        sample_size: int = 1000,
        lambda_spw: float = 1.02,
        lambda_snh: float = 10000.0,
        lambda_inh: float = 2.05,
        snh_unit: str = "auto",
    ):
        super().__init__(k, sample_size)
        if min(lambda_spw, lambda_snh, lambda_inh) <= 0:
            raise ValueError(
                f"got lambda_spw={lambda_spw}, lambda_snh={lambda_snh}, lambda_inh={lambda_inh}; "
                "expected positive decay constants"
            )
        if snh_unit not in SNH_UNITS:
            raise ValueError(f"got snh_unit={snh_unit!r}; expected one of {', '.join(SNH_UNITS)}")
        self.lambda_spw, self.lambda_snh, self.lambda_inh = lambda_spw, lambda_snh, lambda_inh
        self.snh_unit = snh_unit

    def fit(self, train: Sessions, n_items: int):
        if self.snh_unit == "days" and train.times is None:
            raise ValueError("snh_unit=days, but the training data has no timestamps")
        super().fit(train, n_items)
        if self.snh_unit == "auto":
            self.snh_unit = "sessions" if self.last_click is None else "days"
        return self

    @property
    def uses_event_times(self) -> bool:
        """The evaluator passes the current events' timestamps (`now`) to step_all."""
        return self.snh_unit == "days"

    def item_weights(self, cur, length):
        w = cur.copy()
        w.data = np.exp((w.data - np.repeat(length, np.diff(w.indptr))) / self.lambda_spw)
        # Kept positive (an item thousands of clicks back underflows): the products of
        # `candidates` then have the same entries; its weight stays negligible.
        w.data = np.maximum(w.data, np.finfo(np.float64).tiny)
        return w

    def similarity(self, cur, length, rows, cand, shared, weighted, now, weights):
        norm = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
        if self.snh_unit == "days":
            if now is None:
                raise ValueError("snh_unit=days needs the current events' timestamps")
            age = (np.asarray(now, dtype=np.float64)[rows] - self.last_click[cand]) / DAY
        else:
            age = self.sessions.shape[0] - cand  # the most recent session has age 1
        decay = np.exp(-age / self.lambda_snh)
        return weighted / (norm[rows] * np.sqrt(self.session_len[cand])) * decay

    def votes(self, pos, length, rows, cand, sims):
        pair, items, npos, lengths = pair_entries(self.last_pos, cand)
        shared = pos[rows[pair], items] > 0
        anchor = segment_max(np.where(shared, npos, 0.0), lengths)  # p_n*
        vote = sims[pair] * np.exp(-np.abs(npos - anchor[pair]) / self.lambda_inh)
        # Summed straight into the dense batch x items block (no sparse sort of duplicates).
        flat = rows[pair] * self.n_items + items
        return np.bincount(flat, vote, minlength=len(pos) * self.n_items).reshape(len(pos), -1)
