"""NARM (bench.peers.narm) against a re-statement of the authors' Theano graph in numpy
(time-major padded batch, masked GRU scan, attention softmax over masked logits then
renormalised, bilinear decoder through the full table) and its quirks by hand (its run
through bench.run: test_peers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.api import PAD
from bench.peers.narm import NARM, hard_sigmoid, unscaled_dropout
from tests.test_peers import padded


def theano_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def authors_scores(m: NARM, seqs: list[list[int]]) -> np.ndarray:
    """The authors' build_model with use_noise = 0, in float64: their loader keeps each
    sequence's first 19 items; x and mask are (maxlen x n), padding item 0 (our items are
    shifted by one so that 0 is free); dropout at test time multiplies by the keep
    probability; the softmax's padding class is dropped afterwards."""
    P = {k: v.detach().double().numpy() for k, v in m.named_parameters()}
    Wemb = np.vstack([np.zeros((1, P["embedding.weight"].shape[1])), P["embedding.weight"]])
    seqs = [[i + 1 for i in s[: m.max_length]] for s in seqs]
    maxlen, n = max(map(len, seqs)), len(seqs)
    x = np.zeros((maxlen, n), dtype=np.int64)
    for j, s in enumerate(seqs):
        x[: len(s), j] = s
    mask = (x != 0).astype(float)
    emb = Wemb[x] * (1 - m.dropout_embed)
    below = emb @ P["w_input"] + P["b_input"]
    H = P["u_state"].shape[0]
    h, proj = np.zeros((n, H)), []
    for t in range(maxlen):  # their theano.scan over _step
        pre = h @ P["u_gates"] + below[t][:, : 2 * H]
        z, r = theano_hard_sigmoid(pre[:, :H]), theano_hard_sigmoid(pre[:, H:])
        cand = np.tanh((h * r) @ P["u_state"] + below[t][:, 2 * H :])
        new = (1.0 - z) * h + z * cand
        h = mask[t][:, None] * new + (1.0 - mask[t])[:, None] * h
        proj.append(h)
    proj = np.stack(proj)  # maxlen x n x H
    last = proj[-1]
    sim = np.stack(
        [
            (P["v"] @ theano_hard_sigmoid(P["a_states"] @ s.T + P["a_last"] @ last.T)).sum(0)
            for s in proj
        ]
    )  # maxlen x n
    logits = sim.T * mask.T
    att = np.exp(logits - logits.max(1, keepdims=True))
    att = att / att.sum(1, keepdims=True) * mask.T
    weight = att / att.sum(1)[:, None]
    pooled = (proj * weight.T[:, :, None]).sum(0)
    c = np.concatenate([pooled, last], 1) * (1 - m.dropout_context)
    ytem = Wemb @ P["bilinear"]
    return (c @ ytem.T)[:, 1:]


SEQS = [[3, 1, 4, 1, 5], [9], [2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3]]


def test_scores_equal_the_authors_graph_restated_in_numpy():
    torch.manual_seed(0)
    m = NARM(10, embedding_size=6, hidden_size=5).eval()
    with torch.no_grad():  # larger weights than the init, so that the hard sigmoids clip
        for p in m.parameters():
            p.mul_(3.0)
    got = m.score(*padded(SEQS)).detach().double().numpy()
    want = authors_scores(m, SEQS)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()


def test_a_prefix_keeps_its_first_max_length_items():
    torch.manual_seed(1)
    m = NARM(10, embedding_size=4, hidden_size=3, max_length=4).eval()
    long, cut = [5, 2, 7, 1, 9, 9, 3], [5, 2, 7, 1]
    a = m.score(*padded([long]))
    b = m.score(*padded([cut]))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(m.score(*padded([[2, 7, 1, 9]])), b)  # not the last four


def test_hard_sigmoid_and_the_unrescaled_dropout_by_hand():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    assert hard_sigmoid(x).tolist() == pytest.approx([0.0, 0.0, 0.5, 0.7, 1.0, 1.0])
    ones = torch.ones(10_000)
    torch.manual_seed(0)
    train = unscaled_dropout(ones, 0.25, training=True)
    assert set(train.unique().tolist()) == {0.0, 1.0}  # kept values are not scaled up
    assert train.mean().item() == pytest.approx(0.75, abs=0.02)
    assert unscaled_dropout(ones, 0.25, training=False).unique().tolist() == [0.75]


def test_the_authors_initialisation():
    torch.manual_seed(0)
    n_items, d, h = 4000, 50, 100
    m = NARM(n_items, embedding_size=d, hidden_size=h)
    spread = lambda w: w.detach().std().item()
    assert spread(m.embedding.weight) == pytest.approx((2 / n_items) ** 0.5, rel=0.05)
    assert spread(m.w_input) == pytest.approx((2 / d) ** 0.5, rel=0.05)
    assert spread(m.bilinear) == pytest.approx((2 / d) ** 0.5, rel=0.05)
    assert spread(m.a_states) == pytest.approx((2 / h) ** 0.5, rel=0.05)
    for u in (m.u_gates[:, :h], m.u_gates[:, h:], m.u_state):
        torch.testing.assert_close(u.T @ u, torch.eye(h), atol=1e-5, rtol=0)
    assert not m.b_input.any()


def test_the_loss_and_its_gradients_equal_cross_entropy_of_the_scores():
    torch.manual_seed(2)
    args = dict(embedding_size=6, hidden_size=5, dropout_embed=0.0, dropout_context=0.0)
    a, b = NARM(12, **args), NARM(12, **args)
    b.load_state_dict(a.state_dict())
    prefixes, lengths = padded(SEQS)
    targets = torch.tensor([4, 0, 11])
    a.loss(prefixes, lengths, targets).backward()
    F.cross_entropy(b.score(prefixes, lengths), targets).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6, msg=name)


def masked_scan(m: NARM, prefixes: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """NARM.encode as the authors compute it: every position of the padded batch, the
    state kept where a row is padding, attention masked over the padding."""
    h = m.u_state.shape[0]
    real = prefixes != PAD
    x = emb @ m.w_input + m.b_input
    state, states = emb.new_zeros(len(prefixes), h), []
    for t in range(prefixes.shape[1]):
        z, r = hard_sigmoid(state @ m.u_gates + x[:, t, : 2 * h]).chunk(2, 1)
        n = torch.tanh((state * r) @ m.u_state + x[:, t, 2 * h :])
        state = torch.where(real[:, t, None], (1 - z) * state + z * n, state)
        states.append(state)
    hs = torch.stack(states, 1)
    e = hard_sigmoid(hs @ m.a_states.T + (state @ m.a_last.T)[:, None]) @ m.v[0]
    weight = torch.softmax(e.masked_fill(~real, -torch.inf), 1)
    return torch.cat([(weight[:, :, None] * hs).sum(1), state], 1)


def test_the_packed_scan_equals_the_masked_scan_in_values_and_gradients():
    """encode runs the GRU over the real positions only, rows sorted longest first; the
    authors' masked scan over the padded batch is its twin. Lengths 1-25 with ties, cut
    to the first 19, and two columns of padding past the longest row (as the evaluator's
    fixed-width prefixes have)."""
    torch.manual_seed(3)
    m = NARM(40, embedding_size=6, hidden_size=5, dropout_embed=0.0).double()
    with torch.no_grad():  # so that the hard sigmoids clip somewhere
        for p in m.parameters():
            p.mul_(2.0)
    lengths = torch.randint(1, 26, (64,))
    lengths[:5] = 3
    prefixes = torch.full((64, 27), PAD)
    for i, n in enumerate(lengths.tolist()):
        prefixes[i, :n] = torch.randint(0, 40, (n,))
    prefixes = m.first_items(prefixes)
    prefixes = torch.cat([prefixes, torch.full((64, 2), PAD)], 1)
    emb = F.embedding(prefixes.clamp(min=0), m.embedding.weight)
    weights = torch.randn(64, 10, dtype=torch.float64)
    got = m.encode(prefixes, emb)
    want = masked_scan(m, prefixes, emb)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    names, params = zip(*((n, p) for n, p in m.named_parameters() if n != "bilinear"))
    got_grads = torch.autograd.grad((got * weights).sum(), params, retain_graph=True)
    want_grads = torch.autograd.grad((want * weights).sum(), params)
    for name, a, b in zip(names, got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
