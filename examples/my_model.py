"""A model of your own, benchmarked by the harness (README "Benchmark your own model").

A GRU reads each session prefix; its last state scores every item through the item
embedding (tied input/output). The harness trains it on every prefix of every training
session, evaluates it with the shared evaluator and writes the same record as for
GRU4Rec and the baselines:

    python -m bench.run model=external model.target=examples.my_model:PrefixGRU
    python -m bench.run model=prefix_gru hydra.searchpath=[file://examples/conf]
    python -m bench.run -m hparams_search=prefix_gru hydra.searchpath=[file://examples/conf]

The constructor's keyword arguments are the knobs (model.params.hidden=128 ...); one it
does not take is an error. Scores are for the items 0 .. n_items - 1; prefixes come
left-aligned, padded on the right with bench.api.PAD (-1).
"""

import torch
from torch import nn

from bench.api import SessionModel


class PrefixGRU(SessionModel):
    name = "prefix_gru"  # the method's name in records, tables and studies
    title = "Prefix GRU (example)"

    def __init__(self, n_items: int, hidden: int = 64, dropout: float = 0.0, lr: float = 0.001):
        super().__init__(n_items)
        if hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"got hidden={hidden}, dropout={dropout}; expected hidden >= 1, 0 <= dropout < 1"
            )
        self.embedding = nn.Embedding(n_items, hidden)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.lr = lr

    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(prefixes.clamp(min=0)))  # padding is never read
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed)
        return last[-1] @ self.embedding.weight.T

    # loss(): the default full-softmax cross-entropy of score(); override it for another.

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
