"""NARM (Li et al., CIKM 2017): a GRU over the session with attention over its states and a
bilinear decoder, through the public model interface.

Follows the authors' Theano code (lijingsdu/sessionRec_NARM, `NARM.py` and
`data_process.py`), which differs from a textbook GRU and from later ports in ways that
change the numbers, so each is kept:
- The GRU's gates use the hard sigmoid (clip(0.2 x + 0.5, 0, 1)) and the reset gate acts
  before the recurrent product: n = tanh((r * h) U_h + x W_h + b_h), h' = (1 - z) h + z n.
  The input projection of every position is one product; the state starts at zero.
- Attention scores each position j against the last state with
  v . hard_sigmoid(A1 h_j + A2 h_last) (no biases), softmax over the real positions; the
  session is [attention pool; last state], and scores are session . B . e_i for every
  item's embedding e_i (the bilinear decoder shares the input embeddings).
- Dropout is not rescaled in training: inputs are multiplied by a 0/1 mask and, when not
  training, by the keep probability (0.75 on the embeddings, 0.5 on the session).
- A prefix keeps its *first* `max_length` items (19), as their data loader cuts them.
- Initialisation: N(0, 2 / rows) for every non-recurrent matrix (its first dimension in
  the authors' layout, so the item table's spread shrinks with the catalogue), orthogonal
  recurrent matrices, zero GRU biases.
- Adam at 1e-3, no weight decay, no schedule; batch 512, 30 epochs.

Where this differs: the authors' softmax has a class for the padding item (row 0 of their
table) and adds 1e-8 inside the log; here the classes are the training items and the loss
is the exact cross-entropy. Their code picks the epoch of best validation Recall@20 on a
random 10% of the training prefixes; the harness's protocols (end of schedule, per-epoch
test evaluation, studies on a validation split) apply instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import PAD, SessionModel
from bench.core.full_softmax import full_softmax_cross_entropy
from bench.peers.srgnn import check_knobs, item_table, table_and_rows


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Theano's hard_sigmoid, which every gate of the authors' model uses."""
    return (0.2 * x + 0.5).clamp_(0.0, 1.0)


def unscaled_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The authors' dropout: a 0/1 mask in training, the keep probability otherwise."""
    if p == 0.0:
        return x
    keep = 1.0 - p
    # a uniform draw below keep is the 0/1 mask (torch's bernoulli_ is 2.7x slower here)
    return x * (torch.rand_like(x) < keep) if training else x * keep


def normal_by_rows(weight: torch.Tensor) -> None:
    """N(0, 2 / rows) with rows the first dimension in the authors' (in x out) layout."""
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / weight.shape[0]))


class NARM(SessionModel):
    """Defaults: the authors' train_gru (dim_proj 50, hidden_units 100, lrate 1e-3; batch
    512 and 30 epochs are the harness's `batch_size` and `n_epochs`)."""

    name = "narm"
    title = "NARM"

    def __init__(
        self,
        n_items: int,
        embedding_size: int = 50,
        hidden_size: int = 100,
        max_length: int = 19,
        dropout_embed: float = 0.25,
        dropout_context: float = 0.5,
        lr: float = 0.001,
    ):
        super().__init__(n_items)
        check_knobs(
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            max_length=max_length,
            dropout_embed=dropout_embed,
            dropout_context=dropout_context,
            lr=lr,
        )
        self.max_length, self.lr = max_length, lr
        self.dropout_embed, self.dropout_context = dropout_embed, dropout_context
        d, h = embedding_size, hidden_size
        self.embedding = item_table(n_items, d)
        # Stored (in x out), as the authors' shared variables, so their init reads the same.
        self.w_input = nn.Parameter(torch.empty(d, 3 * h))  # [z | r | n] input projections
        self.b_input = nn.Parameter(torch.zeros(3 * h))
        self.u_gates = nn.Parameter(torch.empty(h, 2 * h))  # [z | r] recurrent
        self.u_state = nn.Parameter(torch.empty(h, h))  # candidate state, recurrent
        self.a_states = nn.Parameter(torch.empty(h, h))  # attention: each position
        self.a_last = nn.Parameter(torch.empty(h, h))  # attention: the last state
        self.v = nn.Parameter(torch.empty(1, h))
        self.bilinear = nn.Parameter(torch.empty(d, 2 * h))
        for w in (self.embedding.weight, self.a_states, self.a_last, self.v, self.bilinear):
            normal_by_rows(w)
        with torch.no_grad():
            for k in range(3):  # three blocks, each N(0, 2 / d)
                normal_by_rows(self.w_input[:, k * h : (k + 1) * h])
            for u in (self.u_gates[:, :h], self.u_gates[:, h:], self.u_state):
                u.copy_(nn.init.orthogonal_(torch.empty(h, h)))

    def first_items(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Each prefix cut to its first max_length items (the authors' loader)."""
        return prefixes[:, : self.max_length]

    def encode(self, prefixes: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The session representation [attention pool; last state] (B x 2h), before the
        dropout on it, from the looked-up rows emb (B x L x d; padding rows are ignored).

        The authors scan every position of the padded batch and keep the state where a
        row is padding. Here the rows are sorted longest first and only the real positions
        are taken, time-major (the layout of PyTorch's packed sequences): at position t
        the rows still running are the first few, so the scan does the work of the real
        positions alone, a fifth of the padded batch's on the SR-GNN splits (prefixes of
        4.1-4.5 items on average, batches 19 wide). Same values (tested against the
        masked scan)."""
        B = prefixes.shape[0]
        h = self.u_state.shape[0]
        order = (prefixes != PAD).sum(1).argsort(descending=True, stable=True)
        real = (prefixes[order] != PAD).T  # L x B, time-major, rows longest first
        running = real.sum(1).tolist()  # the rows still running at each position
        rows = emb[order].transpose(0, 1)[real]  # the real positions, time-major
        dropped = unscaled_dropout(rows, self.dropout_embed, self.training)
        x = torch.addmm(self.b_input, dropped, self.w_input)
        state = emb.new_zeros(B, h)
        states = []
        for n, xt in zip(running, x.split(running)):
            if n == 0:
                break
            state = state[:n]
            x_zr, x_n = xt.split([2 * h, h], 1)
            z, r = hard_sigmoid(state @ self.u_gates + x_zr).chunk(2, 1)
            cand = torch.tanh((state * r) @ self.u_state + x_n)
            state = (1 - z) * state + z * cand
            states.append(state)
        hs = torch.cat(states)  # the real positions' states, time-major
        first = torch.tensor([0, *running[:-1]], device=hs.device).cumsum(0)
        last = hs[first[real.sum(0) - 1] + torch.arange(B, device=hs.device)]
        row = real.nonzero()[:, 1]  # the (sorted) row of each real position
        e = hard_sigmoid(hs @ self.a_states.T + (last @ self.a_last.T)[row]) @ self.v[0]
        weight = torch.softmax(e.new_full(real.shape, -torch.inf).masked_scatter(real, e), 0)
        pooled = torch.zeros_like(last).index_add(0, row, weight[real][:, None] * hs)
        return torch.cat([pooled, last], 1)[order.argsort()]

    def query(self, prefixes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The decoder's query (B x d): the dropped-out session through the bilinear map."""
        c = self.encode(prefixes, rows)
        return unscaled_dropout(c, self.dropout_context, self.training) @ self.bilinear.T

    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        prefixes = self.first_items(prefixes)
        rows = F.embedding(prefixes.clamp(min=0), self.embedding.weight)
        return self.query(prefixes, rows) @ self.embedding.weight.T

    def loss(self, prefixes, lengths, targets) -> torch.Tensor:
        """Cross-entropy over every item, without a second scores matrix."""
        prefixes = self.first_items(prefixes)
        table, rows = table_and_rows(self.embedding.weight, prefixes.clamp(min=0).flatten())
        rows = rows.view(*prefixes.shape, -1)
        return full_softmax_cross_entropy(self.query(prefixes, rows), table, targets)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, fused=True)
