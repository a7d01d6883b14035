"""Ranks under GRU4Rec's tie modes and the next-item metrics computed from them.

A target's rank comes from how many items score above it (gt) and how many score
exactly the same, the target included (eq):
  standard     gt + 1                      (optimistic: ties rank below the target)
  conservative gt + eq                     (pessimistic: ties rank above it)
  median       gt + (eq - 1)/2 + 1         (expected rank under random tie-breaking)
  tiebreaking  gt + 1 + U{0..eq-1}         (one random draw, seeded)
"""

from __future__ import annotations

import math

import torch

TIE_MODES = ("standard", "conservative", "median", "tiebreaking")


def check_tie_mode(mode: str, option: str = "eval.tie_mode") -> None:
    """The one check of a tie mode, wherever one is chosen."""
    if mode not in TIE_MODES:
        raise ValueError(f"{option}: unknown '{mode}'; expected one of {', '.join(TIE_MODES)}")


def ranks_from_scores_(
    scores: torch.Tensor, target: torch.Tensor, mode: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rank of target (M x 1) among scores (M x n_items); overwrites `scores`.

    Comparing in place (float 0/1 in the scores' own memory) and summing floats avoids
    materialising an int64 copy of an M x n_items mask, which dominated evaluation
    time; float32 counts are exact up to 2^24 items.
    """
    if mode == "standard":
        return scores.gt_(target).sum(1).double() + 1
    if mode == "conservative":
        return scores.ge_(target).sum(1).double()
    gt, eq = tie_counts_(scores, target)
    return ranks_from_counts(gt, eq, mode, generator)


def tie_counts_(
    scores: torch.Tensor, target: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt, eq) of target (M x 1) among scores (M x n_items), as float counts; overwrites
    `scores`, and `out` (a buffer of the scores' shape, new if None). Both masks are 0/1
    floats summed as floats, like ranks_from_scores_: summing bool masks widens them to
    int64 first, which is slower (benchmarks/tie_counting.py)."""
    out = torch.empty_like(scores) if out is None else out
    gt = torch.gt(scores, target, out=out).sum(1)
    return gt, scores.ge_(target).sum(1) - gt


def ranks_from_counts(
    gt: torch.Tensor, eq: torch.Tensor, mode: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    gt, eq = gt.double(), eq.double()
    if mode == "standard":
        return gt + 1
    if mode == "conservative":
        return gt + eq
    if mode == "median":
        return gt + (eq - 1) / 2 + 1
    if mode == "tiebreaking":
        u = torch.rand(gt.shape, generator=generator, device=gt.device, dtype=torch.float64)
        return gt + 1 + torch.floor(u * eq)
    check_tie_mode(mode)
    raise AssertionError(mode)  # every valid mode returned above


def per_event_metric(ranks: torch.Tensor, name: str, k: int) -> torch.Tensor:
    """Each event's value of metric@k (float64): the hit for recall/hr, the reciprocal rank
    for mrr, the DCG gain 1/log2(rank + 1) for ndcg; 0 for a miss (rank > k)."""
    hit = ranks <= k
    if name in ("recall", "hr"):
        return hit.double()
    if name == "mrr":
        return torch.where(hit, 1.0 / ranks, 0.0)
    if name == "ndcg":
        return torch.where(hit, math.log(2) / torch.log(ranks + 1), 0.0)
    raise ValueError(f"unknown metric '{name}@{k}'; expected recall, hr, mrr or ndcg @K")


METRICS = ("recall", "hr", "mrr", "ndcg")


def metric_names(cutoffs) -> set[str]:
    """The names every evaluation records (see metrics_from_ranks)."""
    return {f"{m}@{k}" for m in METRICS for k in cutoffs}


def metrics_from_ranks(ranks: torch.Tensor, cutoffs: list[int]) -> dict[str, float]:
    """Recall@N (= HR@N, one target per event), MRR@N and nDCG@N, averaged over events.

    A hit is rank <= N; misses count 0 in MRR and nDCG.
    """
    n = ranks.numel()
    out: dict[str, float] = {}
    if n == 0:
        raise ValueError("no evaluation events")
    for k in cutoffs:
        out[f"recall@{k}"] = per_event_metric(ranks, "recall", k).sum().item() / n
        out[f"hr@{k}"] = out[f"recall@{k}"]
        out[f"mrr@{k}"] = per_event_metric(ranks, "mrr", k).sum().item() / n
        out[f"ndcg@{k}"] = per_event_metric(ranks, "ndcg", k).sum().item() / n
    return out
