"""GRU4Rec's losses over the sampled score matrix, exactly as the reference codes them.

O has shape M x (M + n_sample): column j < M is the target of row j (so the target
of row i is O[i, i]), the rest are the shared sampled negatives. Every loss returns
the *sum* over rows; the caller divides by the configured batch_size, as the
reference does (not by the number of active rows).
TOP1, BPR and TOP1-max exist only in the original Theano code; they are here for the
ablations of the 2015/2018 papers and are not recommended (vanishing gradients).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def log_q_shift(tables: tuple[torch.Tensor, torch.Tensor], cols: torch.Tensor, n_targets: int):
    """The logQ shift of the scored columns, from the per-item shifts (as a target, as a
    sampled negative): the first n_targets columns are the targets."""
    as_target, as_sample = tables
    return torch.cat(
        [as_target.index_select(0, cols[:n_targets]), as_sample.index_select(0, cols[n_targets:])]
    )


def _diag(O: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(O)[:, None]


def softmax_neg(O: torch.Tensor) -> torch.Tensor:
    """Softmax over each row with the target (diagonal) excluded."""
    hm = torch.ones_like(O)
    hm.diagonal().zero_()
    X = O * hm
    e = torch.exp(X - X.max(dim=1, keepdim=True)[0]) * hm
    return e / e.sum(dim=1, keepdim=True)


LOG_EPS = math.log(1e-24)


def cross_entropy(O: torch.Tensor, log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy on the target column; log_q is logq*log(P) per column.

    The reference computes -log(softmax_diag + 1e-24). A fused log_softmax floored at
    log(1e-24) is the same value wherever softmax_diag >> 1e-24 and, like the reference,
    gives no gradient where the probability has underflowed; it is one kernel instead
    of eight.
    """
    if log_q is not None:
        O = O - log_q
    return -torch.log_softmax(O, dim=1).diagonal().clamp(min=LOG_EPS).sum()


def bpr_max(O: torch.Tensor, bpreg: float) -> torch.Tensor:
    sm = softmax_neg(O)
    pairwise = torch.sigmoid(_diag(O) - O) * sm
    return torch.sum(-torch.log(pairwise.sum(dim=1) + 1e-24) + bpreg * torch.sum(O**2 * sm, dim=1))


def top1_max(O: torch.Tensor) -> torch.Tensor:
    sm = softmax_neg(O)
    return torch.sum(sm * (torch.sigmoid(O - _diag(O)) + torch.sigmoid(O**2)))


def top1(O: torch.Tensor) -> torch.Tensor:
    """Per row: mean(sigmoid(O - o_t) + sigmoid(O^2)) - sigmoid(o_t^2)/n_columns.

    Theano broadcasts a (M,) row mean against a (M, 1) column here, which multiplies
    the summed loss by M; Adagrad is invariant to a constant loss scale, so the
    per-row form below trains the same way and keeps the loss readable.
    """
    d = _diag(O)
    per_row = torch.mean(torch.sigmoid(O - d) + torch.sigmoid(O**2), dim=1, keepdim=True)
    return torch.sum(per_row - torch.sigmoid(d**2) / O.shape[1])


def bpr(O: torch.Tensor) -> torch.Tensor:
    """Theano's BPR: the target column is included (a constant log 2 per row)."""
    return torch.sum(-torch.log(torch.sigmoid(_diag(O) - O)))


def final_activation(O: torch.Tensor, elu_param: float) -> torch.Tensor:
    """ELU(elu_param) on scores for the ranking losses; 0 means linear."""
    return F.elu(O, elu_param) if elu_param > 0 else O


def compute_loss(
    name: str,
    O: torch.Tensor,
    *,
    bpreg: float = 1.0,
    elu_param: float = 0.5,
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum of the named loss over the rows of O (see module docstring)."""
    if name == "ce":
        return cross_entropy(O, log_q)
    O = final_activation(O, elu_param)
    if name == "bpr-max":
        return bpr_max(O, bpreg)
    if name == "top1-max":
        return top1_max(O)
    if name == "top1":
        return top1(O)
    if name == "bpr":
        return bpr(O)
    raise ValueError(f"loss: unknown '{name}'")
