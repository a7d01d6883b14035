"""Model behaviour: embedding modes, hidden dropout, NaN stop, determinism, save/load."""

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.checkpoint import load_model, save_model
from bench.core.config import GRU4RecConfig
from bench.core.evaluate import evaluate
from bench.core.model import GRU4RecModel
from bench.core.train import NaNLossError, SessionParallelTrainer, fit
from bench.data.sessions import ItemMap
from tests.conftest import make_sessions


def small_cfg(**kw):
    base = dict(layers=[16], batch_size=8, n_sample=16, n_epochs=1, learning_rate=0.05, loss="ce")
    base.update(kw)
    return GRU4RecConfig(**base)


@pytest.mark.parametrize(
    "mode",
    [
        dict(constrained_embedding=True),
        dict(constrained_embedding=False, embedding=12),
        dict(constrained_embedding=False, embedding=0),
    ],
)
@pytest.mark.parametrize("loss", ["ce", "bpr-max", "top1-max", "top1", "bpr"])
def test_every_mode_and_loss_trains(mode, loss):
    train = make_sessions(np.full(60, 5), n_items=40)
    eng = SessionParallelTrainer(small_cfg(loss=loss, layers=[16, 16], **mode), train, 40)
    before = {k: v.clone() for k, v in eng.model.state_dict().items()}
    hist = fit(eng)
    assert np.isfinite(hist[0].loss)
    changed = [k for k, v in eng.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "Wy" in changed and any(k.startswith("cells") for k in changed)


def test_hidden_dropout_is_active_and_carried():
    cfg = small_cfg(dropout_p_hidden=0.5)
    model = GRU4RecModel(20, cfg)
    model.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.arange(4)
    H = model.init_hidden(4)
    model.step_sampled(x, torch.arange(8), H, None, training=True)
    # The carried state is the dropped-out output: about half of it is exactly zero.
    zero_frac = (H[0] == 0).float().mean().item()
    assert 0.25 < zero_frac < 0.75
    H2 = model.init_hidden(4)
    model.step_sampled(x, torch.arange(8), H2, None, training=False)
    assert (H2[0] == 0).float().mean().item() < 0.05  # no dropout at inference


def test_nan_loss_stops_with_clear_message():
    train = make_sessions(np.full(30, 4), n_items=20)
    eng = SessionParallelTrainer(small_cfg(), train, 20)
    with torch.no_grad():
        eng.model.Wy[3] = float("nan")
    with pytest.raises(NaNLossError, match="training diverged: loss became nan"):
        fit(eng)


def test_same_seed_same_metrics_and_save_load_round_trip(tmp_path):
    train = make_sessions(np.full(80, 6), n_items=30, seed=1)
    test = make_sessions(np.full(20, 5), n_items=30, seed=2)

    def run(seed):
        eng = SessionParallelTrainer(
            small_cfg(dropout_p_embed=0.2, dropout_p_hidden=0.2), train, 30, seed=seed
        )
        fit(eng)
        return eng, evaluate(eng.model, test, [5, 20], "conservative", batch_size=7)

    e1, r1 = run(5)
    _, r2 = run(5)
    _, r3 = run(6)
    assert r1.metrics == r2.metrics
    assert r1.metrics != r3.metrics
    path = tmp_path / "model.pt"
    item_map = ItemMap(pd.Index([f"i{i}" for i in range(30)], dtype=object))
    save_model(path, e1.model, e1.cfg, item_map)
    model, cfg, imap = load_model(path)
    assert cfg == e1.cfg and list(imap.ids) == list(item_map.ids)
    r4 = evaluate(model, test, [5, 20], "conservative", batch_size=7)
    assert torch.equal(r4.ranks, r1.ranks)


def test_lightning_harness_trains_like_the_bare_loop_and_measures_its_overhead():
    from bench.lit import GRU4RecModule, make_trainer

    train = make_sessions(np.full(60, 5), n_items=40, seed=4)
    # With dropout: Lightning must not draw from the generator of the dropout masks (its
    # data loader once drew a worker seed from it at every epoch start).
    cfg = small_cfg(n_epochs=2, dropout_p_embed=0.2, dropout_p_hidden=0.3)
    bare = SessionParallelTrainer(cfg, train, 40, seed=9)
    hist = fit(bare)
    eng = SessionParallelTrainer(cfg, train, 40, seed=9)
    module = GRU4RecModule(eng, chunk_steps=7)  # other chunking, same steps in the same order
    make_trainer(2, "cpu", progress_bar=False).fit(module)
    assert [s.loss for s in module.history] == pytest.approx([s.loss for s in hist], rel=1e-6)
    for k, v in bare.model.state_dict().items():
        assert torch.allclose(v, eng.model.state_dict()[k], atol=1e-6), k
    assert all(0 <= s.harness_overhead < 1 for s in module.history)


def test_session_parallel_early_stopping_restores_the_best_epoch():
    """Lightning's EarlyStopping on the metric the epoch hook returns: scripted values
    peak at epoch 2; with patience 2 training stops after epoch 4 and the epoch-2
    weights are back."""
    from bench.lit import GRU4RecModule, fit_module
    from bench.methods.base import FitContext

    train = make_sessions(np.full(60, 5), n_items=40, seed=4)
    eng = SessionParallelTrainer(small_cfg(n_epochs=6), train, 40, seed=9)
    values, snapshots = iter([0.3, 0.5, 0.4, 0.2, 0.1, 0.6]), []

    def hook(stats):
        snapshots.append({k: v.clone() for k, v in eng.model.state_dict().items()})
        return {"mrr@20": next(values)}

    module = GRU4RecModule(eng, chunk_steps=7, epoch_hook=hook, monitor="mrr@20")
    best = fit_module(module, 6, FitContext("cpu", 9, None), patience=2)
    assert best == 1 and [s.epoch for s in module.history] == [0, 1, 2, 3]
    for k, v in eng.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k
    assert not torch.equal(snapshots[3]["Wy"], snapshots[1]["Wy"])


def test_the_progress_bar_counts_each_epochs_events_to_its_total():
    """One bar per epoch in events (not Lightning's 500-step chunks), made after the
    module starts the epoch, ending at the epoch's events; Lightning's own bar is off."""
    from bench.lit import GRU4RecModule, WorkProgress, make_trainer

    seen = []

    class Spy(WorkProgress):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            task = self.bar.tasks[-1]
            seen.append((task.fields["epoch"], task.completed, task.total, task.fields["unit"]))

    train = make_sessions(np.full(60, 5), n_items=40, seed=4)  # 60 x 4 = 240 events an epoch
    module = GRU4RecModule(SessionParallelTrainer(small_cfg(n_epochs=2), train, 40, seed=9), 7)
    make_trainer(2, "cpu", progress_bar=False, callbacks=[Spy()]).fit(module)
    for epoch in ("1/2", "2/2"):
        done = [c for e, c, total, unit in seen if e == epoch]
        assert {(t, u) for e, _, t, u in seen if e == epoch} == {(240, "events")}
        assert len(done) == module.n_batches() and done[-1] == 240
        assert done == sorted(set(done))  # rising at every batch
    assert [s.events for s in module.history] == [240, 240]
    on = make_trainer(2, "cpu", progress_bar=True)
    assert on.progress_bar_callback is None
    assert sum(isinstance(c, WorkProgress) for c in on.callbacks) == 1


def test_the_progress_rate_reads_in_the_bars_unit():
    from types import SimpleNamespace

    from bench.lit import RateColumn

    task = SimpleNamespace(finished_speed=None, speed=36512.4, fields={"unit": "events"})
    assert RateColumn().render(task).plain == "36,512 events/s"
    assert (
        RateColumn().render(SimpleNamespace(finished_speed=None, speed=None, fields={})).plain == ""
    )
