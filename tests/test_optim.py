"""Row-sparse Adagrad+momentum against the dense rule written out by hand."""

import math

import pytest
import torch

from bench.core.optim import IndexedAdagradM, IndexedAdam, static_rows


def test_sparse_rows_match_hand_computed_adagrad_momentum():
    table = torch.nn.Parameter(torch.zeros(4, 1))
    opt = IndexedAdagradM([table], lr=0.1, momentum=0.5, eps=1e-6)
    idx = torch.tensor([2, 0, 2])  # row 2 used twice: its gradients add up
    grads = torch.tensor([[1.0], [2.0], [3.0]])
    opt.step(sparse=[(table, idx, grads)])
    # row 2: g = 4, acc = 16, v = -0.1 * 4/sqrt(16+1e-6); row 0: g = 2, acc = 4
    v2 = -0.1 * 4 / math.sqrt(16 + 1e-6)
    v0 = -0.1 * 2 / math.sqrt(4 + 1e-6)
    assert table[2, 0].item() == pytest.approx(v2)
    assert table[0, 0].item() == pytest.approx(v0)
    assert table[1, 0].item() == 0 and table[3, 0].item() == 0
    st = opt.state[table]
    assert st["acc"][:, 0].tolist() == pytest.approx([4, 0, 16, 0])
    # Second step touching only row 0: row 2's accumulator and momentum stay as they were.
    opt.step(sparse=[(table, torch.tensor([0]), torch.tensor([[1.0]]))])
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
        opt_s.step(sparse=[(sparse, torch.arange(5), g.clone())])
    assert torch.allclose(dense, sparse, atol=1e-6)


def test_adam_rows_move_against_gradient():
    table = torch.nn.Parameter(torch.zeros(3, 2))
    opt = IndexedAdam([table], lr=0.01)
    opt.step(sparse=[(table, torch.tensor([1]), torch.ones(1, 2))])
    assert table[1].tolist() == pytest.approx([-0.01, -0.01], rel=1e-4)
    assert table[0].abs().sum().item() == 0


@pytest.mark.parametrize("opt_cls", [IndexedAdagradM, IndexedAdam])
def test_static_rows_update_equals_the_unique_rows_update(opt_cls):
    """The sync-free dedup (for CUDA graphs) gives the same table and state."""
    g = torch.Generator().manual_seed(1)
    start = torch.randn(12, 3, generator=g)
    tables = {}
    for static in (False, True):
        table = torch.nn.Parameter(start.clone())
        kw = dict(lr=0.1, momentum=0.5) if opt_cls is IndexedAdagradM else dict(lr=0.1)
        opt = opt_cls([table], **kw)
        opt.static_rows = static
        gen = torch.Generator().manual_seed(2)
        for _ in range(4):
            idx = torch.randint(0, 12, (15,), generator=gen)  # many repeats
            opt.step(sparse=[(table, idx, torch.randn(15, 3, generator=gen))])
        tables[static] = (table.detach(), opt.state[table])
    assert torch.allclose(tables[True][0], tables[False][0], atol=1e-6)
    for name, value in tables[False][1].items():
        assert torch.allclose(tables[True][1][name], value, atol=1e-6), name


def test_static_rows_layout():
    rows, g = static_rows(torch.tensor([5, 2, 5, 9]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert rows.tolist() == [2, 5, 9, 9]  # three distinct rows, the last one repeated
    assert g.tolist() == [2.0, 4.0, 4.0, 4.0]
