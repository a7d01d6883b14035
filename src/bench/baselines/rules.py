"""Rule baselines that score from the current item only (Ludewig & Jannach 2018).

AR (association rules of size two): w(a, b) counts, over the training sessions, the pairs
of positions holding a and b in either order; an item repeated in a session pairs with
itself. SR (sequential rules): w(a, b) sums 1/g over the pairs where b follows a g <= steps
positions later in the same session ("div" weighting of session-rec). Both keep only the
`pruning` strongest rules per item; an item with no rules scores every candidate 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bench.baselines.knn import ItemTable, session_item_matrix
from bench.data.sessions import Sessions


def association_weights(train: Sessions, n_items: int) -> sp.csr_matrix:
    """C^T C minus each item's event count on the diagonal (C = session x item counts):
    for a != b that is c_a c_b pairs per session; for a == b, c_a (c_a - 1)."""
    counts = session_item_matrix(train, n_items)
    w = (counts.T @ counts).tocsr()
    w.setdiag(w.diagonal() - train.support(n_items))
    w.eliminate_zeros()
    return w


def sequential_weights(train: Sessions, n_items: int, steps: int) -> sp.csr_matrix:
    """sum over (a at position p, b at position p + g), 1 <= g <= steps, of 1/g."""
    session_of_event = np.repeat(np.arange(train.n_sessions), train.lengths)
    rows, cols, vals = [], [], []
    for g in range(1, steps + 1):
        same = session_of_event[:-g] == session_of_event[g:]
        rows.append(train.items[:-g][same])
        cols.append(train.items[g:][same])
        vals.append(np.full(int(same.sum()), 1.0 / g))
    if not rows:
        return sp.csr_matrix((n_items, n_items))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )  # duplicates summed


class _LastItemRules(ItemTable):
    def __init__(self, pruning: int):
        if pruning < 1:
            raise ValueError(f"got pruning={pruning}; expected a positive number of rules per item")
        super().__init__(pruning)
        self.pruning = pruning


class AssociationRules(_LastItemRules):
    def __init__(self, pruning: int = 20):
        super().__init__(pruning)

    def weights(self, train: Sessions, n_items: int) -> sp.csr_matrix:
        return association_weights(train, n_items)


class SequentialRules(_LastItemRules):
    def __init__(self, steps: int = 10, pruning: int = 20):
        super().__init__(pruning)
        if steps < 1:
            raise ValueError(f"got steps={steps}; expected a positive integer")
        self.steps = steps

    def weights(self, train: Sessions, n_items: int) -> sp.csr_matrix:
        return sequential_weights(train, n_items, self.steps)
