"""Batched evaluation against a one-session-at-a-time brute force, in every tie mode."""

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.config import GRU4RecConfig
from bench.core.evaluate import SampledCandidates, evaluate
from bench.core.model import GRU4RecModel
from bench.data.sessions import ItemMap, to_sessions
from tests.conftest import make_sessions


def brute_force_ranks(model, sessions, mode):
    ranks = []
    with torch.no_grad():
        for s in range(sessions.n_sessions):
            items = sessions.items[sessions.offsets[s] : sessions.offsets[s + 1]]
            H = model.init_hidden(1)  # zero state at every session start
            for a, b in pairwise(items):
                scores = model.step_all(torch.tensor([a]), H)[0].numpy()
                t = scores[b]
                gt, eq = int((scores > t).sum()), int((scores == t).sum())
                ranks.append(
                    {"standard": gt + 1, "conservative": gt + eq, "median": gt + (eq - 1) / 2 + 1}[
                        mode
                    ]
                )
    return sorted(ranks)


@pytest.mark.parametrize("mode", ["standard", "conservative", "median"])
def test_batched_ranks_equal_brute_force(mode):
    cfg = GRU4RecConfig(layers=[8, 6], n_sample=0)
    model = GRU4RecModel(12, cfg)
    model.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():  # round the output table so that ties really occur
        model.Wy.copy_((model.Wy * 2).round() / 2)
    test = make_sessions([4, 2, 7, 3, 2, 5, 1, 6], n_items=12, seed=9)
    res = evaluate(model, test, [1, 5], mode, batch_size=3)
    assert sorted(res.ranks.tolist()) == brute_force_ranks(model, test, mode)
    assert res.n_events == int((test.lengths - 1).clip(min=0).sum())


def test_unknown_test_items_dropped_and_session_rechained():
    train = pd.DataFrame(
        {"SessionId": [1, 1, 2, 2], "ItemId": ["a", "b", "b", "c"], "Time": [0, 1, 2, 3]}
    )
    test = pd.DataFrame(
        {
            "SessionId": [7, 7, 7, 8, 8],
            "ItemId": ["a", "zz", "c", "zz", "b"],
            "Time": [10, 11, 12, 13, 14],
        }
    )
    imap = ItemMap.from_events(train)
    s = to_sessions(test, imap)
    assert s.n_dropped_events == 2
    assert s.offsets.tolist() == [0, 2, 3]  # session 7 re-chained to a -> c; 8 keeps one event
    assert [imap.ids[i] for i in s.items] == ["a", "c", "b"]


def test_filter_seen_removes_the_sessions_items_from_the_ranking():
    from bench.baselines import make_baseline
    from bench.data.sessions import Sessions

    def sessions(*seqs):
        items = np.concatenate([np.asarray(s) for s in seqs]).astype(np.int64)
        offsets = np.r_[0, np.cumsum([len(s) for s in seqs])].astype(np.int64)
        return Sessions(items=items, offsets=offsets, session_ids=np.arange(len(seqs)))

    train = sessions([0, 0, 0, 0], [1, 1, 1], [2, 2], [3])  # popularity 0 > 1 > 2 > 3 > 4
    pop = make_baseline("pop").fit(train, 5)
    test = sessions([0, 1, 2], [1, 3])
    plain = evaluate(pop, test, [1, 5], "conservative", batch_size=2).ranks.tolist()
    # Targets: 1 after [0], 2 after [0,1], 3 after [1]: POP ranks them 2, 3, 4.
    assert plain == [2.0, 3.0, 4.0]
    filtered = evaluate(pop, test, [1, 5], "conservative", batch_size=2, filter_seen=True)
    # With the session's items removed: 1 after [0] -> 1; 2 after [0,1] -> 1; 3 after [1] -> 3
    # (0 and 2 still above it; the new session does not inherit the first one's items).
    assert filtered.ranks.tolist() == [1.0, 1.0, 3.0]
    # A target already in the session is a miss when seen items are filtered.
    repeat = evaluate(pop, sessions([0, 0]), [1], "conservative", filter_seen=True)
    assert repeat.ranks.tolist() == [5.0] and repeat.metrics["recall@1"] == 0.0


def test_sampled_candidate_metrics_are_labelled_and_exclude_seen_items():
    from bench.baselines import make_baseline
    from bench.core.evaluate import SampledCandidates
    from bench.data.sessions import Sessions

    # Supports: item0 4, item1 3, item2 2, item3 1, items 4 and 5 never seen in training.
    items = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3], dtype=np.int64)
    train = Sessions(items=items, offsets=np.array([0, 4, 7, 9, 10]), session_ids=np.arange(4))
    test = Sessions(items=np.array([3, 4]), offsets=np.array([0, 2]), session_ids=np.arange(1))
    pop = make_baseline("pop").fit(train, 6)
    support = train.support(6)
    # Target 4 (score 0) after [3]; item 3 is filtered as seen. Full ranking, conservative:
    # 0, 1, 2 above it and 5 tied -> rank 5 of the 5 remaining items.
    full = evaluate(pop, test, [1, 5], "conservative", filter_seen=True)
    assert full.ranks.tolist() == [5.0]
    # All 4 unseen non-target items drawn: the same rank; one negative: rank 2 whichever it is
    # (above it, or tied with it under conservative ties); never the seen item 3.
    every = SampledCandidates.make(4, "uniform", support, "cpu")
    res = evaluate(pop, test, [1, 5], "conservative", filter_seen=True, sampled=every)
    assert res.metrics["sampled4_uniform_recall@5"] == 1.0 and res.metrics["recall@1"] == 0.0
    one = SampledCandidates.make(1, "popularity", support, "cpu")
    for seed in range(5):
        res = evaluate(pop, test, [2], "conservative", filter_seen=True, sampled=one, seed=seed)
        assert res.metrics["sampled1_popularity_recall@2"] == 1.0
        assert res.metrics["recall@2"] == 0.0  # the full-ranking metrics stay the main ones
    with pytest.raises(ValueError, match=r"eval\.sampled"):
        SampledCandidates.make(100, "random", support, "cpu")


def test_item_major_scores_in_a_reused_buffer_equal_the_textbook_product():
    """The evaluator's fast path (table @ h^T into one buffer, read through a transposed
    view) gives the scores of h @ Wy^T + By for every width the schedule shrinks to."""
    model = GRU4RecModel(50, GRU4RecConfig(layers=[16]))
    model.reset_parameters(torch.Generator().manual_seed(1))
    table, buffer = model.output_table(), torch.empty(50 * 8)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for width in (8, 5, 3):
            x = torch.randint(50, (width,), generator=gen)
            H = [torch.randn(width, 16, generator=gen)]
            scores = model.step_all(x, H, table, out=buffer)
            assert scores.shape == (width, 50) and scores.data_ptr() == buffer.data_ptr()
            torch.testing.assert_close(scores, H[0] @ model.Wy.T + model.By)


@pytest.mark.parametrize("primary", ["conservative", "standard", "tiebreaking"])
@pytest.mark.parametrize("filter_seen", [False, True])
def test_other_tie_modes_from_one_pass_equal_their_own_runs(primary, filter_seen):
    """`also_tie_modes` ranks every mode from the same scores: each mode's ranks and metrics
    equal those of an evaluation run for it alone, and the primary mode's are unchanged
    (sampled metrics and misses included)."""
    cfg = GRU4RecConfig(layers=[8], n_sample=0)
    model = GRU4RecModel(12, cfg)
    model.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():  # items i and i + 6 score alike: ties really occur
        model.Wy[6:] = model.Wy[:6]
        model.By[6:] = model.By[:6]
    test = make_sessions([4, 2, 7, 3, 2, 5, 1, 6], n_items=12, seed=9)
    support = np.bincount(test.items, minlength=12)
    sampled = SampledCandidates.make(3, "popularity", support, "cpu")
    others = ("standard", "conservative", "median", "tiebreaking")
    kw = dict(batch_size=3, filter_seen=filter_seen, extra_misses=2, seed=5)
    both = evaluate(model, test, [1, 5], primary, sampled=sampled, also_tie_modes=others, **kw)
    alone = evaluate(model, test, [1, 5], primary, sampled=sampled, **kw)
    assert both.metrics == alone.metrics and torch.equal(both.ranks, alone.ranks)
    assert set(both.also) == set(others) - {primary}
    for mode, metrics in both.also.items():
        assert metrics == evaluate(model, test, [1, 5], mode, **kw).metrics, mode
    # the modes differ here, so the test would see a mode ranked as another
    runs = {m: tuple(evaluate(model, test, [5], m, **kw).ranks.tolist()) for m in others}
    assert len(set(runs.values())) == len(others)
