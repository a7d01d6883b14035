"""SR-GNN (Wu et al., AAAI 2019), as the authors' PyTorch code (CRIPAC-DIG/SR-GNN,
pytorch_code/model.py and utils.py) computes it, through the public model interface.

Each prefix is a graph over its distinct items (sorted by item index, as np.unique orders
them there) with an edge u -> v for every consecutive click pair (repeated pairs count
once); in- and out-adjacency are normalised by in- and out-degree. `step` gated graph
steps (a GRU cell whose input is the mean of the incoming and of the outgoing
neighbours' linear maps) give every node a state; the session embedding is the soft
attention over the prefix's positions (alpha = q^T sigmoid(W1 v_last + W2 v_i + c), not
normalised) combined with the last position's state by a linear map (the hybrid form;
`nonhybrid` keeps the attention alone), scored against every item embedding. Adam with
L2 `l2`, the learning rate times `lr_dc` every `lr_dc_step` epochs, every parameter drawn
from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

Where this differs, and why:
- Graphs are built for a whole batch at once with tensor operations (a sort per row
  finds the nodes, one scatter the edges) instead of a Python loop per prefix; the
  adjacency is the same.
- The authors' code steps its StepLR at the start of every epoch, so epoch e (from 0)
  trains at lr * lr_dc ** ((e + 1) // lr_dc_step): the first decay comes after two
  epochs, not three. The schedule here reproduces that.
- The catalogue is the training items (the harness's protocol); the authors' embedding
  also holds items that never occur in training (SR-GNN's dictionary covers the whole
  click log: 37,483 on yoochoose1/64 against its 17,376 training items), which can never
  be a training target. A padding node there is item 0's row; here padded nodes are
  masked out, which is what the authors' mask does to them as well.
- `linear_edge_f`, defined but never used there, is left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import PAD, SessionModel
from bench.core.full_softmax import full_softmax_cross_entropy


def session_graphs(prefixes: torch.Tensor, lengths: torch.Tensor):
    """(nodes B x N item indices, PAD where a row has fewer; alias B x L, the node of each
    position; in- and out-normalised adjacency, each B x N x N)."""
    B, L = prefixes.shape
    big = torch.iinfo(torch.int64).max
    keyed = prefixes.masked_fill(prefixes == PAD, big)  # padding sorts last
    values, order = keyed.sort(dim=1)
    new = torch.ones_like(values, dtype=torch.bool)
    new[:, 1:] = values[:, 1:] != values[:, :-1]
    rank = new.long().cumsum(1) - 1  # node index of each sorted entry
    alias = torch.empty_like(rank).scatter_(1, order, rank).masked_fill_(prefixes == PAD, 0)
    real_sorted = values != big
    n_nodes = int(rank.masked_fill(~real_sorted, -1).max()) + 1
    nodes = torch.full((B, n_nodes + 1), PAD, dtype=torch.int64, device=prefixes.device)
    nodes.scatter_(
        1, rank.masked_fill(~real_sorted, n_nodes), values.masked_fill(~real_sorted, PAD)
    )
    nodes = nodes[:, :n_nodes]
    adjacency = torch.zeros(B, n_nodes, n_nodes, device=prefixes.device)
    if L > 1:
        pos = torch.arange(L - 1, device=prefixes.device)
        edge = pos[None, :] < (lengths[:, None] - 1)  # position t -> t + 1 inside the prefix
        b = torch.arange(B, device=prefixes.device)[:, None].expand(-1, L - 1)
        adjacency[b[edge], alias[:, :-1][edge], alias[:, 1:][edge]] = 1.0
    a_in = adjacency / adjacency.sum(1, keepdim=True).clamp(min=1.0)  # by in-degree of v
    a_out = adjacency / adjacency.sum(2, keepdim=True).clamp(min=1.0)  # by out-degree of u
    return nodes, alias, a_in.transpose(1, 2), a_out


class GatedGraphStep(nn.Module):
    """One gated graph step of the authors' GNN.GNNCell."""

    def __init__(self, hidden_size: int):
        super().__init__()
        h = hidden_size
        self.w_ih = nn.Parameter(torch.empty(3 * h, 2 * h))
        self.w_hh = nn.Parameter(torch.empty(3 * h, h))
        self.b_ih = nn.Parameter(torch.empty(3 * h))
        self.b_hh = nn.Parameter(torch.empty(3 * h))
        self.b_iah = nn.Parameter(torch.empty(h))
        self.b_oah = nn.Parameter(torch.empty(h))
        self.linear_edge_in = nn.Linear(h, h)
        self.linear_edge_out = nn.Linear(h, h)

    def forward(self, a_in, a_out, hidden):
        inputs = torch.cat(
            [
                torch.matmul(a_in, self.linear_edge_in(hidden)) + self.b_iah,
                torch.matmul(a_out, self.linear_edge_out(hidden)) + self.b_oah,
            ],
            2,
        )
        i_r, i_i, i_n = F.linear(inputs, self.w_ih, self.b_ih).chunk(3, 2)
        h_r, h_i, h_n = F.linear(hidden, self.w_hh, self.b_hh).chunk(3, 2)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (hidden - new)


class SRGNN(SessionModel):
    """Defaults: the authors' main.py (batch 100, 30 epochs, patience 10 are the harness's
    `batch_size`, `n_epochs` and early-stopping settings)."""

    name = "srgnn"
    title = "SR-GNN"

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 100,
        step: int = 1,
        lr: float = 0.001,
        lr_dc: float = 0.1,
        lr_dc_step: int = 3,
        l2: float = 1e-5,
        nonhybrid: bool = False,
    ):
        super().__init__(n_items)
        if hidden_size < 1 or step < 1 or lr_dc_step < 1 or lr <= 0 or l2 < 0 or lr_dc <= 0:
            raise ValueError(
                f"got hidden_size={hidden_size}, step={step}, lr={lr}, lr_dc={lr_dc}, "
                f"lr_dc_step={lr_dc_step}, l2={l2}; expected positive sizes and rates, l2 >= 0"
            )
        self.hidden_size, self.step, self.nonhybrid = hidden_size, step, nonhybrid
        self.lr, self.lr_dc, self.lr_dc_step, self.l2 = lr, lr_dc, lr_dc_step, l2
        h = hidden_size
        self.embedding = nn.Embedding(n_items, h)
        self.gnn = GatedGraphStep(h)
        self.linear_one = nn.Linear(h, h)
        self.linear_two = nn.Linear(h, h)
        self.linear_three = nn.Linear(h, 1, bias=False)
        self.linear_transform = nn.Linear(2 * h, h)
        stdv = 1.0 / math.sqrt(h)
        with torch.no_grad():
            for weight in self.parameters():
                weight.uniform_(-stdv, stdv)

    def session_embedding(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        nodes, alias, a_in, a_out = session_graphs(prefixes, lengths)
        hidden = self.embedding(nodes.clamp(min=0))  # padded nodes have no edges; masked below
        for _ in range(self.step):
            hidden = self.gnn(a_in, a_out, hidden)
        seq = hidden.gather(1, alias[:, :, None].expand(-1, -1, self.hidden_size))
        last = seq[torch.arange(len(lengths), device=seq.device), lengths - 1]
        alpha = self.linear_three(
            torch.sigmoid(self.linear_one(last)[:, None] + self.linear_two(seq))
        )
        mask = (prefixes != PAD)[:, :, None]
        a = (alpha * seq * mask).sum(1)
        return a if self.nonhybrid else self.linear_transform(torch.cat([a, last], 1))

    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.session_embedding(prefixes, lengths) @ self.embedding.weight.T

    def loss(self, prefixes, lengths, targets) -> torch.Tensor:
        """The authors' cross-entropy over every item, computed without a second scores matrix."""
        h = self.session_embedding(prefixes, lengths)
        return full_softmax_cross_entropy(h, self.embedding.weight, targets)

    def configure_optimizers(self):
        # fused: one pass over each parameter (the dense item table dominates), same update
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.l2, fused=True)
        decay = lambda epoch: self.lr_dc ** ((epoch + 1) // self.lr_dc_step)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(opt, decay)}
