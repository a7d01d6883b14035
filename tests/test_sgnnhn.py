"""SGNN-HN (bench.peers.sgnnhn): its scores against a per-prefix computation written from
the model's definition (dense adjacency, padded nothing), its fused loss against
autograd's and its learning-rate schedule (its run through bench.run: test_peers.py); the
item table's gradient of both peers (the lookup's rows added into the output layer's)."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from bench.peers.sgnnhn import SGNNHN, centred_unit
from bench.peers.srgnn import SRGNN, table_and_rows
from tests.test_peers import graph_of, padded


def unit(x):
    x = x - x.mean(-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True)


def reference_scores(m: SGNNHN, prefix: list[int]) -> torch.Tensor:
    """One prefix, the slow way: dense in/out matrices, the star node as one vector."""
    nodes, alias, a_in, a_out = graph_of(prefix)
    a_in, a_out = a_in.double(), a_out.double()
    gnn, d = m.gnn, m.hidden_size
    h0 = m.embedding.weight[nodes]
    h, star = h0, h0.mean(0)
    for _ in range(m.step):
        inputs = torch.cat(
            [
                a_in @ gnn.linear_edge_in(h) + gnn.b_iah,
                a_out @ gnn.linear_edge_out(h) + gnn.b_oah,
            ],
            1,
        )
        i_r, i_i, i_n = (inputs @ gnn.w_ih.T + gnn.b_ih).chunk(3, 1)
        h_r, h_i, h_n = (h @ gnn.w_hh.T + gnn.b_hh).chunk(3, 1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        h = (1 - update) * new + update * h
        alpha = torch.sigmoid(h @ star / math.sqrt(d))[:, None]
        h = (1 - alpha) * h + alpha * star
        star = torch.softmax(h @ star, 0) @ h
    gate = torch.sigmoid(m.highway(torch.cat([h0, h], 1)))
    h = gate * h0 + (1 - gate) * h
    seq = h[alias] + m.position.weight[: len(prefix)]
    last = seq[-1]
    weights = m.linear_four(
        torch.sigmoid(m.linear_one(last) + m.linear_two(star) + m.linear_three(seq))
    )
    z = m.linear_transform(torch.cat([(weights * seq).sum(0), last]))
    return m.tau * unit(z) @ unit(m.embedding.weight).T


def test_scores_match_the_definition_prefix_by_prefix():
    torch.manual_seed(0)
    m = SGNNHN(12, hidden_size=8, step=2, tau=5.0, max_length=6).double()
    prefixes = [[5, 3, 5, 3, 7, 1], [2], [4, 4, 4], [9, 1, 9, 2, 1, 11], [0, 8]]
    got = m.score(*padded(prefixes))
    for row, prefix in enumerate(prefixes):
        want = reference_scores(m, prefix)
        assert torch.allclose(got[row], want, rtol=1e-10, atol=1e-12), prefix


def test_centred_unit_and_its_written_out_backward_equal_autograds():
    torch.manual_seed(2)
    x = torch.randn(7, 5, 6, dtype=torch.double, requires_grad=True)
    dy = torch.randn(7, 5, 6, dtype=torch.double)
    got = centred_unit(x)
    (got_grad,) = torch.autograd.grad(got, x, dy)
    want = unit(x)
    (want_grad,) = torch.autograd.grad(want, x, dy)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-15)
    assert torch.allclose(got_grad, want_grad, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(centred_unit, (x[:2, :2],))
    xf = x.detach().float().requires_grad_()
    (float_grad,) = torch.autograd.grad(centred_unit(xf), xf, dy.float())
    assert torch.allclose(float_grad.double(), want_grad, rtol=1e-4, atol=1e-6)


def test_the_fused_loss_equals_the_cross_entropy_of_the_scores():
    torch.manual_seed(1)
    m = SGNNHN(30, hidden_size=16, step=1).double()
    prefixes, lengths = padded([[1, 2, 3], [4], [5, 5, 6, 7], [8, 9]])
    targets = torch.tensor([3, 0, 29, 9])
    want = F.cross_entropy(m.score(prefixes, lengths), targets)
    want_grads = torch.autograd.grad(want, list(m.parameters()))
    got = m.loss(prefixes, lengths, targets)
    got_grads = torch.autograd.grad(got, list(m.parameters()))
    assert torch.allclose(got, want, rtol=1e-12)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def table_sized_sums(m, prefixes, lengths, targets) -> list[str]:
    """The operators of one backward that add or copy whole item tables (profiler)."""
    loss = m.loss(prefixes, lengths, targets)
    with torch.profiler.profile(record_shapes=True) as prof:
        loss.backward()
    shape = list(m.embedding.weight.shape)
    return [
        e.name
        for e in prof.events()
        if e.name in ("aten::add", "aten::add_", "aten::copy_", "aten::fill_")
        and e.input_shapes
        and e.input_shapes[0] == shape
    ]


@pytest.mark.parametrize("model", ["srgnn", "sgnnhn"])
def test_the_lookup_rows_are_added_into_the_output_gradient_in_place(model, monkeypatch):
    """The item table's two uses (bench.peers.srgnn.table_and_rows) give one dense .grad,
    the same bits as autograd's sum of the two uses taken separately (a sparse lookup),
    without the table-sized sum and copy that autograd makes of those."""
    cls = SRGNN if model == "srgnn" else SGNNHN
    module = sys.modules[cls.__module__]
    torch.manual_seed(2)
    m = cls(300, hidden_size=16)
    separate = copy.deepcopy(m)
    prefixes, lengths = padded([[1, 2, 3], [4], [5, 5, 6, 7], [8, 9]])
    targets = torch.tensor([3, 0, 299, 9])
    assert table_sized_sums(m, prefixes, lengths, targets) == []
    separately = lambda w, items: (w, F.embedding(items, w, sparse=True))
    monkeypatch.setattr(module, "table_and_rows", separately)
    assert "aten::copy_" in table_sized_sums(separate, prefixes, lengths, targets)
    assert not m.embedding.weight.grad.is_sparse
    assert torch.equal(m.embedding.weight.grad, separate.embedding.weight.grad)
    torch.optim.Adam(m.parameters(), fused=True).step()  # takes it as it is


def test_table_and_rows_gives_the_gradient_of_both_uses_or_of_either_alone():
    """Against finite differences with both uses, and by hand where one goes unused (its
    gradient is then zero); a broadcast gradient of the table is not written into."""
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    items = torch.tensor([1, 1, 4])

    def both(w):
        table, rows = table_and_rows(w, items)
        return (table**2).sum() + (rows**3).sum()

    assert torch.autograd.gradcheck(both, (w,))
    rows_only = torch.zeros_like(w).index_add(0, items, 2 * w.detach()[items])
    (got,) = torch.autograd.grad((table_and_rows(w, items)[1] ** 2).sum(), w)
    assert torch.equal(got, rows_only)
    (got,) = torch.autograd.grad((table_and_rows(w, items)[0] ** 2).sum(), w)
    assert torch.equal(got, 2 * w.detach())
    table, rows = table_and_rows(w, items)
    (got,) = torch.autograd.grad(table.sum() + rows.sum(), w)  # d_table: expanded ones
    assert torch.equal(got, torch.ones_like(w).index_add(0, items, torch.ones(3, 3).double()))


def test_the_learning_rate_steps_down_after_every_lr_dc_step_epochs():
    m = SGNNHN(4, hidden_size=2, lr=0.01, lr_dc=0.5, lr_dc_step=2)
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])


def test_the_package_puts_large_tensors_on_huge_pages_unless_told_otherwise():
    """bench/__init__.py sets THP_MEM_ALLOC_ENABLE before torch is imported (torch reads it
    at its first large allocation); a value the user set is kept."""
    code = "import os, bench, torch; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    env["THP_MEM_ALLOC_ENABLE"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "0"
