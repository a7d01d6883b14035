"""The embedded default dataset: seeded, labelled, and learnable beyond popularity."""

import numpy as np
import pytest
import torch

from bench.core.config import GRU4RecConfig
from bench.core.evaluate import evaluate
from bench.core.metrics import metrics_from_ranks, ranks_from_scores_
from bench.core.train import SessionParallelTrainer, fit
from bench.datasets import load_dataset
from bench.errors import BenchError

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


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_items": 0}, "dataset.params.n_items: got 0; expected a value >= 2"),
        ({"n_items": "abc"}, "dataset.params.n_items: got 'abc'; expected an integer"),
        ({"n_items": 10.5}, "dataset.params.n_items: got 10.5; expected an integer"),
        ({"p_follow": 1.5}, "dataset.params.p_follow: got 1.5; expected a value in [0.0, 1.0]"),
        ({"mean_length": True}, "dataset.params.mean_length: got True; expected a number"),
        ({"n_itemz": 5}, "dataset.params.n_itemz: not a parameter of the synthetic generator"),
    ],
)
def test_a_bad_generator_parameter_is_one_line_before_anything_is_drawn(params, message):
    ds = {"kind": "synthetic", "name": "synthetic", "params": SMALL | params}
    with pytest.raises(BenchError) as e:
        load_dataset(ds, "")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_config_lists_every_generator_parameter_at_its_default():
    """So each can be set without `+`, and the config documents the data it makes."""
    import inspect

    from omegaconf import OmegaConf

    from bench.data import synthetic
    from bench.paths import conf_dir

    listed = OmegaConf.load(conf_dir() / "dataset" / "synthetic.yaml").params
    defaults = {n: p.default for n, p in inspect.signature(synthetic.generate).parameters.items()}
    assert dict(listed) == defaults and list(synthetic.BOUNDS) == list(defaults)
    assert synthetic.check_params(defaults) is None


def test_a_tuning_fraction_that_is_not_a_number_is_one_line():
    ds = {"kind": "synthetic", "name": "synthetic", "params": SMALL}
    ds["tune"] = {"valid_fraction": "x"}
    with pytest.raises(BenchError) as e:
        load_dataset(ds, "", "tune")
    assert str(e.value) == "dataset.tune.valid_fraction: got 'x'; expected a number in (0, 1)"
