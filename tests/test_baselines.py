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
    # A: after [3] target 3 -> rank 1 (1.5 vs .75); after [3,3] target 4 -> rank 5 (0 + 0 pop...
    # lowest)
    # B: after [1] target 3 -> item1 = 1+2/3 first, item0 .75 second, item3 .5 fourth (item2 .667
    # third)
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
    assert one_by_one.tolist() == batched.tolist()  # same event order whatever the batch


def test_association_rules_count_position_pairs_hand_computed():
    from bench.baselines.rules import association_weights

    w = association_weights(TRAIN, 5).toarray()
    # session0 [0,1,0]: pairs (0,1),(0,0),(1,0) -> w01 += 2, w00 += 2 (a repeat pairs with
    # itself, both directions); session1 [2,0,1] -> w20, w21, w01 += 1; session2 [2,3] -> w23.
    assert w[0, 1] == w[1, 0] == 3
    assert w[0, 0] == 2 and w[1, 1] == 0
    assert w[2, 0] == w[2, 1] == w[2, 3] == w[3, 2] == 1
    assert w.sum() == 2 * 3 + 2 + 2 * 3


def test_sequential_rules_weight_one_over_gap_hand_computed():
    from bench.baselines.rules import sequential_weights

    w = sequential_weights(TRAIN, 5, steps=2).toarray()
    # [0,1,0]: 0->1 (gap 1), 1->0 (1), 0->0 (gap 2: 1/2); [2,0,1]: 2->0, 0->1, 2->1 (1/2); [2,3]:
    # 2->3.
    expected = np.zeros((5, 5))
    expected[0, 1], expected[1, 0], expected[0, 0] = 2.0, 1.0, 0.5
    expected[2, 0], expected[2, 1], expected[2, 3] = 1.0, 0.5, 1.0
    np.testing.assert_allclose(w, expected)
    assert sequential_weights(TRAIN, 5, steps=1).toarray()[2, 1] == 0


def test_rules_score_from_the_current_item_with_pruning():
    sr = make_baseline("sr", {"steps": 2, "pruning": 20}).fit(TRAIN, 5)
    scores = sr.step_all(torch.tensor([2, 4]), sr.init_hidden(2))
    assert scores[0].tolist() == pytest.approx([1.0, 0.5, 0.0, 1.0, 0.0])
    assert scores[1].tolist() == [0.0] * 5  # no rules for item 4
    pruned = make_baseline("sr", {"steps": 2, "pruning": 1}).fit(TRAIN, 5)
    assert (pruned.step_all(torch.tensor([2]), [])[0] > 0).sum().item() == 1
    ar = make_baseline("ar", {"pruning": 2}).fit(TRAIN, 5)
    assert ar.step_all(torch.tensor([0]), [])[0].tolist() == pytest.approx([2.0, 3.0, 0, 0, 0])


# Neighbour sessions in time order: n0 = [0,1], n1 = [1,2,3], n2 = [3,4]; current s = [1, 3].
NEIGHBOURS = sessions([0, 1], [1, 2, 3], [3, 4])


def run_session(model, items):
    H = model.init_hidden(1)
    for item in items:
        scores = model.step_all(torch.tensor([item]), H)[0]
    return scores


@pytest.mark.parametrize(
    "k, sample_size, expected",
    [
        # weights: item1 1/2, item3 2/2; sim = weighted overlap / |s|: n0 .25, n1 .75, n2 .5;
        # vote = sim / step (step 2 for n0: its newest shared item is item1, one step back).
        (100, 100, [0.125, 0.875, 0.75, 1.25, 0.5]),
        (2, 100, [0.0, 0.75, 0.75, 1.25, 0.5]),  # the two most similar: n1, n2
        (100, 2, [0.0, 0.75, 0.75, 1.25, 0.5]),  # the two most recent: n2, n1
    ],
)
def test_vsknn_position_weights_and_decay_hand_computed(k, sample_size, expected):
    vsknn = make_baseline("vsknn", {"k": k, "sample_size": sample_size}).fit(NEIGHBOURS, 5)
    assert run_session(vsknn, [1, 3]).tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("lambda_snh", [1e12, 2.0])
def test_stan_three_decays_hand_computed(lambda_snh):
    stan = make_baseline(
        "stan",
        {"lambda_spw": 1.0, "lambda_snh": lambda_snh, "lambda_inh": 1.0, "sample_size": 10},
    ).fit(NEIGHBOURS, 5)
    e = math.exp
    w1, w3 = e(-1), 1.0  # item1 one position before the last, item3 the last
    norm = math.sqrt(w1**2 + w3**2)
    age = {0: 3, 1: 2, 2: 1}  # training sessions counted back from the newest
    sim = {
        0: w1 / (norm * math.sqrt(2)) * e(-age[0] / lambda_snh),
        1: (w1 + w3) / (norm * math.sqrt(3)) * e(-age[1] / lambda_snh),
        2: w3 / (norm * math.sqrt(2)) * e(-age[2] / lambda_snh),
    }
    # Votes decay with the distance to the neighbour's last shared item:
    # n0 anchor item1 (pos 2): item0 e^-1, item1 1; n1 anchor item3 (pos 3): item1 e^-2,
    # item2 e^-1, item3 1; n2 anchor item3 (pos 1): item3 1, item4 e^-1.
    expected = [
        sim[0] * e(-1),
        sim[0] + sim[1] * e(-2),
        sim[1] * e(-1),
        sim[1] + sim[2],
        sim[2] * e(-1),
    ]
    assert run_session(stan, [1, 3]).tolist() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["vsknn", "stan", "bprmf"])
def test_stateful_baselines_batch_rows_are_independent_and_reset(name):
    model = make_baseline(name, {"n_iterations": 2} if name == "bprmf" else {}).fit(TRAIN, 5)
    test = sessions([0, 1, 2], [2, 3, 0], [3, 2, 2, 1])
    one_by_one = evaluate(model, test, [1, 5], "conservative", batch_size=1).ranks
    batched = evaluate(model, test, [1, 5], "conservative", batch_size=3).ranks
    assert one_by_one.tolist() == batched.tolist()  # same event order whatever the batch


def test_bprmf_sgd_step_hand_computed():
    from bench.baselines.bpr import BPRMF

    bpr = BPRMF(n_factors=1, learning_rate=0.1, lambda_session=0.1, lambda_item=0.2)
    bpr.session_factors = torch.tensor([[0.5]], dtype=torch.float64)
    bpr.item_factors = torch.tensor([[0.2], [-0.1]], dtype=torch.float64)
    bpr.sgd_step(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    c = 1 - 1 / (1 + math.exp(-(0.5 * (0.2 + 0.1))))
    assert bpr.session_factors.item() == pytest.approx(0.5 + 0.1 * (c * 0.3 - 0.1 * 0.5))
    assert bpr.item_factors[0].item() == pytest.approx(0.2 + 0.1 * (c * 0.5 - 0.2 * 0.2))
    assert bpr.item_factors[1].item() == pytest.approx(-0.1 + 0.1 * (-c * 0.5 + 0.2 * 0.1))


def test_bprmf_session_is_the_mean_of_its_item_factors():
    from bench.baselines.bpr import BPRMF

    bpr = BPRMF(n_factors=2)
    bpr.item_factors = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    scores = run_session(bpr, [0, 1])  # mean factor (0.5, 1.0)
    assert scores.tolist() == pytest.approx([0.5, 2.0, 1.5])


def test_bprmf_learns_co_occurrence():
    # Two item clusters that never share a session: after item 0, cluster {0,1,2} must win.
    train = sessions(*([[0, 1, 2]] * 30 + [[3, 4, 5]] * 30))
    bpr = make_baseline("bprmf", {"n_factors": 4, "n_iterations": 30, "learning_rate": 0.1})
    scores = run_session(bpr.fit(train, 6), [0])
    assert scores[[1, 2]].min() > scores[[3, 4, 5]].max()


def test_positions_csr_reads_the_state_block_row_by_row():
    """The session-KNN state (last positions, 0 = not seen) as CSR: rows in order, an
    empty row kept, columns ascending, float64 positions."""
    from bench.baselines.sknn import positions_csr

    pos = np.array([[0, 2, 0, 1], [0, 0, 0, 0], [3, 0, 0, 0]], dtype=np.float32)
    cur = positions_csr(pos)
    assert cur.indptr.tolist() == [0, 2, 2, 3]
    assert cur.indices.tolist() == [1, 3, 0]
    assert cur.data.tolist() == [2.0, 1.0, 3.0] and cur.data.dtype == np.float64
    assert cur.shape == (3, 4) and cur.has_sorted_indices
