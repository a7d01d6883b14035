"""The GRU4Rec network (GRU4Rec+ of Hidasi & Karatzoglou 2018) in plain PyTorch.

Three input modes, as the official code: shared (constrained) embedding where the
output item table `Wy` is also the input embedding (default, and best in every
published configuration), a separate input table `E` (`embedding=N`), or one-hot
input, where the first GRU layer's input weights are a row lookup (`embedding=0`,
`constrained_embedding=False`). Item tables are gathered row-wise and updated
row-sparsely by the optimizer (see optim.py); hidden dropout is applied to each GRU
layer's output and the dropped-out vector is what the layer carries to the next step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.core.config import NetworkConfig
from bench.core.optim import SparseRows


def _uniform_(t: torch.Tensor, fan_in: int, fan_out: int, gen: torch.Generator) -> None:
    sigma = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-sigma, sigma, generator=gen)


class OneHotGRUInput(nn.Module):
    """First GRU layer with one-hot input: its input weights are a sparse row lookup.

    Follows the official GRUEmbedding cell (h = (1-z)*h_prev + z*candidate).
    """

    def __init__(self, n_items: int, size: int):
        super().__init__()
        self.size = size
        self.Wx0 = nn.Parameter(torch.empty(n_items, 3 * size))
        self.Wrz0 = nn.Parameter(torch.empty(size, 2 * size))
        self.Wh0 = nn.Parameter(torch.empty(size, size))
        self.Bh0 = nn.Parameter(torch.zeros(3 * size))

    def reset_parameters(self, gen: torch.Generator):
        n = self.Wx0.shape[0]
        for k in range(3):
            _uniform_(self.Wx0[:, k * self.size : (k + 1) * self.size], n, self.size, gen)
        for k in range(2):
            _uniform_(self.Wrz0[:, k * self.size : (k + 1) * self.size], self.size, self.size, gen)
        _uniform_(self.Wh0, self.size, self.size, gen)
        nn.init.zeros_(self.Bh0)

    def forward(self, vx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        vx = vx + self.Bh0
        vrz = h @ self.Wrz0
        vx_x, vx_r, vx_z = vx.chunk(3, 1)
        vh_r, vh_z = vrz.chunk(2, 1)
        r = torch.sigmoid(vx_r + vh_r)
        z = torch.sigmoid(vx_z + vh_z)
        cand = torch.tanh((r * h) @ self.Wh0 + vx_x)
        return (1.0 - z) * h + z * cand


class GRU4RecModel(nn.Module):
    # step_all writes its scores into a caller's reusable buffer (`out`)
    fills_score_buffer = True

    def __init__(self, n_items: int, cfg: NetworkConfig):
        super().__init__()
        self.n_items = n_items
        self.layers = list(cfg.layers)
        self.constrained = cfg.constrained_embedding
        self.embedding = 0 if self.constrained else cfg.embedding
        self.onehot = not self.constrained and self.embedding == 0
        if self.constrained:
            n_input = self.layers[-1]
        elif self.embedding:
            self.E = nn.Parameter(torch.empty(n_items, self.embedding))
            n_input = self.embedding
        else:
            self.GE = OneHotGRUInput(n_items, self.layers[0])
            n_input = self.layers[0]
        first = 1 if self.onehot else 0
        sizes = [n_input, *self.layers]  # input size of layer i is sizes[i]
        self.cells = nn.ModuleList(
            nn.GRUCell(sizes[i], self.layers[i]) for i in range(first, len(self.layers))
        )
        self.drop_embed = nn.Dropout(cfg.dropout_p_embed)
        self.drop_hidden = nn.Dropout(cfg.dropout_p_hidden)
        self.Wy = nn.Parameter(torch.empty(n_items, self.layers[-1]))
        self.By = nn.Parameter(torch.zeros(n_items))

    def reset_parameters(self, gen: torch.Generator) -> None:
        """Uniform +-sqrt(6/(fan_in+fan_out)) per gate block, zero biases (official init)."""
        if self.embedding:
            _uniform_(self.E, self.n_items, self.embedding, gen)
        if self.onehot:
            self.GE.reset_parameters(gen)
        for cell in self.cells:
            h = cell.hidden_size
            for k in range(3):
                _uniform_(cell.weight_ih[k * h : (k + 1) * h], cell.input_size, h, gen)
                _uniform_(cell.weight_hh[k * h : (k + 1) * h], h, h, gen)
            nn.init.zeros_(cell.bias_ih)
            nn.init.zeros_(cell.bias_hh)
        _uniform_(self.Wy, self.n_items, self.layers[-1], gen)
        nn.init.zeros_(self.By)

    def sparse_tables(self) -> list[nn.Parameter]:
        """Item tables updated row-sparsely (never given a dense .grad)."""
        tables = [self.Wy, self.By]
        if self.embedding:
            tables.append(self.E)
        if self.onehot:
            tables.append(self.GE.Wx0)
        return tables

    def init_hidden(self, batch: int, device=None) -> list[torch.Tensor]:
        return [torch.zeros(batch, n, device=device) for n in self.layers]

    @staticmethod
    def _rows(table: torch.Tensor, idx: torch.Tensor, sparse: SparseRows | None) -> torch.Tensor:
        if sparse is None:
            return table.index_select(0, idx)
        rows = table.detach().index_select(0, idx).requires_grad_()
        sparse.append((table, idx, rows))
        return rows

    def _input_and_hidden(self, H: list[torch.Tensor], e: torch.Tensor, training: bool):
        """Run the GRU stack on the input rows `e`; H is updated in place.

        In one-hot mode `e` is the first layer's input projection, and (as in the
        reference) the embedding dropout acts on that layer's output, which is then the
        carried state; other layers get hidden dropout on their outputs.
        """
        drop_embed = training and self.drop_embed.p > 0  # p=0 would still cost a copy
        drop_hidden = training and self.drop_hidden.p > 0
        start = 0
        if self.onehot:
            e = self.GE(e, H[0])
            if drop_embed:
                e = self.drop_embed(e)
            H[0] = e
            start = 1
        elif drop_embed:
            e = self.drop_embed(e)
        out = e
        for i, cell in enumerate(self.cells, start=start):
            out = cell(out, H[i])
            if drop_hidden:
                out = self.drop_hidden(out)
            H[i] = out
        return out

    def step_sampled(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        H: list[torch.Tensor],
        sparse: SparseRows | None,
        training: bool = True,
    ) -> torch.Tensor:
        """One step: update H in place, return scores of the columns y (M x len(y))."""
        m = x.shape[0]
        if self.constrained:
            rows = self._rows(self.Wy, torch.cat([x, y]), sparse)
            e, out_w = rows[:m], rows[m:]
        else:
            table = self.E if self.embedding else self.GE.Wx0
            e = self._rows(table, x, sparse)
            out_w = self._rows(self.Wy, y, sparse)
        bias = self._rows(self.By, y, sparse)
        h = self._input_and_hidden(H, e, training)
        return torch.addmm(bias, h, out_w.T)

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The input table's rows of items x (dense; the trainer's sparse path is step_sampled)."""
        if self.constrained:
            return self.Wy.index_select(0, x)
        if self.embedding:
            return self.E.index_select(0, x)
        return self.GE.Wx0.index_select(0, x)

    def output_table(self) -> torch.Tensor:
        """[Wy | By] (n_items x (d+1)): scores of all items become one matmul, no bias pass."""
        return torch.cat([self.Wy, self.By[:, None]], dim=1)

    def step_all(
        self,
        x: torch.Tensor,
        H: list[torch.Tensor],
        table: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inference step: update H, return scores for every item (M x n_items).

        Pass `table=self.output_table()` when calling repeatedly with unchanged weights.
        The scores are computed item-major (table @ h^T) and returned as a transposed view:
        at evaluation's shapes that product is the faster one on the CPU (measured in
        benchmarks/README.md, "Evaluation"). `out`, a
        flat buffer of at least n_items * M floats reused from step to step, spares the
        page faults of a fresh result of that size every step.
        """
        h = self._input_and_hidden(H, self.input_rows(x), training=False)
        if table is None:
            table = self.output_table()
        if out is not None:
            out = out[: table.shape[0] * len(x)].view(table.shape[0], len(x))
        return torch.mm(table, torch.cat([h, h.new_ones(h.shape[0], 1)], dim=1).T, out=out).T
