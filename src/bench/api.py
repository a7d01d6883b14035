"""The public model interface: benchmark a model of your own.

Subclass `SessionModel` and name it in the configuration
(`python -m bench.run model=external model.target=my_pkg.my_model:MyModel`). The model
only scores: given session prefixes, a score for every item. The harness does the rest
for it exactly as for every other method: it trains on every prefix of every training
session (shuffled, `batch_size` prefixes per step, `n_epochs` epochs) with the loss and
optimizers the model defines, runs the per-epoch evaluation, pruning, early stopping,
logging and checkpoints, and ranks the test prefixes with the shared evaluator. The
constructor's keyword arguments are the model's knobs (`model.params.<name>`); a knob the
constructor does not take is a one-line error.

Plain PyTorch: nothing here imports Lightning, Hydra or the rest of the harness.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

PAD = -1  # the value that pads a prefix row on the right


class SessionModel(nn.Module, ABC):
    """Scores the next item of a session from its prefix.

    `prefixes` is a B x L int64 tensor of item indices (0 .. n_items - 1) in click order,
    left-aligned and padded on the right with `PAD`; `lengths` (B, int64, >= 1) counts the
    real items of each row. Set `max_prefix` to see only a prefix's most recent items.
    """

    max_prefix: int | None = None

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items

    @abstractmethod
    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """B x n_items scores, higher ranked first."""

    def loss(
        self, prefixes: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The training objective of one batch (targets: B item indices); by default the
        full-softmax cross-entropy of `score`."""
        return F.cross_entropy(self.score(prefixes, lengths), targets)

    def configure_optimizers(self):
        """An optimizer, or Lightning's {"optimizer": ..., "lr_scheduler": ...} (schedulers
        step once per epoch); by default Adam at 1e-3."""
        return torch.optim.Adam(self.parameters(), lr=1e-3)


__all__ = ["PAD", "SessionModel"]
