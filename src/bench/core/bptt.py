"""Sequence-aware GRU4Rec over user histories, trained through time (BPTT).

Not the official GRU4Rec (whose public code does not support it) but the variant behind
the published MovieLens numbers (Klenitskiy & Vasilev, RecSys 2023): each user's history,
truncated to its last `max_len` + 1 items, is one sequence; the same GRU stack as the
session-parallel model reads it from the start and every position predicts the next item
with a full-softmax cross-entropy (or a sampled one over `n_sample` negatives drawn by
the session-parallel sampler's store); gradients flow back through the whole sequence.
Padding (right, value 0) is masked out of the loss, and evaluation goes through the
shared evaluator. The training loop (Adam, early stopping on a validation metric with
patience, best epoch restored) is Lightning's: bench.lit.SequenceModule.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.model import GRU4RecModel
from bench.data.sessions import Sessions


def padded_sequences(s: Sessions, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) as U x T int64, right-padded with -1: the last max_len transitions
    of each sequence (users with a single item have none and are left out)."""
    seqs = [s.items[a:b][-(max_len + 1) :] for a, b in zip(s.offsets[:-1], s.offsets[1:])]
    seqs = [q for q in seqs if len(q) > 1]
    width = max((len(q) - 1 for q in seqs), default=0)
    x = np.full((len(seqs), width), -1, dtype=np.int64)
    y = np.full((len(seqs), width), -1, dtype=np.int64)
    for i, q in enumerate(seqs):
        x[i, : len(q) - 1] = q[:-1]
        y[i, : len(q) - 1] = q[1:]
    return torch.as_tensor(x), torch.as_tensor(y)


def sequence_outputs(model: GRU4RecModel, x: torch.Tensor, training: bool) -> torch.Tensor:
    """Hidden outputs at every position (B x T x d), read from the first position on with
    no detaching: the backward pass reaches every earlier step."""
    H = model.init_hidden(x.shape[0], x.device)
    outs = []
    for t in range(x.shape[1]):
        e = model.input_rows(x[:, t].clamp(min=0))  # padding reads item 0, masked later
        outs.append(model._input_and_hidden(H, e, training))
    return torch.stack(outs, dim=1)


def sequence_loss(
    model: GRU4RecModel,
    x: torch.Tensor,
    y: torch.Tensor,
    negatives: torch.Tensor | None = None,
    training: bool = True,
) -> torch.Tensor:
    """Mean next-item cross-entropy over the real (unpadded) positions."""
    out = sequence_outputs(model, x, training)
    valid = y >= 0
    h, target = out[valid], y[valid]
    if negatives is None:
        logits = torch.addmm(model.By, h, model.Wy.T)
        return F.cross_entropy(logits, target)
    pos = (h * model.Wy[target]).sum(1) + model.By[target]
    neg = torch.addmm(model.By[negatives], h, model.Wy[negatives].T)
    neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))  # accidental hits
    logits = torch.cat([pos[:, None], neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(target))
