"""Loss values against hand computation (scalar math, independent of torch)."""

import math

import pytest
import torch

from bench.core.config import canonical
from bench.core.losses import compute_loss

LOG2 = math.log(2.0)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize(
    "name, expected",
    [
        # 2 rows x 2 columns of zeros: every probability/sigmoid is 1/2.
        ("ce", 2 * LOG2),  # -log(1/2) per row
        ("bpr", 4 * LOG2),  # -log(sig(0)) for all 4 entries (target column included)
        ("bpr-max", 2 * LOG2),  # the only negative gets softmax weight 1: -log(1/2)
        ("top1", 2 * 0.75),  # mean(1/2 + 1/2) - (1/2)/2 per row
        ("top1-max", 2 * 1.0),  # 1 * (1/2 + 1/2) per row
    ],
)
def test_losses_on_zero_scores(name, expected):
    O = torch.zeros(2, 2, dtype=torch.float64)
    assert compute_loss(name, O, bpreg=1.0, elu_param=0.0).item() == pytest.approx(
        expected, rel=1e-9
    )


O_ROWS = [[1.0, 0.0, 2.0], [0.5, -1.0, 0.0]]  # M=2 targets on the diagonal, 1 shared sample


def _t():
    return torch.tensor(O_ROWS, dtype=torch.float64)


def test_cross_entropy_with_logq():
    logq = [[0.1, 0.2, 0.3]]  # per column, as logq*log(P)
    total = 0.0
    for i, row in enumerate(O_ROWS):
        z = [o - q for o, q in zip(row, logq[0])]
        total += -math.log(math.exp(z[i]) / sum(math.exp(v) for v in z))
    got = compute_loss("ce", _t(), log_q=torch.tensor(logq[0], dtype=torch.float64))
    assert got.item() == pytest.approx(total, rel=1e-9)


def _neg_softmax(row, i):
    ws = {j: math.exp(v) for j, v in enumerate(row) if j != i}
    s = sum(ws.values())
    return {j: w / s for j, w in ws.items()}


def test_bpr_max_with_elu_and_bpreg():
    elu = 0.5
    bpreg = 0.7
    total = 0.0
    for i, raw in enumerate(O_ROWS):
        row = [v if v > 0 else elu * (math.exp(v) - 1) for v in raw]
        w = _neg_softmax(row, i)
        total += -math.log(sum(w[j] * sig(row[i] - row[j]) for j in w))
        total += bpreg * sum(w[j] * row[j] ** 2 for j in w)
    got = compute_loss("bpr-max", _t(), bpreg=bpreg, elu_param=elu)
    assert got.item() == pytest.approx(total, rel=1e-9)


def test_top1_max_bpr_top1_linear():
    t1m = bpr = t1 = 0.0
    for i, row in enumerate(O_ROWS):
        w = _neg_softmax(row, i)
        t1m += sum(w[j] * (sig(row[j] - row[i]) + sig(row[j] ** 2)) for j in w)
        bpr += sum(-math.log(sig(row[i] - o)) for o in row)
        t1 += sum(sig(o - row[i]) + sig(o**2) for o in row) / 3 - sig(row[i] ** 2) / 3
    assert compute_loss("top1-max", _t(), elu_param=0).item() == pytest.approx(t1m, rel=1e-9)
    assert compute_loss("bpr", _t(), elu_param=0).item() == pytest.approx(bpr, rel=1e-9)
    assert compute_loss("top1", _t(), elu_param=0).item() == pytest.approx(t1, rel=1e-9)


def test_ce_is_not_a_double_softmax():
    # Scores already normalised by a softmax would give a different value: guard the raw path.
    O = _t()
    raw = compute_loss("ce", O).item()
    doubled = compute_loss("ce", torch.softmax(O, 1)).item()
    assert raw != pytest.approx(doubled)


def test_loss_names():
    assert canonical("cross-entropy") == "ce"
    with pytest.raises(ValueError, match="loss: unknown 'hinge'"):
        canonical("hinge")
