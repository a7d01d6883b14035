"""One training step with a hand-derived backward pass: no autograd graph.

At GRU4Rec's sizes a step is dozens of small kernels, and on the CPU the autograd
engine's bookkeeping (graph nodes, saved tensors, transposes, zero-filled gradient
buffers) costs about as much as the arithmetic. This module runs the same forward
pass, keeps exactly what the backward pass needs and writes the gradients of the
dense parameters into `.grad` and those of the item-table rows into the optimizer's
row list, as the autograd path does. Its shapes depend only on the batch width, so on
a GPU the whole step (with the optimizer update) can be captured in a CUDA graph
(see graphs.py). tests/test_hand_derived.py checks every gradient against autograd.

Supported: shared (constrained) or separate input embedding, any number of layers,
embedding and hidden dropout, losses `ce` (with logQ) and `bpr-max` (with the ELU
final activation). One-hot input and the other losses use the autograd path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core import native, product_choice
from bench.core.losses import log_q_shift
from bench.core.model import GRU4RecModel
from bench.core.optim import SparseRows

HAND_DERIVED_LOSSES = ("ce", "bpr-max")


def hand_derived_supported(model: GRU4RecModel, loss: str) -> bool:
    return loss in HAND_DERIVED_LOSSES and not model.onehot


def _dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted-dropout mask (0 or 1/(1-p)), drawn from the global generator as nn.Dropout."""
    return torch.empty_like(like).bernoulli_(1.0 - p).div_(1.0 - p)


def ce_grad(O: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, scale * dLoss/dO) of cross-entropy on the diagonal.

    The reference's own form, -log(softmax_diag + 1e-24): one softmax (one pass of
    exponentials) gives both the loss and the gradient, row i of which is
    (softmax_i - onehot_i) * p/(p + 1e-24) with p the target's probability (the factor
    is 1 unless p underflows). logQ is applied by the caller through the bias.
    """
    P = torch.softmax(O, dim=1)
    p = P.diagonal()
    loss = -torch.log(p + 1e-24).sum()
    weight = p / (p + 1e-24) * scale
    P.diagonal().sub_(1.0)
    return loss, P.mul_(weight[:, None])


def bpr_max_grad(O: torch.Tensor, bpreg: float, elu_param: float, scale: float = 1.0):
    """(summed loss, scale * dLoss/dO) of BPR-max with the ELU final activation.

    With sm the softmax of the scores over the non-target columns, s = sigmoid(o_t - o)
    and S = sum(s*sm), Q = sum(o^2*sm) per row, loss = -log(S + 1e-24) + bpreg*Q and
      dL/do_k = sm_k * ((S - s_k^2) / (S + 1e-24) + bpreg * (o_k^2 + 2 o_k - Q))  (k != t)
      dL/do_t = -sum_k(s_k (1 - s_k) sm_k) / (S + 1e-24)
    """
    Oa = F.elu(O, elu_param) if elu_param > 0 else O
    X = Oa.clone()
    X.diagonal().fill_(float("-inf"))  # the softmax over the other columns: 0 at the target
    sm = torch.softmax(X, dim=1)
    s = torch.sigmoid_(Oa.diagonal()[:, None] - Oa)
    ssm = s * sm
    S = ssm.sum(dim=1, keepdim=True)
    Oa2 = Oa * Oa
    Q = (Oa2 * sm).sum(dim=1, keepdim=True)
    denom = S + 1e-24
    loss = torch.sum(-torch.log(denom) + bpreg * Q)
    s2sm = ssm.mul_(s)  # s^2 * sm
    t_grad = (s2sm.sum(dim=1, keepdim=True) - S).div_(denom)  # -sum(s (1 - s) sm) / denom
    # sm * (S - s^2) / denom + bpreg * sm * (o^2 + 2 o - Q), in place on the big buffers
    G = s2sm.div_(-denom).addcmul_(sm, S / denom)
    G.add_(Oa2.add_(Oa, alpha=2.0).sub_(Q).mul_(sm), alpha=bpreg)
    G.diagonal().copy_(t_grad[:, 0])
    if elu_param > 0:  # d elu/dx: 1 above zero, elu(x) + alpha below
        G.mul_(torch.where(O > 0, scale, Oa.add_(elu_param).mul_(scale)))
    elif scale != 1.0:
        G.mul_(scale)
    return loss, G


def _gates_backward(dh, h, gi, gh, hs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dgi, dgh): the GRU layer's backward through its gates. gi holds the activated
    gates [r | z | n], gh the hidden-side pre-activations (its n part, ghn, is used);
    dgi = [dr | dz | dn'] and dgh = [dr | dz | dn' * r]. native.gru_gates_backward is
    the same in one compiled pass."""
    rz, n, ghn = gi[:, : 2 * hs], gi[:, 2 * hs :], gh[:, 2 * hs :]
    r, z = rz[:, :hs], rz[:, hs:]
    dn = dh * (1.0 - z)
    dz = dh * (h - n)
    dnp = dn.mul_(1.0 - n * n)  # through tanh
    dgi = torch.empty(dh.shape[0], 3 * hs, dtype=dh.dtype, device=dh.device)
    torch.mul(dnp, ghn, out=dgi[:, :hs])  # dr
    dgi[:, hs : 2 * hs] = dz
    dgi[:, : 2 * hs].mul_(rz * (1.0 - rz))  # through the sigmoids
    dgi[:, 2 * hs :] = dnp
    dgh = dgi.clone()
    dgh[:, 2 * hs :].mul_(r)
    return dgi, dgh


def _grad_buffer(p: torch.Tensor) -> torch.Tensor:
    """p's .grad, allocated once and then written in place every step (out=)."""
    if p.grad is None or p.grad.shape != p.shape:
        p.grad = torch.empty_like(p)
    return p.grad


class HandDerivedStep:
    """Forward, loss, hand-written backward of one step, for one model and loss.

    With the compiled kernels (native.py) the gather of the item rows and the element-wise
    parts (the gates forward and backward with the bias gradients, the logQ-shifted output
    bias, the loss with its gradient and the output bias's gradient) are one call each;
    where a BLAS was found, the three large products (scores, the gradient to the hidden
    state, the item rows' gradient) and the GRU layer's input gradient are split between
    the threads, and the GRU layer's two independent products (forward: input and hidden
    side; backward: the two weight gradients) run side by side, half of the threads on
    each. Without them, the same step in PyTorch operators.
    """

    def __init__(
        self,
        model: GRU4RecModel,
        loss: str,
        bpreg: float,
        elu_param: float,
        log_q: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """log_q: the logQ shift of the output scores per item, (for targets, for sampled
        negatives), or None (no logQ correction)."""
        if not hand_derived_supported(model, loss):
            raise ValueError(f"fused step: unsupported (loss={loss}, one-hot={model.onehot})")
        self.model = model
        self.loss = loss
        self.bpreg = bpreg
        self.elu_param = elu_param
        self.log_q = log_q
        self.kernel = native.kernel()  # None: the PyTorch forms
        on_cpu = next(model.parameters()).is_cpu  # on a GPU the products are cuBLAS's
        self.split_products = on_cpu and product_choice.split_products_chosen(self.kernel)

    def compiled_kernels(self) -> list[str]:
        """The compiled kernels this step calls (empty on the PyTorch path)."""
        if self.kernel is None:
            return []
        loss = "ce_grad" if self.loss == "ce" else "bpr_max_grad"
        blas = ["gemm_split", "gemm_pair"] if self.split_products else []
        return [
            "gather_rows",
            *blas,
            "gru_gates_forward",
            "gru_gates_backward",
            "gather_bias",
            loss,
        ]

    def loss_and_grad(self, O: torch.Tensor, scale: float, dbias: torch.Tensor):
        """(summed loss, scale * dLoss/dO) with dO's column sums written into dbias; by the
        compiled kernel where built (it overwrites O with the gradient), else by the
        PyTorch form."""
        k = self.kernel
        if k is not None:
            fast = (
                native.ce_grad(k, O, scale, dbias)
                if self.loss == "ce"
                else native.bpr_max_grad(k, O, self.bpreg, self.elu_param, scale, dbias)
            )
            if fast is not None:
                return fast
        if self.loss == "ce":
            L, dO = ce_grad(O, scale)
        else:
            L, dO = bpr_max_grad(O, self.bpreg, self.elu_param, scale)
        torch.sum(dO, dim=0, out=dbias)
        return L, dO

    def _matmul(self, a, b, trans_a=False, trans_b=False, row_bias=None, out=None):
        """One large product, a @ b (+ row_bias), transposes by flag: by the compiled split
        product where this machine's choice is them (product_choice), else torch's."""
        if self.split_products and self.kernel is not None:
            c = native.matmul(self.kernel, a, b, trans_a, trans_b, row_bias, out)
            if c is not None:
                return c
        return self._torch_product(a, b, trans_a, trans_b, row_bias, out)

    def _matmul_pair(self, first: tuple, second: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent products, each (a, b, trans_a, trans_b, row_bias, out), side by
        side by the compiled pair product where this machine's choice is the split products
        (product_choice), else one after the other by torch's."""
        if self.split_products and self.kernel is not None:
            pair = native.matmul_pair(self.kernel, first, second)
            if pair is not None:
                return pair
        return self._torch_product(*first), self._torch_product(*second)

    @staticmethod
    def _torch_product(a, b, trans_a, trans_b, row_bias, out):
        """a @ b (+ row_bias) by torch: F.linear for a weight's transpose (addmm without a
        transposed view made in Python), mm otherwise."""
        if trans_b and not trans_a and out is None:
            return F.linear(a, b, row_bias)
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        into = {} if out is None else {"out": out}
        return torch.mm(a, b, **into) if row_bias is None else torch.addmm(row_bias, a, b, **into)

    def _rows(self, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """table[idx] of a (large) item table: by the compiled gather where built."""
        if self.kernel is not None:
            rows = native.gather_rows(self.kernel, table, idx)
            if rows is not None:
                return rows
        return table.index_select(0, idx)

    def _bias(self, cols: torch.Tensor, m: int) -> torch.Tensor:
        """The output bias of the scored columns, minus the logQ shift where configured."""
        By = self.model.By
        shift_t, shift_n = self.log_q if self.log_q is not None else (None, None)
        if self.kernel is not None:
            bc = native.gather_bias(self.kernel, By, shift_t, shift_n, cols, m)
            if bc is not None:
                return bc
        bc = By.index_select(0, cols)
        return bc if self.log_q is None else bc - log_q_shift(self.log_q, cols, m)

    def _gates_forward(self, gi, gh, h, hs: int) -> torch.Tensor:
        """The layer's new state; gi becomes the activated gates [r | z | n]."""
        if self.kernel is not None:
            out = native.gru_gates_forward(self.kernel, gi, gh, h)
            if out is not None:
                return out
        rz = torch.sigmoid_(gi[:, : 2 * hs].add_(gh[:, : 2 * hs]))
        r, z = rz[:, :hs], rz[:, hs:]
        n = torch.tanh_(gi[:, 2 * hs :].addcmul_(r, gh[:, 2 * hs :]))
        return torch.addcmul(n, z, h - n)  # (1-z)*n + z*h

    def _gates_backward(self, dh, h, gi, gh, hs: int, dbi, dbh):
        """(dgi, dgh), the bias gradients written into dbi and dbh."""
        if self.kernel is not None:
            gates = native.gru_gates_backward(self.kernel, dh, h, gi, gh, dbi, dbh)
            if gates is not None:
                return gates
        dgi, dgh = _gates_backward(dh, h, gi, gh, hs)
        torch.sum(dgi, dim=0, out=dbi)
        torch.sum(dgh, dim=0, out=dbh)
        return dgi, dgh

    def __call__(
        self,
        idx: torch.Tensor,
        m: int,
        H: list[torch.Tensor],
        sparse: SparseRows,
        batch_size: int,
    ) -> torch.Tensor:
        """Train step on the m inputs idx[:m] scored against the columns idx[m:] (targets
        first): one index tensor, so that the shared item table is read with one gather.

        H (detached states) is updated in place; dense gradients go to `.grad` (buffers
        written in place), row gradients to `sparse`. Returns the summed loss divided by
        batch_size. Written for a low per-step cost: every parameter is looked up once.
        """
        model = self.model
        x, cols = idx[:m], idx[m:]
        training = model.training
        p_embed = model.drop_embed.p if training else 0.0
        p_hidden = model.drop_hidden.p if training else 0.0
        Wy = model.Wy
        with torch.no_grad():
            if model.constrained:
                rows = self._rows(Wy, idx)
                e, Wc = rows[:m], rows[m:]
            else:
                E = model.E
                e = E.index_select(0, x)
                Wc = self._rows(Wy, cols)
            bc = self._bias(cols, m)
            mask_e = _dropout_mask(e, p_embed) if p_embed > 0 else None
            inp = e * mask_e if mask_e is not None else e
            hL, saved = self._layers_forward(inp, H, p_hidden)
            O = self._matmul(hL, Wc, trans_b=True, row_bias=bc)
            dbc = torch.empty_like(bc)
            L, dO = self.loss_and_grad(O, 1.0 / batch_size, dbc)
            dh = self._matmul(dO, Wc)
            if model.constrained:  # one buffer for all row gradients: no concatenation
                g_rows = torch.empty(idx.shape[0], Wc.shape[1], dtype=Wc.dtype, device=Wc.device)
                dWc = self._matmul(dO, hL, trans_a=True, out=g_rows[m:])
            else:
                dWc = self._matmul(dO, hL, trans_a=True)
            dh = self._layers_backward(dh, saved)
            if model.constrained:
                if mask_e is not None:
                    torch.mul(dh, mask_e, out=g_rows[:m])
                else:
                    g_rows[:m] = dh
                sparse.append((Wy, idx, g_rows))
            else:
                sparse.append((E, x, dh * mask_e if mask_e is not None else dh))
                sparse.append((Wy, cols, dWc))
            sparse.append((model.By, cols, dbc))
        return L / batch_size

    def _layers_forward(self, inp, H: list[torch.Tensor], p_hidden: float):
        """The GRU layers on `inp`, states updated in place; (last output, what backward needs)."""
        saved = []
        for i, cell in enumerate(self.model.cells):
            w_ih, w_hh, hs = cell.weight_ih, cell.weight_hh, cell.hidden_size
            b_ih, b_hh = cell.bias_ih, cell.bias_hh
            h = H[i]
            gi, gh = self._matmul_pair(
                (inp, w_ih, False, True, b_ih, None), (h, w_hh, False, True, b_hh, None)
            )
            out = self._gates_forward(gi, gh, h, hs)
            mask_h = _dropout_mask(out, p_hidden) if p_hidden > 0 else None
            if mask_h is not None:
                out.mul_(mask_h)
            saved.append((w_ih, w_hh, b_ih, b_hh, hs, inp, h, gi, gh, mask_h))
            H[i] = out
            inp = out
        return inp, saved

    def _layers_backward(self, dh: torch.Tensor, saved: list) -> torch.Tensor:
        """Weight gradients into `.grad` buffers, layer by layer; the input's gradient."""
        for w_ih, w_hh, b_ih, b_hh, hs, inp, h, gi, gh, mask_h in reversed(saved):
            if mask_h is not None:
                dh = dh * mask_h
            dgi, dgh = self._gates_backward(
                dh, h, gi, gh, hs, _grad_buffer(b_ih), _grad_buffer(b_hh)
            )
            self._matmul_pair(
                (dgi, inp, True, False, None, _grad_buffer(w_ih)),
                (dgh, h, True, False, None, _grad_buffer(w_hh)),
            )
            dh = self._matmul(dgi, w_ih)
        return dh
