"""Row-sparse Adagrad+momentum against the dense rule written out by hand."""

import math

import pytest
import torch

from bench.core.optim import IndexedAdagradM, IndexedAdam


def test_sparse_rows_match_hand_computed_adagrad_momentum():
    table = torch.nn.Parameter(torch.zeros(4, 1))
    opt = IndexedAdagradM([table], lr=0.1, momentum=0.5, eps=1e-6)
    idx = torch.tensor([2, 0, 2])  # row 2 used twice: its gradients add up
    rows = torch.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    rows.grad = rows.detach().clone()
    opt.step(sparse=[(table, idx, rows)])
    # row 2: g = 4, acc = 16, v = -0.1 * 4/sqrt(16+1e-6); row 0: g = 2, acc = 4
    v2 = -0.1 * 4 / math.sqrt(16 + 1e-6)
    v0 = -0.1 * 2 / math.sqrt(4 + 1e-6)
    assert table[2, 0].item() == pytest.approx(v2)
    assert table[0, 0].item() == pytest.approx(v0)
    assert table[1, 0].item() == 0 and table[3, 0].item() == 0
    st = opt.state[table]
    assert st["acc"][:, 0].tolist() == pytest.approx([4, 0, 16, 0])
    # Second step touching only row 0: row 2's accumulator and momentum stay as they were.
    rows2 = torch.tensor([[1.0]], requires_grad=True)
    rows2.grad = torch.tensor([[1.0]])
    opt.step(sparse=[(table, torch.tensor([0]), rows2)])
    m0 = 0.5 * v0 - 0.1 * 1 / math.sqrt(5 + 1e-6)
    assert table[0, 0].item() == pytest.approx(v0 + m0)
    assert st["mom"][2, 0].item() == pytest.approx(v2)
    assert st["acc"][2, 0].item() == pytest.approx(16)


def test_dense_and_sparse_paths_agree():
    torch.manual_seed(0)
    dense = torch.nn.Parameter(torch.randn(5, 3))
    sparse = torch.nn.Parameter(dense.detach().clone())
    opt_d = IndexedAdagradM([dense], lr=0.05, momentum=0.3)
    opt_s = IndexedAdagradM([sparse], lr=0.05, momentum=0.3)
    for _ in range(3):
        g = torch.randn(5, 3)
        dense.grad = g.clone()
        opt_d.step()
        rows = torch.zeros(5, 3, requires_grad=True)
        rows.grad = g.clone()
        opt_s.step(sparse=[(sparse, torch.arange(5), rows)])
    assert torch.allclose(dense, sparse, atol=1e-6)


def test_adam_rows_move_against_gradient():
    table = torch.nn.Parameter(torch.zeros(3, 2))
    opt = IndexedAdam([table], lr=0.01)
    rows = torch.ones(1, 2, requires_grad=True)
    rows.grad = torch.ones(1, 2)
    opt.step(sparse=[(table, torch.tensor([1]), rows)])
    assert table[1].tolist() == pytest.approx([-0.01, -0.01], rel=1e-4)
    assert table[0].abs().sum().item() == 0
