"""Shared negative samples drawn by popularity^alpha from a store refilled on the device."""

from __future__ import annotations

import numpy as np
import torch


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table: O(1) exact sampling from a discrete distribution.

    Returns (keep probability, alias) per bucket: draw a bucket uniformly, keep it with
    its probability, else take its alias.
    """
    n = len(weights)
    prob = np.asarray(weights, dtype=np.float64) * n / np.sum(weights)
    alias = np.arange(n)
    small = [i for i in range(n) if prob[i] < 1.0]
    large = [i for i in range(n) if prob[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        alias[s] = g
        prob[g] -= 1.0 - prob[s]
        (small if prob[g] < 1.0 else large).append(g)
    for i in small + large:  # numerical leftovers are (almost exactly) full buckets
        prob[i] = 1.0
    return prob, alias


class NegativeSampler:
    """`n_sample` item indices per step, shared by the whole mini-batch.

    Like the official SampleCache, a store of `store_size // n_sample` rows is drawn at
    once on the device and handed out row by row; the pointer is a host integer, so no
    step waits for the device. The store is filled when the sampler is built (outside
    any epoch timing, as the official code does) and refilled when used up. Drawing
    uses an alias table (two uniform draws per sample) rather than a binary search in
    the cumulative distribution: the same distribution, refilled faster.
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
        prob, alias = alias_table(weights)
        self.prob = torch.as_tensor(prob, dtype=torch.float32, device=device)
        self.alias = torch.as_tensor(alias, dtype=torch.int64, device=device)
        self.rows = max(1, store_size // n_sample)
        self.store: torch.Tensor | None = None
        self._refill()

    def _refill(self, chunk: int = 1 << 20) -> None:
        """Draw a new store in chunks, so temporaries stay small next to the store itself."""
        self.fill_state = self.generator.get_state()  # redraws this store on resume
        n = self.rows * self.n_sample
        self.store = None  # let the old store go before the new one is drawn
        flat = torch.empty(n, dtype=torch.int64, device=self.device)
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            bucket = torch.randint(
                len(self.prob), (m,), generator=self.generator, device=self.device
            )
            coin = torch.rand(m, generator=self.generator, device=self.device)
            keep = coin < self.prob.index_select(0, bucket)
            flat[a : a + m] = torch.where(keep, bucket, self.alias.index_select(0, bucket))
        self.store = flat.view(self.rows, self.n_sample)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        if self.pointer >= self.rows:
            self._refill()
        row = self.store[self.pointer]
        self.pointer += 1
        return row

    def state_dict(self) -> dict:
        """The store is not saved (it can be hundreds of MB): the generator state it was
        drawn from redraws it identically, and the pointer says where the next row is;
        the generator's current state follows."""
        return {
            "fill_state": self.fill_state,
            "pointer": self.pointer,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Redraw the saved store, then put the generator back where it was when saved."""
        self.generator.set_state(state["fill_state"])
        self._refill()
        self.pointer = int(state["pointer"])
        self.generator.set_state(state["generator"])
