"""Baselines against hand-computed scores, and through the shared evaluator."""

import math

import numpy as np
import pytest
import torch

from bench.baselines import ItemKNN, Pop, SessionPop, make_baseline
from bench.baselines.knn import item_similarities
from bench.core.evaluate import evaluate
from bench.data.sessions import Sessions
from bench.errors import BenchError


def sessions(*seqs):
    items = np.concatenate([np.asarray(s) for s in seqs]).astype(np.int64)
    offsets = np.r_[0, np.cumsum([len(s) for s in seqs])].astype(np.int64)
    return Sessions(items=items, offsets=offsets, session_ids=np.arange(len(seqs)))


# Supports: item0 x3, item1 x2, item2 x2, item3 x1, item4 x0.
TRAIN = sessions([0, 1, 0], [2, 0, 1], [2, 3])


def test_pop_scores_and_ranking():
    pop = Pop().fit(TRAIN, 5)
    scores = pop.step_all(torch.tensor([3]), pop.init_hidden(1))[0]
    assert scores.tolist() == pytest.approx([3 / 4, 2 / 3, 2 / 3, 1 / 2, 0.0])


def test_spop_session_counts_then_popularity_with_ties():
    sp = SessionPop().fit(TRAIN, 5)
    H = sp.init_hidden(1)
    sp.step_all(torch.tensor([3]), H)
    scores = sp.step_all(torch.tensor([4]), H)[0]
    # item3 and item4 seen once in the session: 1 + pop; others pop only.
    assert scores.tolist() == pytest.approx([3 / 4, 2 / 3, 2 / 3, 1 + 1 / 2, 1.0])
    # Ranking: item3 > item4 > item0 > item1 = item2 (a tie, kept by both counts).
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    assert order[:3] == [3, 4, 0]


def test_spop_state_is_reset_at_session_start_by_the_evaluator():
    sp = SessionPop().fit(TRAIN, 5)
    # Session A ends with item 3 twice; session B starts fresh in the same slot (batch 1).
    test = sessions([3, 3, 4], [1, 3])
    res = evaluate(sp, test, [1, 5], "conservative", batch_size=1)
    # A: after [3] target 3 -> rank 1 (1.5 vs .75); after [3,3] target 4 -> rank 5 (0 + 0 pop... lowest)
    # B: after [1] target 3 -> item1 = 1+2/3 first, item0 .75 second, item3 .5 fourth (item2 .667 third)
    assert res.ranks.tolist() == [1.0, 5.0, 4.0]


def test_itemknn_cosine_with_regularisation_hand_computed():
    lmbd, alpha = 1.0, 0.5
    sims = item_similarities(TRAIN, 5, lmbd, alpha).toarray()
    supp = np.array([3, 2, 2, 1, 0]) + lmbd
    # co(0,1): session0 has 0 twice and 1 once -> 2*1; session1 has 0 once and 1 once -> 1.
    co01 = 2 * 1 + 1 * 1
    assert sims[0, 1] == pytest.approx(co01 / math.sqrt(supp[0] * supp[1]))
    # co(2,3) = 1 (session2), co(0,3) = 0, diagonal 0.
    assert sims[2, 3] == pytest.approx(1 / math.sqrt(supp[2] * supp[3]))
    assert sims[0, 3] == 0 and sims[1, 1] == 0
    # alpha = 1: confidence-like, normalised by the first item's support only.
    conf = item_similarities(TRAIN, 5, 0.0, 1.0).toarray()
    assert conf[0, 1] == pytest.approx(co01 / 3) and conf[1, 0] == pytest.approx(co01 / 2)


def test_itemknn_keeps_only_n_sims_neighbours():
    knn = ItemKNN(n_sims=1, lmbd=1.0).fit(TRAIN, 5)
    scores = knn.step_all(torch.tensor([0]), [])[0]
    assert (scores > 0).sum().item() == 1
    assert scores.argmax().item() == 1  # item 1 is item 0's most similar item


def test_unknown_baseline_and_bad_params_are_one_line():
    with pytest.raises(BenchError, match="baseline: unknown 'sknn2'"):
        make_baseline("sknn2")
    with pytest.raises(BenchError, match=r"baseline\.params"):
        make_baseline("pop", {"k": 3})


@pytest.mark.parametrize(
    "k, sample_size, current, expected",
    [
        # {0} shares item 0 with s0={0,1} (cos 1/sqrt(2)) and s1={0,1,2} (cos 1/sqrt(3)).
        (100, 500, [0], [1 / math.sqrt(2) + 1 / math.sqrt(3)] * 2 + [1 / math.sqrt(3), 0, 0]),
        (100, 1, [0], [1 / math.sqrt(3)] * 3 + [0, 0]),  # only the most recent candidate, s1
        (1, 500, [0], [1 / math.sqrt(2)] * 2 + [0, 0, 0]),  # only the most similar, s0
        # {2,3}: s1 shares 1 item (1/sqrt(6)), s2={2,3} shares 2 (2/sqrt(4) = 1).
        (100, 500, [2, 3], [1 / math.sqrt(6)] * 2 + [1 + 1 / math.sqrt(6), 1.0, 0]),
    ],
)
def test_sknn_cosine_neighbours_hand_computed(k, sample_size, current, expected):
    from bench.baselines import SKNN

    knn = SKNN(k=k, sample_size=sample_size).fit(TRAIN, 5)
    H = knn.init_hidden(1)
    for item in current:
        scores = knn.step_all(torch.tensor([item]), H)[0]
    assert scores.tolist() == pytest.approx(expected, rel=1e-6)


def test_sknn_batch_rows_are_independent_and_reset():
    from bench.baselines import SKNN

    knn = SKNN().fit(TRAIN, 5)
    test = sessions([0, 1, 2], [2, 3, 0], [3, 2])
    one_by_one = evaluate(knn, test, [1, 5], "conservative", batch_size=1).ranks
    batched = evaluate(knn, test, [1, 5], "conservative", batch_size=3).ranks
    assert sorted(one_by_one.tolist()) == sorted(batched.tolist())
