"""Optimizers with row-sparse updates for the item tables, as in the official GRU4Rec.

The official code uses Adagrad with heavy-ball momentum on the Adagrad-scaled step
(`IndexedAdagradM`) and updates the embedding tables lazily: accumulator and momentum
of a row change only when the row was used. Instead of sparse gradient tensors (slow
`coalesce`), the trainer hands over (table, row indices, gradient rows); the gradients
of repeated rows are summed onto the unique rows, which are then updated once.
`index_select`/`index_copy_` are used throughout: on CPU they are faster than advanced
indexing.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from bench.core import native

# (table, row indices, gradient of those rows); repeated indices are summed.
SparseRows = list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]]


class IndexedOptimizer(Optimizer):
    """Base: a per-element update rule applied to dense tensors and to used rows alike."""

    state_names: tuple[str, ...] = ()
    # Deduplicate rows without host sync (for CUDA graphs; see static_rows).
    static_rows: bool = False

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self.n_steps = 0

    def state_dict(self) -> dict:
        """torch's state (per-parameter accumulators, momentum) plus the step counter."""
        return {**super().state_dict(), "n_steps": self.n_steps}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.n_steps = int(state_dict.pop("n_steps", 0))
        super().load_state_dict(state_dict)

    def _state(self, p: torch.Tensor) -> dict:
        st = self.state[p]
        if not st:
            for name in self.state_names:
                st[name] = torch.zeros_like(p)
        return st

    def rule(self, g: torch.Tensor, states: dict[str, torch.Tensor], group: dict):
        """Return (delta for the parameter, new state values) for gradient g."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None, sparse: SparseRows = ()):  # type: ignore[override]
        return self.update(sparse)

    @torch.no_grad()
    def update(self, sparse: SparseRows = ()) -> None:
        """The step itself; the engine calls it directly, skipping torch's step hooks."""
        self.n_steps += 1
        group = self.param_groups[0]
        dense = [p for p in group["params"] if p.grad is not None]
        if dense:
            self._dense_step(dense, group)
        for p, idx, g_rows in sparse:
            self._rows_step(p, idx, g_rows, group)
        return None

    def _dense_step(self, params: list[torch.Tensor], group: dict) -> None:
        for p in params:
            st = self._state(p)
            delta, new = self.rule(p.grad, {k: st[k] for k in self.state_names}, group)
            for k in self.state_names:
                st[k].copy_(new[k])
            p.add_(delta)

    def _rows_step(self, p: torch.Tensor, idx: torch.Tensor, g_rows: torch.Tensor, group: dict):
        st = self._state(p)
        rows, g = self._dedup(idx, g_rows)
        delta, new = self.rule(g, {k: st[k].index_select(0, rows) for k in self.state_names}, group)
        for k in self.state_names:
            st[k].index_copy_(0, rows, new[k])
        self._add_rows(p, rows, delta)

    def _add_rows(self, p: torch.Tensor, rows: torch.Tensor, delta: torch.Tensor) -> None:
        if self.static_rows:  # repeated rows: writing identical values is idempotent, adding is not
            p.index_copy_(0, rows, p.index_select(0, rows).add_(delta))
        else:
            p.index_add_(0, rows, delta)

    def _dedup(self, idx: torch.Tensor, g_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, summed gradient per row): each used row once, or `static_rows`'s layout."""
        if self.static_rows:
            return static_rows(idx, g_rows)
        rows, inverse = torch.unique(idx, return_inverse=True)
        g = torch.zeros((len(rows), *g_rows.shape[1:]), dtype=g_rows.dtype, device=g_rows.device)
        return rows, g.index_add_(0, inverse, g_rows)


def static_rows(idx: torch.Tensor, g_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicate with shapes fixed by len(idx) and no host synchronisation.

    `torch.unique` must tell the host how many rows it found, which a CUDA graph cannot
    capture. Here the U distinct rows fill the first U of len(idx) slots and every
    further slot repeats the last one, gradient included: those slots compute the same
    new values as the slot they copy, so writing all of them back (index_copy_) gives
    the same result as writing each row once.
    """
    n = idx.shape[0]
    sorted_idx, perm = torch.sort(idx)
    first = torch.ones(n, dtype=torch.bool, device=idx.device)
    first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    slot_sorted = torch.cumsum(first, 0) - 1
    slot = torch.empty_like(slot_sorted).scatter_(0, perm, slot_sorted)
    g = torch.zeros((n, *g_rows.shape[1:]), dtype=g_rows.dtype, device=g_rows.device)
    g.index_add_(0, slot, g_rows)
    rows = torch.zeros_like(idx).scatter_(0, slot_sorted, sorted_idx)
    src = torch.minimum(torch.arange(n, device=idx.device), slot_sorted[-1])
    return rows.index_select(0, src), g.index_select(0, src)


class IndexedAdagradM(IndexedOptimizer):
    """Adagrad (acc += g^2, step g/sqrt(acc+eps)) with classical momentum on that step."""

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6):
        if lr <= 0 or momentum < 0 or eps <= 0:
            raise ValueError(f"invalid Adagrad settings lr={lr} momentum={momentum} eps={eps}")
        self.state_names = ("acc", "mom") if momentum > 0 else ("acc",)
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))
        self.kernel = native.kernel()  # None: the PyTorch form below
        self._dense_plan: native.DenseTensors | None = None
        self._scratch: dict[torch.Tensor, native.RowScratch] = {}

    def _dense_step(self, params, group):
        """The compiled kernel where it applies (one pass over all the tensors), else the
        same rule on all dense tensors at once (foreach kernels: few launches)."""
        if self.kernel is not None and self._dense_kernel_applies(params):
            native.adagrad_dense(
                self.kernel, self._dense_plan, group["lr"], group["eps"], group["momentum"]
            )
            return
        grads = [p.grad for p in params]
        sts = [self._state(p) for p in params]
        accs = [st["acc"] for st in sts]
        torch._foreach_addcmul_(accs, grads, grads)
        denom = torch._foreach_add(accs, group["eps"])
        torch._foreach_sqrt_(denom)
        if group["momentum"] > 0:
            moms = [st["mom"] for st in sts]
            torch._foreach_mul_(moms, group["momentum"])
            torch._foreach_addcdiv_(moms, grads, denom, value=-group["lr"])
            torch._foreach_add_(params, moms)
        else:
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])

    def _dense_kernel_applies(self, params) -> bool:
        """Whether adagrad_dense can update params, its call (self._dense_plan) made ready:
        the gradients are checked every step, the pointer arrays rebuilt (and the
        parameters and states checked) when a parameter's or gradient's memory moved or
        the states were replaced (load_state_dict puts in a new `self.state`)."""
        grads = [p.grad for p in params]
        if not native.cpu_float32(*grads):
            return False
        plan = self._dense_plan
        key = tuple(t.data_ptr() for t in (*params, *grads))
        if plan is None or plan.key != key or plan.owner is not self.state:
            states = [self._state(p) for p in params]
            if not all(native.usable(p, p.grad, *st.values()) for p, st in zip(params, states)):
                return False
            moms = [st["mom"] for st in states] if "mom" in self.state_names else None
            accs = [st["acc"] for st in states]
            self._dense_plan = native.DenseTensors(key, self.state, params, accs, moms, grads)
        return True

    def _rows_step(self, p, idx, g_rows, group):
        """The compiled kernel where it applies (native.py; same result), else the
        specialised, in-place form of `rule` on the used rows (fewer temporaries)."""
        st = self._state(p)
        mom = st.get("mom")
        if (
            self.kernel is not None
            and not self.static_rows
            and native.usable(p, g_rows, *st.values(), idx=idx)
        ):
            if p not in self._scratch:
                self._scratch[p] = native.RowScratch(p.shape[0])
            native.adagrad_rows(
                self.kernel,
                self._scratch[p],
                p,
                st["acc"],
                mom,
                idx,
                g_rows,
                group["lr"],
                group["eps"],
                group["momentum"],
            )
            return
        rows, g = self._dedup(idx, g_rows)
        acc = st["acc"].index_select(0, rows).addcmul_(g, g)
        st["acc"].index_copy_(0, rows, acc)
        # -lr * g / sqrt(acc + eps)
        delta = g.div_(acc.add_(group["eps"]).sqrt_()).mul_(-group["lr"])
        if group["momentum"] > 0:
            delta = st["mom"].index_select(0, rows).mul_(group["momentum"]).add_(delta)
            st["mom"].index_copy_(0, rows, delta)
        self._add_rows(p, rows, delta)


class IndexedAdam(IndexedOptimizer):
    """Adam with lazy (row-wise) moments for the item tables; for ablations."""

    state_names = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    def rule(self, g, states, group):
        b1, b2 = group["betas"]
        m = b1 * states["m"] + (1 - b1) * g
        v = b2 * states["v"] + (1 - b2) * g * g
        t = self.n_steps
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        return -group["lr"] * m_hat / (torch.sqrt(v_hat) + group["eps"]), {"m": m, "v": v}


class IndexedSGD(IndexedOptimizer):
    """Plain SGD with optional heavy-ball momentum; for ablations."""

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.0):
        self.state_names = ("mom",) if momentum > 0 else ()
        super().__init__(params, dict(lr=lr, momentum=momentum))

    def rule(self, g, states, group):
        if group["momentum"] > 0:
            mom = states["mom"] * group["momentum"] - group["lr"] * g
            return mom, {"mom": mom}
        return -group["lr"] * g, {}


def make_optimizer(name: str, params, learning_rate: float, momentum: float) -> IndexedOptimizer:
    if name == "adagrad_m":
        return IndexedAdagradM(params, lr=learning_rate, momentum=momentum)
    if name == "sgd":
        return IndexedSGD(params, lr=learning_rate, momentum=momentum)
    if name == "adam":
        return IndexedAdam(params, lr=learning_rate)
    raise ValueError(f"optimizer: unknown '{name}'; expected adagrad_m, adam or sgd")
