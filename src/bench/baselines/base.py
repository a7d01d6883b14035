"""What every baseline shares: the evaluator's interface, stateless by default."""

from __future__ import annotations

import torch
from torch import nn


class Baseline(nn.Module):
    """A scorer the GRU4Rec evaluator can drive (see bench.core.evaluate).

    Stateless baselines keep these defaults; one with per-session state returns it from
    `init_hidden` (it is then reset at session starts and shrunk with the batch).
    """

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return []

    def output_table(self) -> None:
        return None
