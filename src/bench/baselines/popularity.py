"""POP and S-POP of the GRU4Rec paper (Hidasi et al. 2015; official baselines.py)."""

from __future__ import annotations

import torch

from bench.baselines.base import Baseline
from bench.data.sessions import Sessions


def _pop_scores(train: Sessions, n_items: int) -> torch.Tensor:
    """supp/(1+supp): monotone in the support and < 1, so it only breaks ties for S-POP."""
    supp = torch.as_tensor(train.support(n_items), dtype=torch.float32)
    return supp / (1.0 + supp)


class Pop(Baseline):
    """Most popular items of the training data, whatever the session."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pop", torch.zeros(0))

    def fit(self, train: Sessions, n_items: int) -> Pop:
        self.pop = _pop_scores(train, n_items)
        return self

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        return self.pop.expand(len(x), -1).clone()


class SessionPop(Pop):
    """Items seen most often in the session so far, ties broken by global popularity:
    score = count in session + supp/(1+supp)."""

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [torch.zeros(batch, len(self.pop), device=device)]

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        counts = H[0]
        counts[torch.arange(len(x), device=x.device), x] += 1.0
        return counts + self.pop
