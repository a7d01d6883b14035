"""Sequence-aware GRU4Rec (model=gru4rec_seq): padding, gradients through time, the shared
evaluator with seen-item filtering, and the entry point on MovieLens."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.core.bptt import padded_sequences, sequence_loss, sequence_outputs
from bench.core.config import BPTTConfig, GRU4RecConfig
from bench.core.metrics import metrics_from_ranks
from bench.core.model import GRU4RecModel
from bench.data.sessions import Sessions


def sessions(*seqs):
    items = np.concatenate([np.asarray(s) for s in seqs]).astype(np.int64)
    offsets = np.r_[0, np.cumsum([len(s) for s in seqs])].astype(np.int64)
    return Sessions(items=items, offsets=offsets, session_ids=np.arange(len(seqs)))


def model(n_items=12, layers=(8,)):
    m = GRU4RecModel(n_items, GRU4RecConfig(layers=list(layers), dropout_p_hidden=0.0))
    m.reset_parameters(torch.Generator().manual_seed(0))
    return m


def test_padding_never_leaks_into_the_loss():
    m = model()
    long, short = [1, 2, 3, 4, 5, 6], [7, 8, 9]
    x, y = padded_sequences(sessions(long, short), max_len=200)
    assert y.tolist()[1] == [8, 9, -1, -1, -1]  # right-padded targets
    both = sequence_loss(m, x, y, training=False)
    xl, yl = padded_sequences(sessions(long), 200)
    xs, ys = padded_sequences(sessions(short), 200)
    alone = (
        5 * sequence_loss(m, xl, yl, training=False) + 2 * sequence_loss(m, xs, ys, training=False)
    ) / 7
    assert both.item() == pytest.approx(alone.item(), rel=1e-6)
    # Changing what sits under the padding changes nothing.
    x2 = x.clone()
    x2[1, 3:] = 11
    assert sequence_loss(m, x2, y, training=False).item() == pytest.approx(both.item(), rel=1e-6)


def test_max_len_keeps_the_last_items():
    x, y = padded_sequences(sessions(list(range(10))), max_len=3)
    assert x.tolist() == [[6, 7, 8]] and y.tolist() == [[7, 8, 9]]


def test_bptt_gradients_reach_earlier_positions_unlike_session_parallel_steps():
    m = model()
    x = torch.tensor([[3, 1, 2, 4, 5]])  # item 3 only at the first position
    out = sequence_outputs(m, x, training=False)
    (grad,) = torch.autograd.grad(out[0, -1].sum(), m.Wy)  # Wy is also the input table
    assert grad[3].abs().sum() > 0  # the last output depends on the first input through time
    # The session-parallel trainer detaches the hidden state after every step (as the
    # official code does): there the last output has no path back to the first input.
    H = m.init_hidden(1)
    for t in range(5):
        h = m._input_and_hidden(H, m.input_rows(x[:, t]), training=False)
        H = [v.detach() for v in H]
    (grad,) = torch.autograd.grad(h.sum(), m.Wy)
    assert grad[3].abs().sum() == 0 and grad[5].abs().sum() > 0


def test_sampled_cross_entropy_ignores_accidental_hits():
    m = model()
    x, y = padded_sequences(sessions([1, 2, 3]), 200)
    negatives = torch.tensor([2, 3, 7])  # contains the targets themselves
    loss = sequence_loss(m, x, y, negatives, training=False)
    out = sequence_outputs(m, x, training=False)[0]
    scores = out @ m.Wy.T + m.By
    by_hand = []
    for pos, target in enumerate([2, 3]):
        others = [n for n in (2, 3, 7) if n != target]
        row = torch.cat([scores[pos, [target]], scores[pos, others]])
        by_hand.append(-torch.log_softmax(row, 0)[0])
    assert loss.item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-5)


def test_ndcg_hr_hand_checked():
    m = metrics_from_ranks(torch.tensor([1.0, 3.0, 30.0]), [10])
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + 0) / 3)  # 0.5


def test_early_stopping_restores_the_best_epoch():
    """Lightning's EarlyStopping: best at epoch 2 of the scripted validation values, two
    epochs without improvement (patience 2), then the epoch-2 weights are put back."""
    from bench.lit import SequenceModule, fit_module
    from bench.methods.base import FitContext

    m = model()
    train = sessions(*[[1, 2, 3, 4]] * 20)
    values = iter([0.3, 0.5, 0.4, 0.2, 0.1, 0.6])
    snapshots = []

    def validate():
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"ndcg@10": next(values)}

    cfg = BPTTConfig(n_epochs=6, patience=2, batch_size=8)
    module = SequenceModule(m, train, cfg, validate, seed=0)
    best = fit_module(module, cfg.n_epochs, FitContext("cpu", 0, None), cfg.patience)
    assert best == 1 and len(module.history) == 4
    assert [e.valid["ndcg@10"] for e in module.history] == [0.3, 0.5, 0.4, 0.2]
    assert torch.equal(m.state_dict()["Wy"], snapshots[1]["Wy"])
    assert not torch.equal(snapshots[3]["Wy"], snapshots[1]["Wy"])  # it did train on


@pytest.mark.real_data
def test_bptt_entry_point_on_ml_100k(shared_data, tmp_path):
    out = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "model=gru4rec_seq",
            "dataset=ml-100k",
            "n_epochs=2",
            "max_len=50",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "BENCH_CACHE_DIR": str(tmp_path / "c")},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rec = json.loads((out / "result.json").read_text())
    assert rec["training"] == "bptt" and rec["protocol"]["seen_item_filtering"] is True
    assert rec["protocol"]["evaluated_events"] == 940  # 3 of 943 held-out items unseen in training
    assert len(rec["epochs"]) == 2 and "ndcg@10" in rec["epochs"][0]["eval"]


def test_a_bptt_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path):
    """Epoch-end checkpoint after 3 of 5 epochs: Adam's moments, the shuffling and sampling
    generator, dropout and the early-stopping state carry over exactly."""
    from bench.lit import SequenceModule, fit_module
    from bench.methods.base import FitContext

    train = sessions(*[[1, 2, 3, 4, 5], [2, 3, 4], [5, 6, 7, 8], [9, 10, 11]] * 6)
    cfg = BPTTConfig(
        layers=[8],
        n_epochs=5,
        patience=2,
        batch_size=4,
        n_sample=4,
        sample_alpha=0.5,
        dropout_p_hidden=0.3,
    )

    def run(n_epochs, out, resume=None):
        torch.manual_seed(3)
        m = GRU4RecModel(12, cfg)
        m.reset_parameters(torch.Generator().manual_seed(3))
        done = 3 if resume else 0  # epochs the checkpoint holds: their values are spent
        values = iter([0.1, 0.3, 0.2, 0.4, 0.35][done:])
        module = SequenceModule(m, train, cfg, lambda: {"ndcg@10": next(values)}, seed=3)
        ctx = FitContext("cpu", 3, None, checkpoint_dir=out, resume=resume)
        best = fit_module(module, n_epochs, ctx, cfg.patience)
        return best, [e.loss for e in module.history], m.state_dict()

    whole = run(5, tmp_path / "whole")
    run(3, tmp_path / "part")
    resumed = run(5, tmp_path / "resumed", resume=tmp_path / "part" / "last.ckpt")
    assert whole[0] == resumed[0] == 3 and whole[1] == resumed[1] and len(whole[1]) == 5
    for k, v in whole[2].items():
        assert torch.equal(v, resumed[2][k]), k
