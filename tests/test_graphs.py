"""The graphed step path: its buffers and step body run eagerly on the CPU here."""

import numpy as np
import pytest
import torch

from bench.core.config import GRU4RecConfig
from bench.core.train import SessionParallelTrainer, fit
from tests.conftest import make_sessions

LENGTHS = np.array([4, 2, 7, 3, 5, 6, 2, 8, 3, 4, 5, 9, 2, 3, 6, 2])


def _engine(device="cpu", **kw):
    base = dict(layers=[12], batch_size=5, n_sample=10, n_epochs=2, learning_rate=0.05, loss="ce")
    base.update(kw)
    train = make_sessions(LENGTHS, n_items=30)
    return SessionParallelTrainer(
        GRU4RecConfig(**base), train, 30, seed=3, device=device, cuda_graphs=False
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(logq=1.0, momentum=0.4),
        dict(loss="bpr-max", dropout_p_embed=0.2, dropout_p_hidden=0.3, layers=[12, 6]),
        dict(constrained_embedding=False, embedding=6, n_sample=0),
    ],
)
def test_static_buffer_steps_train_exactly_like_the_eager_steps(kw):
    """Same losses and weights; the batch shrinks at the end of each epoch (eager tail)."""
    plain = _engine(**kw)
    hist_plain = fit(plain)  # dropout draws from the global generator, seeded per engine
    static = _engine(**kw)
    static.use_graphed_step(capture=False)
    hist_static = fit(static)
    assert [h.loss for h in hist_static] == pytest.approx([h.loss for h in hist_plain], rel=1e-5)
    for name, value in plain.model.state_dict().items():
        assert torch.allclose(static.model.state_dict()[name], value, atol=1e-5), name
    assert static.graphed.eager_runs > 0
    assert not static.full_width  # the tail ran eagerly, on the shrunk state
    assert static.H[0].shape[0] < 5


def test_cuda_graphs_need_a_gpu_and_a_graph_safe_step():
    with pytest.raises(ValueError, match="cuda_graphs: needs a CUDA device"):
        SessionParallelTrainer(
            GRU4RecConfig(layers=[8], batch_size=4, n_sample=4),
            make_sessions(LENGTHS, n_items=30),
            30,
            cuda_graphs=True,
        )
    with pytest.raises(ValueError, match="cuda_graphs: needs optimizer adagrad_m or sgd"):
        _engine(optimizer="adam", learning_rate=0.001, momentum=None).use_graphed_step(
            capture=False
        )
    with pytest.raises(ValueError, match="cuda_graphs: needs the hand-derived step"):
        _engine(loss="top1-max").use_graphed_step(capture=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replays_train_like_eager_cuda_steps():
    eager = _engine(device="cuda", logq=1.0)
    hist_eager = fit(eager)
    graphed = _engine(device="cuda", logq=1.0)
    graphed.use_graphed_step(capture=True, warmup=1)
    hist_graphed = fit(graphed)
    assert graphed.graphed.replays > 0
    assert [h.loss for h in hist_graphed] == pytest.approx([h.loss for h in hist_eager], rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_evaluates_after_lightning_training(tmp_path):
    """Lightning's teardown moves the module to the CPU at the end of fit; the run's
    evaluation after training (here the second tie mode) must still find the model on
    the GPU (it failed with a device mismatch in every complete GPU study trial)."""
    import json
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "trainer.accelerator=gpu",
            "n_epochs=1",
            "dataset.params.n_train_sessions=800",
            "dataset.params.n_test_sessions=100",
            "n_sample=64",
            "eval.also_tie_modes=[standard]",
            "save_model=false",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["device"] != "" and not record["device"].startswith("cpu")
    assert set(record["metrics_by_tie_mode"]) == {"conservative", "standard"}
