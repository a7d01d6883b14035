"""BPR-MF adapted to sessions, as in the GRU4Rec paper (official baselines.py BPR).

Training sessions play the users of matrix factorisation, trained with BPR's pairwise
loss by SGD: for an event (session u, item p) and a negative item n,
  c = 1 - sigmoid(U_u . (I_p - I_n)),
  U_u += lr (c (I_p - I_n) - lambda_session U_u), I_p += lr (c U_u - lambda_item I_p),
  I_n += lr (-c U_u - lambda_item I_n).
At prediction time a session is the mean of the factors of its items so far. Two
departures from the official loop, both for speed and neither changing the model: updates
are applied `batch_size` events at a time (the official code updates one event at a time),
and the negative is the item of a uniformly drawn training event (popularity-proportional;
the official code draws among the first n_items events only). The official item biases are
never updated (they stay 0), so they are left out.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.baselines.base import Baseline
from bench.data.sessions import Sessions


class BPRMF(Baseline):
    def __init__(
        self,
        n_factors: int = 100,
        n_iterations: int = 10,
        learning_rate: float = 0.01,
        lambda_session: float = 0.0,
        lambda_item: float = 0.0,
        sigma: float = 0.05,
        init_normal: bool = False,
        batch_size: int = 256,
        seed: int = 0,
    ):
        super().__init__()
        if n_factors < 1 or n_iterations < 0 or batch_size < 1 or learning_rate <= 0:
            raise ValueError(
                f"got n_factors={n_factors}, n_iterations={n_iterations}, batch_size={batch_size}, "
                f"learning_rate={learning_rate}; expected positive values (n_iterations >= 0)"
            )
        self.n_factors, self.n_iterations = n_factors, n_iterations
        self.learning_rate, self.sigma, self.init_normal = learning_rate, sigma, init_normal
        self.lambda_session, self.lambda_item = lambda_session, lambda_item
        self.batch_size, self.seed = batch_size, seed
        self.register_buffer("item_factors", torch.zeros(0, n_factors))
        self.session_factors = torch.zeros(0, n_factors)

    def _init(self, rows: int, gen: torch.Generator) -> torch.Tensor:
        if self.init_normal:
            return (
                torch.randn(rows, self.n_factors, generator=gen, dtype=torch.float64) * self.sigma
            )
        u = torch.rand(rows, self.n_factors, generator=gen, dtype=torch.float64)
        return u * 2 * self.sigma - self.sigma

    def sgd_step(self, u: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> None:
        """One BPR update for the events (u[e], p[e]) against negatives n[e]."""
        U, Item, lr = self.session_factors, self.item_factors, self.learning_rate
        uf, pf, nf = U[u], Item[p], Item[n]
        c = (1.0 - torch.sigmoid(((pf - nf) * uf).sum(1)))[:, None]
        U.index_add_(0, u, lr * (c * (pf - nf) - self.lambda_session * uf))
        Item.index_add_(0, p, lr * (c * uf - self.lambda_item * pf))
        Item.index_add_(0, n, lr * (-c * uf - self.lambda_item * nf))

    def fit(self, train: Sessions, n_items: int) -> BPRMF:
        gen = torch.Generator().manual_seed(self.seed)
        self.session_factors = self._init(train.n_sessions, gen)
        self.item_factors = self._init(n_items, gen)
        sessions = torch.as_tensor(np.repeat(np.arange(train.n_sessions), train.lengths))
        items = torch.as_tensor(train.items)
        for _ in range(self.n_iterations):
            order = torch.randperm(train.n_events, generator=gen)
            negatives = items[torch.randint(train.n_events, (train.n_events,), generator=gen)]
            for start in range(0, train.n_events, self.batch_size):
                e = order[start : start + self.batch_size]
                self.sgd_step(sessions[e], items[e], negatives[start : start + len(e)])
        self.item_factors = self.item_factors.float()
        self.session_factors = torch.zeros(0, self.n_factors)  # not needed for prediction
        return self

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [
            torch.zeros(batch, self.n_factors, device=device),
            torch.zeros(batch, 1, device=device),
        ]

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        total, count = H
        total += self.item_factors.index_select(0, x)
        count += 1
        return (total / count) @ self.item_factors.T
