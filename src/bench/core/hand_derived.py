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

from bench.core import native
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


class HandDerivedStep:
    """Forward, loss, hand-written backward of one step, for one model and loss."""

    def __init__(self, model: GRU4RecModel, loss: str, bpreg: float, elu_param: float):
        if not hand_derived_supported(model, loss):
            raise ValueError(f"fused step: unsupported (loss={loss}, one-hot={model.onehot})")
        self.model = model
        self.loss = loss
        self.bpreg = bpreg
        self.elu_param = elu_param
        self.kernel = native.kernel()  # gates' backward, BPR-max: one compiled pass each, if built

    def loss_and_grad(self, O: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, scale * dLoss/dO); BPR-max by its compiled kernel where built (it
        overwrites O with the gradient), else by its PyTorch form."""
        if self.loss == "ce":
            return ce_grad(O, scale)
        fast = self.kernel and native.bpr_max_grad(
            self.kernel, O, self.bpreg, self.elu_param, scale
        )
        return fast or bpr_max_grad(O, self.bpreg, self.elu_param, scale)

    def __call__(
        self,
        x: torch.Tensor,
        cols: torch.Tensor,
        H: list[torch.Tensor],
        sparse: SparseRows,
        batch_size: int,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Train step on inputs x scored against columns cols (targets first).

        H (detached states) is updated in place; dense gradients go to `.grad`, row
        gradients to `sparse`. Returns the summed loss divided by batch_size.
        """
        model = self.model
        m = x.shape[0]
        p_embed = model.drop_embed.p if model.training else 0.0
        p_hidden = model.drop_hidden.p if model.training else 0.0
        with torch.no_grad():
            if model.constrained:
                idx_in = torch.cat([x, cols])
                rows = model.Wy.index_select(0, idx_in)
                e, Wc = rows[:m], rows[m:]
            else:
                e = model.E.index_select(0, x)
                Wc = model.Wy.index_select(0, cols)
            bc = model.By.index_select(0, cols)
            if log_q is not None:  # logQ correction: a per-column shift of the scores
                bc = bc - log_q
            mask_e = _dropout_mask(e, p_embed) if p_embed > 0 else None
            inp = e * mask_e if mask_e is not None else e
            saved = []
            for i, cell in enumerate(model.cells):
                h = H[i]
                hs = cell.hidden_size
                gi = torch.addmm(cell.bias_ih, inp, cell.weight_ih.T)
                gh = torch.addmm(cell.bias_hh, h, cell.weight_hh.T)
                rz = torch.sigmoid_(gi[:, : 2 * hs].add_(gh[:, : 2 * hs]))
                r, z = rz[:, :hs], rz[:, hs:]
                ghn = gh[:, 2 * hs :]
                n = torch.tanh_(gi[:, 2 * hs :].addcmul_(r, ghn))
                out = torch.addcmul(n, z, h - n)  # (1-z)*n + z*h
                mask_h = _dropout_mask(out, p_hidden) if p_hidden > 0 else None
                if mask_h is not None:
                    out.mul_(mask_h)
                saved.append((inp, h, gi, gh, mask_h))
                H[i] = out
                inp = out
            hL = inp
            O = torch.addmm(bc, hL, Wc.T)
            L, dO = self.loss_and_grad(O, 1.0 / batch_size)
            dh = dO @ Wc
            if model.constrained:  # one buffer for all row gradients: no concatenation
                g_rows = torch.empty(m + Wc.shape[0], Wc.shape[1], dtype=Wc.dtype, device=Wc.device)
                dWc = torch.mm(dO.T, hL, out=g_rows[m:])
            else:
                dWc = dO.T @ hL
            dbc = dO.sum(dim=0)
            for i in range(len(model.cells) - 1, -1, -1):
                cell = model.cells[i]
                inp, h, gi, gh, mask_h = saved[i]
                hs = cell.hidden_size
                if mask_h is not None:
                    dh = dh * mask_h
                gates = (
                    native.gru_gates_backward(self.kernel, dh, h, gi, gh) if self.kernel else None
                )
                if gates is not None:
                    dgi, dgh = gates
                else:
                    dgi, dgh = _gates_backward(dh, h, gi, gh, hs)
                cell.weight_ih.grad = dgi.T @ inp
                cell.bias_ih.grad = dgi.sum(dim=0)
                cell.weight_hh.grad = dgh.T @ h
                cell.bias_hh.grad = dgh.sum(dim=0)
                dh = dgi @ cell.weight_ih
            if model.constrained:
                if mask_e is not None:
                    torch.mul(dh, mask_e, out=g_rows[:m])
                else:
                    g_rows[:m] = dh
                sparse.append((model.Wy, idx_in, g_rows))
            else:
                sparse.append((model.E, x, dh * mask_e if mask_e is not None else dh))
                sparse.append((model.Wy, cols, dWc))
            sparse.append((model.By, cols, dbc))
        return L / batch_size
