"""Sequence-aware GRU4Rec over user histories, trained through time (BPTT).

Not the official GRU4Rec (whose public code does not support it) but the variant behind
the published MovieLens numbers (Klenitskiy & Vasilev, RecSys 2023): each user's history,
truncated to its last `max_len` + 1 items, is one sequence; the same GRU stack as the
session-parallel model reads it from the start and every position predicts the next item
with a full-softmax cross-entropy (or a sampled one over `n_sample` negatives drawn by
the session-parallel sampler's store); gradients flow back through the whole sequence;
Adam; early stopping on a validation metric with patience. Padding (right, value 0) is
masked out of the loss, and evaluation goes through the shared evaluator.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.config import BPTTConfig
from bench.core.model import GRU4RecModel
from bench.core.negatives import NegativeSampler
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


@dataclass
class SeqEpoch:
    epoch: int
    loss: float
    seconds: float
    valid: dict[str, float]
    steps: int = 0  # Adam steps taken
    learning_rate: float = 0.0  # as the optimizer held it

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "loss": self.loss, "seconds": self.seconds, "steps": self.steps,
                "learning_rate": self.learning_rate, "eval": self.valid}  # fmt: skip


def fit_sequences(
    model: GRU4RecModel,
    train: Sessions,
    cfg: BPTTConfig,
    validate: Callable[[], dict[str, float]],
    seed: int = 0,
    on_epoch: Callable[[SeqEpoch], None] | None = None,
) -> list[SeqEpoch]:
    """Adam epochs over shuffled users until `cfg.stop_metric` (from `validate`) has not
    improved for `patience` epochs; the best epoch's weights are restored."""
    metric = cfg.stop_metric
    device = model.By.device
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = padded_sequences(train, cfg.max_len)
    sampler = None
    if cfg.n_sample > 0:
        support = train.support(model.n_items)
        sampler = NegativeSampler(
            support, cfg.n_sample, cfg.sample_alpha, 1000 * cfg.n_sample, torch.device("cpu"), gen
        )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    best, best_state, since_best, history = -np.inf, None, 0, []
    for epoch in range(cfg.n_epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x_all), generator=gen)
        total, count, steps = 0.0, 0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            x, y = x_all[idx], y_all[idx]
            width = int((y >= 0).sum(1).max())
            x, y = x[:, :width].to(device), y[:, :width].to(device)  # trim common padding
            negatives = sampler.next().to(device) if sampler is not None else None
            loss = sequence_loss(model, x, y, negatives)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
            steps += 1
        valid = validate()
        stats = SeqEpoch(epoch, total / max(count, 1), time.perf_counter() - t0, valid, steps,
                         opt.param_groups[0]["lr"])  # fmt: skip
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if valid[metric] > best:
            best, best_state, since_best = valid[metric], copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
