"""Tie modes and metrics against hand-computed ranks and values."""

import math

import pytest
import torch

from bench.core.metrics import (
    metrics_from_ranks,
    ranks_from_counts,
    ranks_from_scores_,
    tie_counts_,
)


def test_tie_modes_hand_computed():
    # Target scores 0.5; items: one above (0.9), two tied with the target (0.5, 0.5 + itself).
    scores = torch.tensor([[0.9, 0.5, 0.1, 0.5, 0.5]])
    target = scores[:, [1]]
    assert ranks_from_scores_(scores.clone(), target, "standard").item() == 2  # 1 above + 1
    assert (
        ranks_from_scores_(scores.clone(), target, "conservative").item() == 4
    )  # 1 above + 3 equal
    assert ranks_from_scores_(scores.clone(), target, "median").item() == 3  # 1 + (3-1)/2 + 1
    g = torch.Generator().manual_seed(0)
    draws = {
        ranks_from_scores_(scores.clone(), target, "tiebreaking", g).item() for _ in range(200)
    }
    assert draws == {2.0, 3.0, 4.0}


def test_ranks_match_brute_force_in_every_mode():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 4, (50, 30), generator=g).float()  # many ties
    targets = torch.randint(0, 30, (50,), generator=g)
    for i in range(50):
        row, t = scores[i].tolist(), scores[i, targets[i]].item()
        gt = sum(v > t for v in row)
        eq = sum(v == t for v in row)
        tgt = scores[i : i + 1, targets[i]][:, None]
        assert ranks_from_scores_(scores[i : i + 1].clone(), tgt, "standard").item() == gt + 1
        assert ranks_from_scores_(scores[i : i + 1].clone(), tgt, "conservative").item() == gt + eq
        assert (
            ranks_from_scores_(scores[i : i + 1].clone(), tgt, "median").item()
            == gt + (eq - 1) / 2 + 1
        )


def test_tie_counts_hand_computed_with_masked_and_missing_scores():
    """Rows: plain ties; a target masked to -inf among other masked items (filter_seen);
    a NaN score, which is neither above nor equal to anything."""
    inf, nan = float("inf"), float("nan")
    scores = torch.tensor(
        [[3.0, 1.0, 2.0, 2.0, 2.0], [-inf, 0.5, -inf, 0.1, -inf], [nan, 2.0, 3.0, 1.0, 2.5]]
    )
    target = torch.tensor([[2.0], [-inf], [2.0]])
    buffer = torch.full((4, 5), 7.0)  # larger than needed: a view of its first rows is used
    gt, eq = tie_counts_(scores, target, buffer[:3])
    assert gt.tolist() == [1.0, 2.0, 2.0] and eq.tolist() == [3.0, 3.0, 1.0]
    assert buffer[3].tolist() == [7.0] * 5  # rows past the view untouched


def test_metrics_hand_computed():
    ranks = torch.tensor([1.0, 3.0, 25.0, 20.0], dtype=torch.float64)
    m = metrics_from_ranks(ranks, [1, 20])
    assert m["recall@1"] == pytest.approx(1 / 4)
    assert m["mrr@1"] == pytest.approx(1 / 4)
    assert m["recall@20"] == pytest.approx(3 / 4)  # rank 20 counts: rank <= N
    assert m["hr@20"] == m["recall@20"]
    assert m["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 20) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(21)) / 4)


def test_unknown_tie_mode_is_named():
    with pytest.raises(ValueError, match=r"eval\.tie_mode"):
        ranks_from_counts(torch.tensor([0]), torch.tensor([1]), "optimistic")
