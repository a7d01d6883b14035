"""The embedded default dataset: seeded, labelled, and learnable beyond popularity."""

import numpy as np
import torch

from bench.core.config import GRU4RecConfig
from bench.core.evaluate import evaluate
from bench.core.metrics import metrics_from_ranks, ranks_from_scores_
from bench.core.train import SessionParallelTrainer, fit
from bench.datasets import load_dataset

SMALL = {"n_items": 500, "n_train_sessions": 3000, "n_test_sessions": 500, "seed": 3}


def test_seeded_and_labelled():
    a = load_dataset({"kind": "synthetic", "name": "synthetic", "params": SMALL}, "")
    b = load_dataset({"kind": "synthetic", "name": "synthetic", "params": SMALL}, "")
    assert a.label.startswith("SYNTHETIC")
    assert (a.train.items == b.train.items).all() and (a.test.offsets == b.test.offsets).all()
    lengths = a.train.lengths
    assert lengths.min() >= 2 and lengths.max() > 3 * lengths.mean()  # long tail of lengths
    support = np.sort(a.train.support(len(a.item_map)))[::-1]
    assert support[:10].sum() > 0.15 * support.sum()  # Zipf-like head


def test_gru4rec_clearly_beats_popularity():
    d = load_dataset({"kind": "synthetic", "name": "synthetic", "params": SMALL}, "")
    cfg = GRU4RecConfig(
        layers=[64], batch_size=32, n_sample=128, n_epochs=3, learning_rate=0.1, logq=1.0
    )
    eng = SessionParallelTrainer(cfg, d.train, len(d.item_map), seed=0)
    fit(eng)
    gru = evaluate(eng.model, d.test, [20], "conservative").metrics
    # Popularity through the same rank computation: every event gets the support vector.
    support = torch.as_tensor(d.train.support(len(d.item_map)), dtype=torch.float32)
    first = np.zeros(d.test.n_events, dtype=bool)
    first[d.test.offsets[:-1]] = True
    targets = torch.as_tensor(d.test.items[~first])
    scores = support.expand(len(targets), -1).clone()
    pop = metrics_from_ranks(
        ranks_from_scores_(scores, support[targets][:, None], "conservative"), [20]
    )
    assert gru["recall@20"] > pop["recall@20"] + 0.2
    assert gru["mrr@20"] > 2 * pop["mrr@20"]
