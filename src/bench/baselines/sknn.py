"""Session-neighbourhood baselines: SKNN, V-SKNN and STAN (the session-rec formulations).

All three take, as candidate neighbours of the current session s, the `sample_size` most
recent training sessions sharing at least one item with s (training sessions are ordered
by start time, so "most recent" is the highest index), keep the `k` most similar, and
score item j by summing a per-neighbour weight over the neighbours that contain j.

- SKNN (Jannach & Ludewig 2017): sim = |s ∩ n| / sqrt(|s| |n|) over item sets.
- V-SKNN (Ludewig & Jannach 2018, "div" weighting): item i of s weighs pos_i / L (pos_i its
  last position, L the events so far); sim = sum of those weights over s ∩ n, divided by
  |s|; a neighbour's vote is sim / step, step = L - pos of its most recent shared item + 1.
- STAN (Garg et al. 2019): w_i = exp((pos_i - L) / lambda_spw); sim = sum_{s ∩ n} w_i /
  (||w|| sqrt(|n|)), times exp(-age / lambda_snh); item j of n votes sim * exp(-|p_n(j) -
  p_n*| / lambda_inh), p_n(j) its last position in n and p_n* the last position in n of an
  item of s. Our split files carry no timestamps, so a neighbour's age counts training
  sessions (the newest has age 1); lambda_snh is therefore in sessions, not seconds.

The per-session state is the last position of every item (0 = not seen) and the number of
events so far, reset and shrunk by the evaluator like GRU4Rec's hidden state. Computed
batch-wise with scipy.sparse products on the CPU.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from bench.baselines.base import Baseline
from bench.baselines.knn import top_k_rows
from bench.data.sessions import Sessions, concat_ranges


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


def pair_entries(m: sp.csr_matrix, cand: np.ndarray):
    """For each pair p (neighbour cand[p]), the row's entries: (pair index, column, value)."""
    lengths = np.diff(m.indptr)[cand]
    flat = concat_ranges(m.indptr[cand], lengths)
    return np.repeat(np.arange(len(cand)), lengths), m.indices[flat], m.data[flat], lengths


def segment_max(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Maximum of each consecutive segment (all segments non-empty)."""
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return np.maximum.reduceat(values, starts)


class _SessionNeighbours(Baseline):
    def __init__(self, k: int, sample_size: int):
        super().__init__()
        if k < 1 or sample_size < 1:
            raise ValueError(f"got k={k}, sample_size={sample_size}; expected positive integers")
        self.k, self.sample_size = k, sample_size
        self.n_items = 0
        self.sessions: sp.csr_matrix | None = None  # binary session x item
        self.last_pos: sp.csr_matrix | None = None  # last 1-based position of each item
        self.session_len: np.ndarray | None = None  # distinct items per session

    def fit(self, train: Sessions, n_items: int):
        self.last_pos = last_position_matrix(train, n_items)
        self.sessions = self.last_pos.copy()
        self.sessions.data[:] = 1.0
        self.session_len = np.diff(self.sessions.indptr).astype(np.float64)
        self.n_items = n_items
        return self

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [
            torch.zeros(batch, self.n_items, device=device),
            torch.zeros(batch, 1, device=device),
        ]

    def similarity(self, cur: sp.csr_matrix, length: np.ndarray, rows, cand, overlap) -> np.ndarray:
        """Per (row, neighbour) pair; `overlap` = shared item counts, batch x sessions."""
        raise NotImplementedError

    def dot(self, weights: sp.csr_matrix, rows, cand) -> np.ndarray:
        """sum over i in s ∩ n of weights[row, i], for each (row, neighbour) pair."""
        return np.asarray((weights @ self.sessions.T).tocsr()[rows, cand]).ravel()

    def votes(self, pos: np.ndarray, length: np.ndarray, rows, cand, sims) -> sp.csr_matrix:
        """Batch x items scores from the chosen neighbours; default: sum of similarities."""
        w = sp.csr_matrix((sims, (rows, cand)), shape=(len(pos), self.sessions.shape[0]))
        return w @ self.sessions

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        pos_t, len_t = H
        len_t += 1
        pos_t[torch.arange(len(x), device=x.device), x] = len_t[:, 0]
        pos = pos_t.cpu().numpy().astype(np.float64)
        length = len_t[:, 0].cpu().numpy().astype(np.float64)
        cur = sp.csr_matrix(pos)  # data = last positions of the session's items
        seen = cur.copy()
        seen.data[:] = 1.0
        overlap = (seen @ self.sessions.T).tocsr()
        recent = overlap.copy()
        recent.data = recent.indices.astype(np.float64) + 1.0
        idx, val = top_k_rows(recent, self.sample_size)
        rows = np.repeat(np.arange(len(x)), idx.shape[1])
        cand, valid = idx.ravel(), val.ravel() > 0
        rows, cand = rows[valid], cand[valid]
        sims = self.similarity(cur, length, rows, cand, overlap)
        sim_m = sp.csr_matrix((sims, (rows, cand)), shape=overlap.shape)
        nidx, nval = top_k_rows(sim_m, self.k)
        keep = nval.ravel() > 0
        rows = np.repeat(np.arange(len(x)), self.k)[keep]
        scores = self.votes(pos, length, rows, nidx.ravel()[keep], nval.ravel()[keep])
        return torch.as_tensor(scores.toarray(), dtype=torch.float32, device=x.device)


class SKNN(_SessionNeighbours):
    def __init__(self, k: int = 100, sample_size: int = 500):
        super().__init__(k, sample_size)

    def similarity(self, cur, length, rows, cand, overlap):
        cur_len = np.diff(cur.indptr).astype(np.float64)
        shared = np.asarray(overlap[rows, cand]).ravel()
        return shared / np.sqrt(cur_len[rows] * self.session_len[cand])


class VSKNN(_SessionNeighbours):
    def __init__(self, k: int = 100, sample_size: int = 1000):
        super().__init__(k, sample_size)

    def similarity(self, cur, length, rows, cand, overlap):
        weights = sp.diags(1.0 / np.maximum(length, 1.0)) @ cur  # pos_i / L
        return self.dot(sp.csr_matrix(weights), rows, cand) / np.diff(cur.indptr)[rows]

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
    ):
        super().__init__(k, sample_size)
        if min(lambda_spw, lambda_snh, lambda_inh) <= 0:
            raise ValueError(
                f"got lambda_spw={lambda_spw}, lambda_snh={lambda_snh}, lambda_inh={lambda_inh}; "
                "expected positive decay constants"
            )
        self.lambda_spw, self.lambda_snh, self.lambda_inh = lambda_spw, lambda_snh, lambda_inh

    def similarity(self, cur, length, rows, cand, overlap):
        w = cur.copy()
        w.data = np.exp((w.data - np.repeat(length, np.diff(w.indptr))) / self.lambda_spw)
        norm = np.sqrt(np.asarray(w.multiply(w).sum(axis=1)).ravel())
        dot = self.dot(w, rows, cand)
        age = self.sessions.shape[0] - cand
        return dot / (norm[rows] * np.sqrt(self.session_len[cand])) * np.exp(-age / self.lambda_snh)

    def votes(self, pos, length, rows, cand, sims):
        pair, items, npos, lengths = pair_entries(self.last_pos, cand)
        shared = pos[rows[pair], items] > 0
        anchor = segment_max(np.where(shared, npos, 0.0), lengths)  # p_n*
        vote = sims[pair] * np.exp(-np.abs(npos - anchor[pair]) / self.lambda_inh)
        return sp.csr_matrix((vote, (rows[pair], items)), shape=(len(pos), self.n_items))
