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
  finds the nodes, a unique the edges) instead of a Python loop per prefix, and kept
  packed: the authors pad every prefix to the batch's longest and every graph to its
  largest, so their per-node and per-position products run over the padding too (at
  yoochoose1/64's longest sessions, over 100 positions for an average of 4); here they
  run over the real nodes and positions only, and the adjacency products are sums over
  the edges. Same values, in another order of summation (tested against their code on
  identical weights: benchmarks/srgnn_parity.py).
- The authors' code steps its StepLR at the start of every epoch, so epoch e (from 0)
  trains at lr * lr_dc ** ((e + 1) // lr_dc_step): the first decay comes after two
  epochs, not three. The schedule here reproduces that.
- The catalogue is the training items (the harness's protocol); the authors' embedding
  also holds items that never occur in training (SR-GNN's dictionary covers the whole
  click log: 37,483 on yoochoose1/64 against its 17,376 training items), which can never
  be a training target. Their padding node (item 0) never reaches a score; here there
  is none.
- `linear_edge_f`, defined but never used there, is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import PAD, SessionModel
from bench.core.full_softmax import full_softmax_cross_entropy


@dataclass
class SessionGraphs:
    """The graphs of a batch of prefixes, packed: nodes are numbered across the batch (row
    by row, each row's distinct items in increasing order, as np.unique orders them
    there), so that every per-node and per-position computation touches real entries only."""

    items: torch.Tensor  # T: the item of each node
    node_row: torch.Tensor  # T: the batch row of each node
    position_node: torch.Tensor  # P: the node at each real position (row by row)
    position_row: torch.Tensor  # P: the batch row of each real position
    last_node: torch.Tensor  # B: the node of each row's last position
    src: torch.Tensor  # E distinct edges u -> v (consecutive clicks), by node
    dst: torch.Tensor
    in_weight: torch.Tensor  # E: 1 / in-degree of dst (the authors' in-matrix)
    out_weight: torch.Tensor  # E: 1 / out-degree of src (their out-matrix)


def session_graphs(prefixes: torch.Tensor, lengths: torch.Tensor) -> SessionGraphs:
    B, L = prefixes.shape
    real = prefixes != PAD
    big = torch.iinfo(torch.int64).max
    values, order = prefixes.masked_fill(~real, big).sort(dim=1)  # padding sorts last
    first = torch.ones_like(real)
    first[:, 1:] = values[:, 1:] != values[:, :-1]
    first &= values != big  # the first sorted entry of each distinct item of a row
    node_of_sorted = first.flatten().cumsum(0).view(B, L) - 1  # repeats share their node
    alias = torch.empty_like(node_of_sorted).scatter_(1, order, node_of_sorted)
    rows = torch.arange(B, device=prefixes.device)
    edge = real[:, 1:]  # position t -> t + 1 inside the prefix (prefixes are left-aligned)
    n_nodes = int(first.sum())
    key = torch.unique(alias[:, :-1][edge] * n_nodes + alias[:, 1:][edge])  # repeats once
    src, dst = key // n_nodes, key % n_nodes
    in_degree = torch.bincount(dst, minlength=n_nodes).clamp(min=1)
    out_degree = torch.bincount(src, minlength=n_nodes).clamp(min=1)
    return SessionGraphs(
        items=values[first],
        node_row=rows[:, None].expand(B, L)[first],
        position_node=alias[real],
        position_row=rows[:, None].expand(B, L)[real],
        last_node=alias[rows, lengths - 1],
        src=src,
        dst=dst,
        in_weight=1.0 / in_degree[dst].float(),
        out_weight=1.0 / out_degree[src].float(),
    )


class GatedGraphStep(nn.Module):
    """One gated graph step of the authors' GNN.GNNCell, over the packed nodes: their
    adjacency products become sums over the edges (a node without in- or out-edges gets
    the bias alone there too)."""

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

    def forward(self, g: SessionGraphs, hidden: torch.Tensor) -> torch.Tensor:
        from_in = self.linear_edge_in(hidden)[g.src] * g.in_weight[:, None]
        from_out = self.linear_edge_out(hidden)[g.dst] * g.out_weight[:, None]
        zeros = torch.zeros_like(hidden)
        inputs = torch.cat(
            [
                zeros.index_add(0, g.dst, from_in) + self.b_iah,
                zeros.index_add(0, g.src, from_out) + self.b_oah,
            ],
            1,
        )
        i_r, i_i, i_n = F.linear(inputs, self.w_ih, self.b_ih).chunk(3, 1)
        h_r, h_i, h_n = F.linear(hidden, self.w_hh, self.b_hh).chunk(3, 1)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (hidden - new)


KNOB_RANGES = {  # the peers' knobs: a test and what it expects
    "hidden_size": (lambda v: v >= 1, ">= 1"),
    "embedding_size": (lambda v: v >= 1, ">= 1"),
    "dropout_embed": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "dropout_context": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "step": (lambda v: v >= 1, ">= 1"),
    "tau": (lambda v: v > 0, "> 0"),
    "max_length": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "lr_dc": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "lr_dc_step": (lambda v: v >= 1, ">= 1"),
    "l2": (lambda v: v >= 0, ">= 0"),
}


def check_knobs(**values) -> None:
    """One ValueError naming the first knob out of its range (the harness makes it a
    one-line error before any data loads)."""
    for name, value in values.items():
        ok, expected = KNOB_RANGES[name]
        if not ok(value):
            raise ValueError(f"{name}: got {value}; expected {expected}")


def uniform_init(model: nn.Module, hidden_size: int) -> None:
    """Every parameter from U(-1/sqrt(d), 1/sqrt(d)), as the authors' reset_parameters."""
    stdv = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for weight in model.parameters():
            weight.uniform_(-stdv, stdv)


def item_table(n_items: int, hidden_size: int) -> nn.Embedding:
    """The item embeddings, which the session graph looks up and the output layer scores
    against (in training both through table_and_rows)."""
    return nn.Embedding(n_items, hidden_size)


class _TableAndRows(torch.autograd.Function):
    """The item table's two uses in training as one autograd node: the whole table (the
    output layer's) and the rows the session graphs look up. Used separately, autograd
    sums their gradients into a new table-sized tensor each step (a sparse lookup: the
    whole table copied), or with a dense lookup zeroes a table-sized buffer and adds it
    whole. Here the looked-up rows are added into the output layer's gradient, a fresh
    product nothing else holds, in place; the sum is the same, in the same order. A small
    gain (benchmarks/peer_step_ab.py: within a noisy host's spread)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, items: torch.Tensor):
        ctx.save_for_backward(items)
        ctx.set_materialize_grads(False)
        ctx.table_shape = weight.shape
        return weight.view_as(weight), weight[items]

    @staticmethod
    def backward(ctx, d_table, d_rows):
        (items,) = ctx.saved_tensors
        if d_rows is None:
            return d_table, None
        if d_table is None:
            d_table = d_rows.new_zeros(ctx.table_shape)
        elif not d_table.is_contiguous():  # e.g. broadcast: not a tensor of its own
            d_table = d_table.contiguous()
        return d_table.index_add_(0, items, d_rows), None


def table_and_rows(weight: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the table, its rows `items`) with one gradient for both (see _TableAndRows)."""
    return _TableAndRows.apply(weight, items)


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
        check_knobs(
            hidden_size=hidden_size, step=step, lr=lr, lr_dc=lr_dc, lr_dc_step=lr_dc_step, l2=l2
        )
        self.hidden_size, self.step, self.nonhybrid = hidden_size, step, nonhybrid
        self.lr, self.lr_dc, self.lr_dc_step, self.l2 = lr, lr_dc, lr_dc_step, l2
        h = hidden_size
        self.embedding = item_table(n_items, h)
        self.gnn = GatedGraphStep(h)
        self.linear_one = nn.Linear(h, h)
        self.linear_two = nn.Linear(h, h)
        self.linear_three = nn.Linear(h, 1, bias=False)
        self.linear_transform = nn.Linear(2 * h, h)
        uniform_init(self, h)

    def session_embedding(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        g = session_graphs(prefixes, lengths)
        return self.read_out(g, self.embedding(g.items))

    def read_out(self, g: SessionGraphs, hidden: torch.Tensor) -> torch.Tensor:
        """The session representation from its graph's looked-up item rows."""
        for _ in range(self.step):
            hidden = self.gnn(g, hidden)
        seq, last = hidden[g.position_node], hidden[g.last_node]
        alpha = self.linear_three(
            torch.sigmoid(self.linear_one(last)[g.position_row] + self.linear_two(seq))
        )
        a = torch.zeros_like(last).index_add(0, g.position_row, alpha * seq)
        return a if self.nonhybrid else self.linear_transform(torch.cat([a, last], 1))

    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.session_embedding(prefixes, lengths) @ self.embedding.weight.T

    def loss(self, prefixes, lengths, targets) -> torch.Tensor:
        """The authors' cross-entropy over every item, computed without a second scores matrix."""
        g = session_graphs(prefixes, lengths)
        table, rows = table_and_rows(self.embedding.weight, g.items)
        return full_softmax_cross_entropy(self.read_out(g, rows), table, targets)

    def configure_optimizers(self):
        # fused: one pass over each parameter (the dense item table dominates), same update
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.l2, fused=True)
        decay = lambda epoch: self.lr_dc ** ((epoch + 1) // self.lr_dc_step)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(opt, decay)}
