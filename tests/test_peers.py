"""The neural peers (bench.peers): SR-GNN's session graphs against a per-prefix loop
written from the paper's definition, its attention against hand-computed values, its
learning-rate schedule as the authors' code steps it, and the output layer's fused
cross-entropy against autograd's, its products where the machine's choice puts them; each
peer trained and scored through bench.run, and its knobs' one-line errors."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from bench.api import PAD
from bench.core import native
from bench.core.full_softmax import full_softmax_cross_entropy
from bench.peers.srgnn import SRGNN, session_graphs
from tests.conftest import bench_run
from tests.test_native import needs_blas


def graph_of(prefix: list[int]):
    """One prefix, the slow way: nodes are its distinct items in increasing order; an edge
    u -> v for each consecutive pair (once); rows of the in-matrix normalised by the
    in-degree of the receiving node, rows of the out-matrix by the sender's out-degree."""
    nodes = sorted(set(prefix))
    n = len(nodes)
    edge = torch.zeros(n, n)
    for u, v in pairwise(prefix):
        edge[nodes.index(u), nodes.index(v)] = 1.0
    a_in = torch.zeros(n, n)
    a_out = torch.zeros(n, n)
    for v in range(n):
        senders = edge[:, v].sum()
        for u in range(n):
            if edge[u, v]:
                a_in[v, u] = 1.0 / senders
    for u in range(n):
        receivers = edge[u].sum()
        for v in range(n):
            if edge[u, v]:
                a_out[u, v] = 1.0 / receivers
    return nodes, [nodes.index(i) for i in prefix], a_in, a_out


def padded(prefixes: list[list[int]]):
    width = max(map(len, prefixes))
    rows = [p + [PAD] * (width - len(p)) for p in prefixes]
    return torch.tensor(rows), torch.tensor([len(p) for p in prefixes])


def test_session_graphs_match_the_definition_prefix_by_prefix():
    prefixes = [[5, 3, 5, 3, 7], [2], [4, 4, 4], [9, 1, 9, 2, 1, 9], [0, 8]]
    g = session_graphs(*padded(prefixes))
    first = 0  # packed: each row's nodes follow the previous row's
    positions = 0
    for r, prefix in enumerate(prefixes):
        want_nodes, want_alias, want_in, want_out = graph_of(prefix)
        n = len(want_nodes)
        assert g.items[first : first + n].tolist() == want_nodes
        got_alias = g.position_node[positions : positions + len(prefix)] - first
        assert got_alias.tolist() == want_alias
        assert (g.position_row[positions : positions + len(prefix)] == r).all()
        assert int(g.last_node[r]) - first == want_alias[-1]
        mine = (g.src >= first) & (g.src < first + n)
        assert ((g.dst[mine] >= first) & (g.dst[mine] < first + n)).all()  # edges stay in a row
        a_in, a_out = torch.zeros(n, n), torch.zeros(n, n)
        u, v = g.src[mine] - first, g.dst[mine] - first
        a_in[v, u] = g.in_weight[mine]  # row v: v's senders, by v's in-degree
        a_out[u, v] = g.out_weight[mine]  # row u: u's receivers, by u's out-degree
        assert torch.equal(a_in, want_in) and torch.equal(a_out, want_out)
        first, positions = first + n, positions + len(prefix)
    assert len(g.items) == first and len(g.position_node) == positions


def test_the_attention_and_hybrid_embedding_by_hand():
    """hidden 1, no graph effect (the GRU cell's new state is the node embedding itself when
    the update gate is fully open): alpha_i = q * sigmoid(w1 v_last + w2 v_i), s_g = sum
    alpha_i v_i, then [s_g, v_last] mapped by the linear transform."""
    m = SRGNN(3, hidden_size=1)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.embedding.weight[:, 0] = torch.tensor([1.0, 2.0, -1.0])
        m.gnn.b_ih[1] = 100.0  # update gate sigmoid(100) = 1: the state stays the embedding
        m.linear_one.weight.fill_(0.5)
        m.linear_two.weight.fill_(2.0)
        m.linear_three.weight.fill_(3.0)
        m.linear_transform.weight[0] = torch.tensor([1.0, 10.0])
    prefix = [0, 1, 0]  # states 1, 2, 1; the last is 1
    alpha = [3.0 * torch.sigmoid(torch.tensor(0.5 * 1 + 2.0 * v)) for v in (1.0, 2.0, 1.0)]
    s_g = sum(a * v for a, v in zip(alpha, (1.0, 2.0, 1.0)))
    want = (s_g + 10.0 * 1.0) * torch.tensor([1.0, 2.0, -1.0])
    got = m.score(*padded([prefix]))[0]
    assert torch.allclose(got, want, atol=1e-4)


def test_the_learning_rate_decays_as_the_authors_code_steps_it():
    """Their StepLR is stepped at the start of each epoch: epochs 0-1 at lr, 2-4 at lr/10."""
    m = SRGNN(4, hidden_size=2)
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5])


def test_fused_cross_entropy_scaled_twice_differentiated_and_checked():
    """A loss scaled further on scales its gradients; a second backward through a kept
    graph gives the same gradients (the backward changes nothing it saved); a target
    outside the catalogue is a clear error."""
    torch.manual_seed(1)
    h = torch.randn(8, 16, requires_grad=True)
    table = torch.randn(500, 16, requires_grad=True)
    y = torch.randint(0, 500, (8,))
    once = torch.autograd.grad(full_softmax_cross_entropy(h, table, y), (h, table))
    loss = 3.0 * full_softmax_cross_entropy(h, table, y)
    first = torch.autograd.grad(loss, (h, table), retain_graph=True)
    second = torch.autograd.grad(loss, (h, table))
    for a, b, c in zip(once, first, second):
        # float32 sums over 500 items, scaled before or after them: entries near zero differ
        # by a few ulps of the large ones (6e-7 measured on an AMD EPYC host's BLAS)
        torch.testing.assert_close(3.0 * a, b, rtol=1e-5, atol=2e-6)
        assert torch.equal(b, c)
    with pytest.raises(IndexError, match=r"outside|out of bounds"):  # kernel, PyTorch form
        full_softmax_cross_entropy(h, table, torch.full((8,), 500))


@needs_blas
@pytest.mark.parametrize("forced, split_calls", [("1", 3), ("0", 0)])
def test_full_softmax_products_follow_the_machines_choice(monkeypatch, forced, split_calls):
    """The output layer's three products go to the split products where the machine's
    choice for them says (product_choice's `output` family; BENCH_BLAS forces either
    side), with the same loss either way."""
    calls = []
    matmul = native.matmul
    monkeypatch.setattr(native, "matmul", lambda *a, **k: calls.append(1) or matmul(*a, **k))
    monkeypatch.setenv("BENCH_BLAS", forced)
    torch.manual_seed(0)
    h = torch.randn(64, 32, requires_grad=True)
    table = torch.randn(3000, 32, requires_grad=True)
    y = torch.randint(0, 3000, (64,))
    loss = full_softmax_cross_entropy(h, table, y)
    loss.backward()
    assert len(calls) == split_calls
    assert torch.allclose(loss, F.cross_entropy(h @ table.T, y), rtol=1e-5)


@pytest.mark.parametrize(
    "dtype, items, rtol, grad_rtol, atol",
    [
        (torch.float64, 11, 1e-12, 1e-10, 1e-12),  # the same arithmetic
        (torch.float32, 3000, 1e-5, 1e-4, 1e-6),  # the compiled products where built
    ],
)
def test_fused_cross_entropy_equals_autograd_in_value_and_gradients(
    dtype, items, rtol, grad_rtol, atol
):
    torch.manual_seed(0)
    h = torch.randn(64, 32, dtype=dtype, requires_grad=True)
    table = torch.randn(items, 32, dtype=dtype, requires_grad=True)
    y = torch.randint(0, items, (64,))
    want = F.cross_entropy(h @ table.T, y)
    want_grads = torch.autograd.grad(want, (h, table))
    got = full_softmax_cross_entropy(h, table, y)
    got_grads = torch.autograd.grad(got, (h, table))
    assert torch.allclose(got, want, rtol=rtol)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, rtol=grad_rtol, atol=atol)


# Each peer of the package through bench.run: small settings that train in seconds, and one
# knob out of its range with the one-line error it must give.
PEER_RUNS = {
    "sgnnhn": ["model.params.hidden_size=32", "model.params.max_length=4", "batch_size=64"],
    "narm": ["batch_size=64", "eval.per_epoch=true"],
}
KNOB_ERRORS = {
    "sgnnhn": ("model.params.max_length=0", "max_length: got 0; expected >= 1"),
    "narm": ("model.params.dropout_context=1.0", "dropout_context: got 1.0; expected in [0, 1)"),
}


@pytest.mark.parametrize("peer", PEER_RUNS)
def test_each_peer_trains_and_is_scored_through_bench_run(tmp_path, peer):
    p = bench_run(
        f"model={peer}", *PEER_RUNS[peer], "n_epochs=2", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr[-2000:]
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["method"] == peer and len(record["epochs"]) == 2
    assert record["epochs"][1]["loss"] < record["epochs"][0]["loss"]
    assert 0 < record["metrics"]["mrr@20"] < record["metrics"]["recall@20"] <= 1


@pytest.mark.parametrize("peer", KNOB_ERRORS)
def test_a_peer_knob_out_of_range_is_one_line(tmp_path, peer):
    knob, error = KNOB_ERRORS[peer]
    p = bench_run(f"model={peer}", knob, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert p.returncode == 2
    assert error in p.stderr.strip().splitlines()[-1]
