"""SKNN: session-based kNN (Jannach & Ludewig, RecSys 2017; ContextKNN of session-rec).

For the current session s (its items so far, as a set), the candidate neighbours are the
`sample_size` most recent training sessions that share at least one item with s; their
similarity is the cosine of the binary item sets, |s ∩ n| / sqrt(|s| |n|); the `k` most
similar are kept and item i scores the sum of the similarities of the neighbours that
contain i. Training sessions are ordered by start time, so "most recent" is the highest
session index. Computed batch-wise with scipy.sparse products on the CPU.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from bench.baselines.base import Baseline
from bench.baselines.knn import session_item_matrix, top_k_rows
from bench.data.sessions import Sessions


class SKNN(Baseline):
    def __init__(self, k: int = 100, sample_size: int = 500):
        super().__init__()
        if k < 1 or sample_size < 1:
            raise ValueError(f"got k={k}, sample_size={sample_size}; expected positive integers")
        self.k, self.sample_size = k, sample_size
        self.n_items = 0
        self.sessions: sp.csr_matrix | None = None  # binary session x item
        self.session_len: np.ndarray | None = None

    def fit(self, train: Sessions, n_items: int) -> SKNN:
        m = session_item_matrix(train, n_items)
        m.data[:] = 1.0  # sets, not counts
        self.sessions = m
        self.session_len = np.asarray(m.sum(axis=1)).ravel()
        self.n_items = n_items
        return self

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [torch.zeros(batch, self.n_items, device=device)]

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        seen = H[0]
        seen[torch.arange(len(x), device=x.device), x] = 1.0
        cur = sp.csr_matrix(seen.cpu().numpy())
        overlap = (cur @ self.sessions.T).tocsr()  # shared items with every training session
        # Candidates: the sample_size most recent sessions sharing an item (largest index).
        recent = overlap.copy()
        recent.data = recent.indices.astype(np.float64) + 1.0
        idx, val = top_k_rows(recent, self.sample_size, pad=0)
        rows = np.repeat(np.arange(len(x)), idx.shape[1])
        cand = idx.ravel()
        valid = val.ravel() > 0
        rows, cand = rows[valid], cand[valid]
        shared = np.asarray(overlap[rows, cand]).ravel()
        cur_len = np.asarray(cur.sum(axis=1)).ravel()
        sims = shared / np.sqrt(cur_len[rows] * self.session_len[cand])
        # Keep the k most similar candidates per row; score items by summed similarity.
        sim_m = sp.csr_matrix((sims, (rows, cand)), shape=overlap.shape)
        nidx, nval = top_k_rows(sim_m, self.k, pad=0)
        w = sp.csr_matrix(
            (nval.ravel(), (np.repeat(np.arange(len(x)), self.k), nidx.ravel())),
            shape=overlap.shape,
        )
        scores = (w @ self.sessions).toarray()
        return torch.as_tensor(scores, dtype=torch.float32, device=x.device)
