"""Full-softmax cross-entropy of scores that are a product with an item table.

The output layer is what session models over large catalogues pay for: B x n_items
scores, forward and backward. Autograd through `F.cross_entropy(h @ table.T, y)` keeps
the scores and their log-softmax, and its backward makes a third B x n_items pass before
the two products. Here the scores buffer is turned into the softmax in place and becomes
the gradient in place (by one compiled kernel on the CPU, native.softmax_ce_grad: three
passes over each row), so one B x n_items matrix lives and the time is the three matrix
products plus those passes; the backward only multiplies it by the loss's own gradient
where that is not 1. On the CPU the products go to the split products of the compiled
kernels (native.matmul) or to torch's, whichever this machine measured faster at this
thread count on the peers' output-layer shapes (product_choice's `output` family: hundreds
of rows against tens of thousands of items, a choice of its own since the GRU4Rec step's
shapes can rank the two the other way). Measured: the split faster on the AMD EPYC hosts
(0.67-0.96 of torch's time at one thread); on the Intel Xeon torch's 1.04-1.23x faster at
11 of 12 shapes (batch 100-400, 50-256 units, one and two threads), the split 1.35x
faster at 400 x 50 on one thread. Same value and gradients as the autograd form (tested).
"""

from __future__ import annotations

import torch

from bench.core import native, product_choice


def _product(a, b, trans_a=False, trans_b=False) -> torch.Tensor:
    """a @ b (a.T, b.T by flag) by the compiled split product where this machine's choice
    for the output layer is them, else by torch."""
    lib = native.kernel() if a.is_cpu else None
    if product_choice.split_products_chosen(lib, "output"):
        c = native.matmul(lib, a, b, trans_a, trans_b)
        if c is not None:
            return c
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


class _FullSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor):
        scores = _product(h, table, trans_b=True)
        n = len(targets)
        lib = native.kernel() if scores.is_cpu else None
        total = native.softmax_ce_grad(lib, scores, targets, 1.0 / n) if lib is not None else None
        if total is not None:  # the scores became the mean loss's gradient
            ctx.save_for_backward(h, table, scores)
            return scores.new_tensor(total / n)
        rows = torch.arange(n, device=h.device)
        target_scores = scores[rows, targets]
        top = scores.amax(1, keepdim=True)
        probs = scores.sub_(top).exp_()
        total = probs.sum(1, keepdim=True)
        probs.div_(total)
        loss = (total.log().squeeze(1) + top.squeeze(1) - target_scores).mean()
        grad = probs  # softmax minus the one-hot target, over n: the scores' gradient
        grad[rows, targets] -= 1.0
        grad.div_(n)
        ctx.save_for_backward(h, table, grad)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        h, table, grad = ctx.saved_tensors
        # the loss scaled further on (a weighted sum of losses); on a GPU without asking
        if not grad.is_cpu or grad_loss.item() != 1.0:
            grad = grad * grad_loss
        grad_h = _product(grad, table) if ctx.needs_input_grad[0] else None
        grad_table = _product(grad, h, trans_a=True) if ctx.needs_input_grad[1] else None
        return grad_h, grad_table, None


def full_softmax_cross_entropy(
    h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of softmax(h @ table.T) against `targets` (B item indices)."""
    return _FullSoftmaxCE.apply(h, table, targets)
