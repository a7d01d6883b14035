"""Shared negative samples drawn by popularity^alpha from a store refilled on the device."""

from __future__ import annotations

import numpy as np
import torch


class NegativeSampler:
    """`n_sample` item indices per step, shared by the whole mini-batch.

    Like the official SampleCache, a store of `store_size // n_sample` rows is drawn at
    once (uniform numbers + binary search in the cumulative distribution) and handed
    out row by row; the pointer is a host integer, so no step waits for the device.
    """

    def __init__(
        self,
        support: np.ndarray,
        n_sample: int,
        sample_alpha: float,
        store_size: int,
        device: torch.device,
        generator: torch.Generator,
    ):
        self.n_sample = n_sample
        self.device = device
        self.generator = generator
        weights = np.asarray(support, dtype=np.float64) ** sample_alpha
        cdf = np.cumsum(weights) / weights.sum()
        cdf[-1] = 1.0
        self.cdf = torch.as_tensor(cdf, dtype=torch.float32, device=device)
        self.rows = max(1, store_size // n_sample) if n_sample > 0 else 0
        self.pointer = self.rows
        self.store: torch.Tensor | None = None

    def _refill(self) -> None:
        u = torch.rand(self.rows * self.n_sample, generator=self.generator, device=self.device)
        self.store = torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.cdf) - 1)
        self.store = self.store.view(self.rows, self.n_sample)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        if self.pointer >= self.rows:
            self._refill()
        row = self.store[self.pointer]
        self.pointer += 1
        return row
