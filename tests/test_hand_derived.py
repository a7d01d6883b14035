"""The hand-derived training step against autograd: losses, gradients, whole runs."""

import numpy as np
import pytest
import torch

from bench.core.config import GRU4RecConfig
from bench.core.hand_derived import bpr_max_grad, ce_grad
from bench.core.losses import bpr_max, cross_entropy, final_activation
from bench.core.train import SessionParallelTrainer, fit
from tests.conftest import make_sessions


def _scores(m=5, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g) * 2.0


def _autograd(loss_fn, O):
    O = O.clone().requires_grad_()
    L = loss_fn(O)
    L.backward()
    return L.detach(), O.grad


@pytest.mark.parametrize("with_logq", [False, True])
def test_ce_gradient_matches_autograd(with_logq):
    O = _scores()
    log_q = torch.linspace(-1.0, 2.0, O.shape[1]) if with_logq else None
    L_ref, G_ref = _autograd(lambda o: cross_entropy(o, log_q), O)
    L, G = ce_grad(O - log_q if with_logq else O.clone(), scale=0.5)  # the step shifts the bias
    assert torch.allclose(L, L_ref, atol=1e-5)
    assert torch.allclose(G, 0.5 * G_ref, atol=1e-6)


def test_ce_row_whose_target_underflows_gets_no_gradient():
    O = _scores()
    O[1, 1] = -200.0  # softmax of the target far below 1e-24: floored, as in the reference
    L_ref, G_ref = _autograd(lambda o: cross_entropy(o), O)
    L, G = ce_grad(O.clone())
    assert L.item() == pytest.approx(L_ref.item(), rel=1e-6)
    assert L_ref.item() > 55  # the floored row contributes -log(1e-24)
    assert G[1].abs().sum().item() == 0 and G_ref[1].abs().sum().item() == 0
    assert torch.allclose(G, G_ref, atol=1e-6)


@pytest.mark.parametrize("elu_param", [0.5, 0.0])
@pytest.mark.parametrize("bpreg", [1.0, 0.3])
def test_bpr_max_gradient_matches_autograd(elu_param, bpreg):
    O = _scores(seed=3)
    L_ref, G_ref = _autograd(lambda o: bpr_max(final_activation(o, elu_param), bpreg), O)
    L, G = bpr_max_grad(O.clone(), bpreg, elu_param, scale=0.25)
    assert torch.allclose(L, L_ref, atol=1e-5)
    assert torch.allclose(G, 0.25 * G_ref, atol=1e-6)


def _engine(step, loss, seed=5, **kw):
    base = dict(
        layers=[12, 8], batch_size=6, n_sample=10, n_epochs=2, learning_rate=0.05, loss=loss
    )
    base.update(kw)
    train = make_sessions(np.array([4, 2, 7, 3, 5, 6, 2, 8, 3, 4, 5, 9, 2, 3]), n_items=30)
    return SessionParallelTrainer(GRU4RecConfig(**base), train, 30, seed=seed, step=step)


@pytest.mark.parametrize(
    "kw",
    [
        dict(loss="ce", logq=1.0),
        dict(loss="ce", momentum=0.5, dropout_p_embed=0.2, dropout_p_hidden=0.3),
        dict(loss="bpr-max", elu_param=0.5, bpreg=0.5),
        dict(loss="bpr-max", constrained_embedding=False, embedding=7, dropout_p_hidden=0.25),
        dict(loss="ce", constrained_embedding=False, embedding=5, n_sample=0),
        dict(loss="ce", logq=1.0, n_sample=0),  # logQ without samples: targets only
    ],
)
@pytest.mark.parametrize("compiled", ["split products", "torch's products", "none"])
def test_fused_step_trains_exactly_like_the_autograd_step(kw, compiled):
    """Two epochs, same seed: same losses and same weights (dropout masks included), with
    the compiled kernels (native.py) and either form of the large products
    (product_choice), and with their PyTorch forms."""
    runs = {}
    for step in ("fused", "autograd"):
        eng = _engine(step, **kw)
        assert (eng.hand_derived is not None) == (step == "fused")
        if eng.hand_derived is not None:
            eng.hand_derived.split_products = compiled == "split products"
        if compiled == "none":
            eng.optimizer.kernel = None
            if eng.hand_derived is not None:
                eng.hand_derived.kernel = None
        hist = fit(eng)
        runs[step] = ([h.loss for h in hist], eng.model.state_dict())
    assert runs["fused"][0] == pytest.approx(runs["autograd"][0], rel=1e-5)
    for name, value in runs["autograd"][1].items():
        assert torch.allclose(runs["fused"][1][name], value, atol=1e-5), name


def test_losses_without_a_fused_step_fall_back_to_autograd():
    assert _engine("fused", "top1-max").hand_derived is None
    assert _engine("fused", "ce", constrained_embedding=False, embedding=0).hand_derived is None
    with pytest.raises(ValueError, match="step: unknown 'jit'"):
        _engine("jit", "ce")
