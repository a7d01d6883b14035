"""Session prefixes for models that score a whole prefix (bench.api.SessionModel).

Training: every prefix of every training session with its next item, the augmentation
SR-GNN's preprocessing writes to train.txt (and NARM's, STAMP's), kept as two index
arrays over the flat item array rather than as copied lists; a batch is gathered from
them on the device in a few tensor operations. Evaluation: `PrefixScorer` presents such a
model to the shared evaluator (core.evaluate), whose session-parallel walk carries each
row's items so far as its state, reset at session starts and shrunk with the batch like
GRU4Rec's hidden state; so every method is ranked by the same code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.api import PAD, SessionModel
from bench.data.sessions import Sessions, concat_ranges

MAX_EXACT_ITEM = 2**24  # item indices are carried in float32 evaluator state


def last_items(
    items: torch.Tensor, lengths: torch.Tensor, width: int, max_prefix: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `items` (B x >= width, the first `lengths` entries real) cut to `width`
    columns, PAD-padded; with `max_prefix`, only each row's most recent `max_prefix`."""
    if max_prefix is not None and width > max_prefix:
        start = (lengths - max_prefix).clamp(min=0)
        cols = start[:, None] + torch.arange(max_prefix, device=items.device)
        lengths = lengths.clamp(max=max_prefix)
        items = items.gather(1, cols.clamp(max=items.shape[1] - 1))
        width = max_prefix
    items = items[:, :width]
    real = torch.arange(width, device=items.device)[None, :] < lengths[:, None]
    return items.masked_fill(~real, PAD), lengths


class TrainingPrefixes:
    """Every (prefix, next item) pair of the training sessions; `batch(idx)` gathers some."""

    def __init__(self, train: Sessions, max_prefix: int | None, device: torch.device):
        lengths = train.lengths
        pairs = np.maximum(lengths - 1, 0)
        # Pair p: session session_of[p], prefix length prefix_len[p] (1 .. len - 1).
        self.start = torch.as_tensor(np.repeat(train.offsets[:-1], pairs), device=device)
        self.prefix_len = torch.as_tensor(
            concat_ranges(np.ones(len(pairs), dtype=np.int64), pairs), device=device
        )
        self.items = torch.as_tensor(train.items, device=device)
        self.max_prefix = max_prefix
        self.device = device

    def __len__(self) -> int:
        return len(self.prefix_len)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prefixes B x L, lengths, targets) of the pairs `idx`."""
        start, n = self.start[idx], self.prefix_len[idx]
        width = int(n.max())
        if self.max_prefix is not None:  # gather only the columns that are kept
            first = start + (n - self.max_prefix).clamp(min=0)
            n_kept = n.clamp(max=self.max_prefix)
            width = min(width, self.max_prefix)
        else:
            first, n_kept = start, n
        cols = first[:, None] + torch.arange(width, device=self.device)
        rows = self.items[cols.clamp(max=len(self.items) - 1)]
        prefixes, lengths = last_items(rows, n_kept, width, None)
        return prefixes, lengths, self.items[start + n]


class PrefixScorer(nn.Module):
    """A SessionModel as the evaluator's stepwise scorer: the state of a row is its session's
    items so far (index + 1, 0 = empty) and their count."""

    def __init__(self, model: SessionModel, width: int):
        super().__init__()
        if model.n_items >= MAX_EXACT_ITEM:
            raise ValueError(f"{model.n_items} items: prefix state holds at most {MAX_EXACT_ITEM}")
        self.model = model
        self.width = max(int(width), 1)  # the longest session the evaluator will walk

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [
            torch.zeros(batch, self.width, device=device),
            torch.zeros(batch, 1, device=device),
        ]

    def output_table(self) -> None:
        return None

    def step_all(self, x: torch.Tensor, H: list[torch.Tensor], table=None) -> torch.Tensor:
        seen, count = H
        seen[torch.arange(len(x), device=x.device), count[:, 0].long()] = x.float() + 1
        count += 1
        lengths = count[:, 0].long()
        width = int(lengths.max())
        prefixes, lengths = last_items(
            seen.long() - 1, lengths, width, self.model.max_prefix
        )  # empty cells read PAD (-1)
        scores = self.model.score(prefixes, lengths)
        if scores.shape != (len(x), self.model.n_items):
            raise ValueError(
                f"{type(self.model).__name__}.score returned shape {tuple(scores.shape)}; "
                f"expected (batch, n_items) = ({len(x)}, {self.model.n_items})"
            )
        return scores.float()
