"""The compiled kernels (row-sparse and dense Adagrad, the GRU gates' forward and backward,
the logQ-shifted output bias, the cross-entropy and BPR-max losses with their gradients,
SGNN-HN's row normalisation) against their PyTorch forms.

For Adagrad: the same operations in the same order, but torch's vectorised kernels round in two
places differently from portable C: measured here (AVX-512), its addcmul fuses the
multiply-add and its sqrt is within 1 ulp of the correctly rounded sqrtf (17% of
10,000 values one ulp apart, none more). So the first step's accumulators are equal bit
for bit and everything else agrees to float rounding. The gates' backward is bit-equal.
BPR-max, cross-entropy and the gates forward take exp from their own polynomial (sigmoid
and tanh within 3 ulp of the exact values, against torch's 1) and sum in another order, so
they agree to float rounding too; the output bias is the same subtraction, bit-equal.
"""

import contextlib
import copy
import logging
import re
import subprocess
from functools import partial

import numpy as np
import pytest
import torch

from bench.core import native
from bench.core.config import GRU4RecConfig
from bench.core.hand_derived import HandDerivedStep, _gates_backward, bpr_max_grad, ce_grad
from bench.core.model import GRU4RecModel
from bench.core.optim import IndexedAdagradM
from bench.core.train import SessionParallelTrainer, fit
from tests.conftest import make_sessions

# One rounding of sqrt, carried through a few steps; far below any real difference.
close = partial(torch.testing.assert_close, rtol=1e-6, atol=1e-7)
needs_kernel = pytest.mark.skipif(native.kernel() is None, reason="no C compiler on this machine")


@contextlib.contextmanager
def torch_threads(n: int):
    """torch, and the kernels on its OpenMP pool, at n threads inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tables(shape, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(*shape, generator=g)
    return [torch.nn.Parameter(start.clone()) for _ in range(2)]


@needs_kernel
@pytest.mark.parametrize("momentum", [0.0, 0.4])
@pytest.mark.parametrize("shape", [(50, 7), (50,)])
def test_kernel_update_equals_the_pytorch_update(momentum, shape):
    """Repeated rows (summed in index order), rows used in one step and not the next,
    1-D bias tables and 2-D weight tables: the same accumulators, tables and momentum."""
    compiled, reference = _tables(shape, seed=1)
    opts = [IndexedAdagradM([t], lr=0.07, momentum=momentum) for t in (compiled, reference)]
    opts[1].kernel = None
    g = torch.Generator().manual_seed(2)
    first_acc = None
    for _ in range(4):
        idx = torch.randint(0, 20, (33,), generator=g)  # many repeats among 20 rows
        grads = torch.randn(33, *shape[1:], generator=g)
        for t, opt in zip((compiled, reference), opts):
            opt.step(sparse=[(t, idx, grads.clone())])
        if first_acc is None:  # from zero, g*g + 0 rounds once on both sides
            first_acc = [o.state[t]["acc"].clone() for o, t in zip(opts, (compiled, reference))]
            assert torch.equal(*first_acc)
    close(compiled, reference)
    assert not torch.equal(compiled, _tables(shape, seed=1)[0])  # the steps did change it
    for name in opts[1].state_names:
        close(opts[0].state[compiled][name], opts[1].state[reference][name])
    assert opts[0].kernel is not None
    assert bool((opts[0]._scratch[compiled].slot == -1).all())  # slot map left clean


@needs_kernel
@pytest.mark.parametrize("momentum", [0.0, 0.4])
def test_dense_kernel_update_equals_the_foreach_update(momentum):
    """The GRU's dense tensors, all in one call: small and 1-D ones, and ones across several
    blocks of 4,096 and above the parallel threshold; four steps, the gradients written
    into the same buffers (the call's pointer arrays reused) or new ones (rebuilt), then
    the states loaded anew from a checkpoint (rebuilt again)."""
    g = torch.Generator().manual_seed(5)
    shapes = [(6, 4), (6,), (3, 5000), (4100,), (20_000,)]
    start = [torch.randn(s, generator=g) for s in shapes]
    params = [[torch.nn.Parameter(t.clone()) for t in start] for _ in range(2)]
    opts = [IndexedAdagradM(ps, lr=0.03, momentum=momentum) for ps in params]
    opts[1].kernel = None
    for step in range(4):
        if step == 3:
            saved = opts[1].state_dict()  # each loads its own copy: .to() shares tensors
            _old_states = [dict(opts[0].state[p]) for p in params[0]]  # their memory not reused
            for opt in opts:
                opt.load_state_dict(copy.deepcopy(saved))
        grads = [torch.randn(t.shape, generator=g) for t in start]
        for ps, opt in zip(params, opts):
            for p, gr in zip(ps, grads):
                if step in (1, 3):  # same memory as the step before
                    p.grad.copy_(gr)
                else:
                    p.grad = gr.clone()
            opt.step()
    for compiled, reference, before in zip(*params, start):
        close(compiled, reference)
        assert not torch.equal(compiled, before)
        for name in opts[1].state_names:
            close(opts[0].state[compiled][name], opts[1].state[reference][name])


def _gate_inputs(m: int, hs: int, seed: int):
    """(gi with activated gates, gh, dh, h) of one GRU layer."""
    g = torch.Generator().manual_seed(seed)
    gi = torch.cat([torch.rand(m, 2 * hs, generator=g), torch.rand(m, hs, generator=g) * 2 - 1], 1)
    gh, dh, h = (torch.randn(*s, generator=g) for s in ((m, 3 * hs), (m, hs), (m, hs)))
    return gi, gh, dh, h


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("m, hs", [(7, 5), (128, 400)])  # 128 x 400: the parallel passes
def test_compiled_gate_backward_equals_the_pytorch_form_exactly(m, hs, threads):
    """Same element-wise operations in the same order: dgi and dgh equal bit for bit; the
    bias gradients are their column sums, summed row by row in that order whatever the
    number of threads (bit-equal to a float32 running sum over the rows)."""
    gi, gh, dh, h = _gate_inputs(m, hs, seed=6)
    dbi, dbh = torch.full((3 * hs,), 9.0), torch.full((3 * hs,), 9.0)  # overwritten, not added to
    with torch_threads(threads):
        dgi, dgh = native.gru_gates_backward(native.kernel(), dh, h, gi, gh, dbi, dbh)
    ref_i, ref_h = _gates_backward(dh.clone(), h, gi, gh, hs)
    assert torch.equal(dgi, ref_i) and torch.equal(dgh, ref_h)
    for sums, ref in ((dbi, ref_i), (dbh, ref_h)):
        running = torch.zeros(3 * hs)
        for row in ref:
            running += row
        assert torch.equal(sums, running)
    assert native.gru_gates_backward(native.kernel(), dh, h.T.contiguous().T, gi, gh) is None


@needs_kernel
def test_compiled_gate_forward_is_the_same_with_any_number_of_threads():
    """Rows split between threads (128 x 400: parallel) give the same bits as one thread."""
    gi, gh, _, h = _gate_inputs(128, 400, seed=7)
    results = []
    for threads in (1, 2, 3):
        with torch_threads(threads):
            acts = gi.clone()
            out = native.gru_gates_forward(native.kernel(), acts, gh, h)
        results.append((acts, out))
    for acts, out in results[1:]:
        assert torch.equal(acts, results[0][0]) and torch.equal(out, results[0][1])


@needs_kernel
def test_compiled_sigmoid_and_tanh_are_within_three_ulp():
    """The gates forward's activations against float64, over magnitudes from 1e-4 to 50
    (tanh of small arguments keeps its relative precision), and saturation at the clamp."""
    g = torch.Generator().manual_seed(8)
    x = torch.cat([torch.randn(20_000, generator=g) * s for s in (1e-4, 0.01, 0.3, 1, 3, 10, 50)])
    x = x[x.abs() < 80]  # beyond, sigmoid is subnormal or 1 (checked below)
    gi = torch.stack([x, torch.zeros_like(x), x], 1)  # r and n gates see x; z and gh are 0
    native.gru_gates_forward(native.kernel(), gi, torch.zeros_like(gi), torch.zeros(len(x), 1))
    x64 = x.double()
    for ours, exact in ((gi[:, 0], torch.sigmoid(x64)), (gi[:, 2], torch.tanh(x64))):
        assert float(((ours.double() - exact).abs() / exact.abs()).max()) < 3 * 1.2e-7
    ends = torch.tensor([[88.0, 0, 88.0], [-100.0, 0, -100.0], [0.0, 0, 0.0]])
    native.gru_gates_forward(native.kernel(), ends, torch.zeros(3, 3), torch.zeros(3, 1))
    assert ends[:, 0].tolist()[::2] == [1.0, 0.5] and 0 <= ends[1, 0] < 1e-37
    assert ends[:, 2].tolist() == [1.0, -1.0, 0.0]


@needs_kernel
@pytest.mark.parametrize("m, hs", [(1, 3), (6, 17)])
def test_compiled_gate_forward_equals_the_pytorch_form(m, hs):
    """The new state and the activated gates the backward reads, against the PyTorch form."""
    g = torch.Generator().manual_seed(m * hs)
    gi, gh = (torch.randn(m, 3 * hs, generator=g) * 3 for _ in range(2))
    h = torch.randn(m, hs, generator=g).tanh()
    step = HandDerivedStep(GRU4RecModel(10, GRU4RecConfig(layers=[hs])), "ce", 0.0, 0.0)
    ours_gi = gi.clone()
    out = step._gates_forward(ours_gi, gh, h, hs)
    step.kernel = None
    ref_gi = gi.clone()
    ref = step._gates_forward(ref_gi, gh, h, hs)
    # an activation a few ulp off moves tanh's argument by that times gh (up to ~10 here)
    torch.testing.assert_close(ours_gi, ref_gi, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=2e-6)


@needs_kernel
@pytest.mark.parametrize("n, d", [(3, 7), (2000, 50)])
def test_compiled_centred_unit_equals_the_pytorch_form(n, d):
    """SGNN-HN's row normalisation and its backward (sgnnhn._CentredUnit), serial (3 rows
    of 7: fewer than the 16 partial sums) and parallel, against the PyTorch forms; the
    same bits with 1 and 2 threads; None for what the kernel does not take."""
    from bench.peers import sgnnhn

    g = torch.Generator().manual_seed(n)
    x, dy = torch.randn(n, d, generator=g) * 3 + 1, torch.randn(n, d, generator=g)

    def forms(use_kernel):
        kernel = native.kernel
        native.kernel = kernel if use_kernel else (lambda: None)
        try:
            xr = x.clone().requires_grad_()
            y = sgnnhn.centred_unit(xr)
            (dx,) = torch.autograd.grad(y, xr, dy)
        finally:
            native.kernel = kernel
        return y.detach(), dx

    (y, dx), (y_ref, dx_ref) = forms(True), forms(False)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-5, atol=1e-6)
    with torch_threads(1):
        y1, norm1 = native.centred_unit_forward(native.kernel(), x)
        dx1 = native.centred_unit_backward(native.kernel(), y1, norm1, dy)
    assert torch.equal(y1, y) and torch.equal(dx1, dx)
    assert native.centred_unit_forward(native.kernel(), x.T) is None  # not contiguous
    assert native.centred_unit_backward(native.kernel(), y1, norm1, dy[:1]) is None


@needs_kernel
@pytest.mark.parametrize("n", [5, 3000])
def test_compiled_row_gather_equals_index_select_exactly(n):
    """Rows in any order with repeats, serial (5) and parallel (3,000 rows of 40); an index
    outside the table is a clear error."""
    g = torch.Generator().manual_seed(n)
    table = torch.randn(5000, 40, generator=g)
    idx = torch.randint(0, 5000, (n,), generator=g)
    idx[-1] = idx[0]
    assert torch.equal(native.gather_rows(native.kernel(), table, idx), table.index_select(0, idx))
    assert native.gather_rows(native.kernel(), table.T, idx) is None  # not contiguous
    with pytest.raises(IndexError, match=r"outside \[0, 5000\)"):
        native.gather_rows(native.kernel(), table, torch.tensor([3, 5000]))


needs_blas = pytest.mark.skipif(
    native.kernel() is None or not native.kernel().blas,
    reason="no C compiler, or numpy brought no OpenBLAS here (torch computes the products)",
)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, d, c", [(5, 3, 7), (64, 100, 2112), (100, 40, 30)])
def test_split_products_equal_torchs(m, d, c, threads):
    """The step's three large products by gemm_split, split along either side of the
    result (one slice per thread): the scores with their bias, the gradient through them
    to the hidden state, and the item rows' gradient written into part of a larger
    buffer, as torch computes them, to float rounding (another BLAS, other sums)."""
    g = torch.Generator().manual_seed(m + d + c)
    h, Wc, dO, bias = (torch.randn(*s, generator=g) for s in ((m, d), (c, d), (m, c), (c,)))
    lib = native.kernel()
    with torch_threads(threads):
        for split_n in (True, False):
            scores = native.matmul(lib, h, Wc, trans_b=True, row_bias=bias, split_n=split_n)
            torch.testing.assert_close(scores, torch.addmm(bias, h, Wc.T), rtol=1e-5, atol=1e-5)
            dh = native.matmul(lib, dO, Wc, split_n=split_n)
            torch.testing.assert_close(dh, dO @ Wc, rtol=1e-5, atol=1e-4)
            rows = torch.full((m + c, d), 7.0)
            native.matmul(lib, dO, h, trans_a=True, out=rows[m:], split_n=split_n)
            torch.testing.assert_close(rows[m:], dO.T @ h, rtol=1e-5, atol=1e-5)
            assert bool((rows[:m] == 7.0).all())  # nothing written outside out
    assert native.matmul(lib, h.T, Wc) is None  # not contiguous: the caller uses torch


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("m, hs", [(3, 5), (64, 100), (128, 480)])
def test_pair_products_equal_torchs(m, hs, threads):
    """The GRU layer's two independent products by gemm_pair (half of the threads on each,
    an odd count split unevenly, one thread one after the other): forward with their
    biases, backward into the weight-gradient buffers, as torch computes them, to float
    rounding; None for what it does not take."""
    g = torch.Generator().manual_seed(m * hs + threads)
    inp, h = torch.randn(m, hs, generator=g), torch.randn(m, hs, generator=g)
    w_ih, w_hh = torch.randn(3 * hs, hs, generator=g), torch.randn(3 * hs, hs, generator=g)
    b_ih, b_hh = torch.randn(3 * hs, generator=g), torch.randn(3 * hs, generator=g)
    dgi, dgh = torch.randn(m, 3 * hs, generator=g), torch.randn(m, 3 * hs, generator=g)
    lib = native.kernel()
    with torch_threads(threads):
        gi, gh = native.matmul_pair(
            lib, (inp, w_ih, False, True, b_ih, None), (h, w_hh, False, True, b_hh, None)
        )
        dw_ih, dw_hh = torch.full((3 * hs, hs), 7.0), torch.full((3 * hs, hs), 7.0)
        native.matmul_pair(
            lib, (dgi, inp, True, False, None, dw_ih), (dgh, h, True, False, None, dw_hh)
        )
    close = partial(torch.testing.assert_close, rtol=1e-5, atol=1e-4)
    close(gi, torch.addmm(b_ih, inp, w_ih.T))
    close(gh, torch.addmm(b_hh, h, w_hh.T))
    close(dw_ih, dgi.T @ inp)
    close(dw_hh, dgh.T @ h)
    pair = (inp, w_ih, False, True, None, None), (h.T, w_hh, False, True, None, None)
    assert native.matmul_pair(lib, *pair) is None  # not contiguous: the caller uses torch


@needs_kernel
@pytest.mark.parametrize("logq", [True, False])
def test_compiled_output_bias_equals_the_pytorch_form_exactly(logq):
    """by[cols] minus the target or sample shift: the same subtraction, bit for bit; an
    index outside the table is a clear error."""
    g = torch.Generator().manual_seed(9)
    model = GRU4RecModel(20, GRU4RecConfig(layers=[4]))
    with torch.no_grad():
        model.By.copy_(torch.randn(20, generator=g))
    shifts = (torch.randn(20, generator=g), torch.randn(20, generator=g)) if logq else None
    step = HandDerivedStep(model, "ce", 0.0, 0.0, log_q=shifts)
    cols = torch.tensor([3, 3, 7, 0, 19, 3, 5])  # 3 targets (one repeated), 4 samples
    ours = step._bias(cols, 3)
    step.kernel = None
    assert torch.equal(ours, step._bias(cols, 3))
    if logq:  # the shift really differs between a column as a target and as a sample
        assert ours[0] != ours[5]
    with pytest.raises(IndexError, match=r"column index is outside \[0, 20\)"):
        native.gather_bias(native.kernel(), model.By.detach(), None, None, torch.tensor([20]), 1)


@needs_kernel
@pytest.mark.parametrize("m, c", [(3, 5), (7, 40), (16, 333), (37, 300)])
def test_compiled_cross_entropy_equals_the_pytorch_form(m, c):
    """Loss, gradient and its column sums; a row whose target's probability underflows
    contributes -log(1e-24) and no gradient, as in the reference."""
    g = torch.Generator().manual_seed(m + c)
    scores = torch.randn(m, c, generator=g) * 4
    scores[1, 1] = -200.0  # the target far below every other column
    scores[-1, 0] = 90.0
    ref_loss, ref_grad = ce_grad(scores.clone(), 1 / 8)
    dbias = torch.full((c,), 9.0)
    loss, grad = native.ce_grad(native.kernel(), scores.clone(), 1 / 8, dbias)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dbias, ref_grad.sum(0), rtol=1e-5, atol=1e-7)
    assert grad[1].abs().sum() == 0 and float(loss) > 55  # -log(1e-24) = 55.3
    assert native.ce_grad(native.kernel(), scores.T.contiguous().T, 1.0) is None


@needs_kernel
@pytest.mark.parametrize("m, c", [(3, 5), (7, 40), (16, 333), (100, 3000)])
def test_compiled_softmax_cross_entropy_equals_torchs(m, c):
    """The full softmax's loss and scaled gradient against F.cross_entropy's (float64),
    with a target far below every other score and one far above; rows split between
    threads give the same bits as one thread."""
    g = torch.Generator().manual_seed(m + c)
    scores = torch.randn(m, c, generator=g) * 4
    targets = torch.randint(0, c, (m,), generator=g)
    scores[0, targets[0]] = -150.0
    scores[-1, targets[-1]] = 90.0
    exact = scores.double().requires_grad_()
    ref = torch.nn.functional.cross_entropy(exact, targets, reduction="sum")
    (ref_grad,) = torch.autograd.grad(ref, exact)
    results = []
    for threads in (1, 2):
        with torch_threads(threads):
            grad = scores.clone()
            results.append((native.softmax_ce_grad(native.kernel(), grad, targets, 0.5), grad))
    (loss, grad), (loss2, grad2) = results
    assert loss == loss2 and torch.equal(grad, grad2)
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(grad.double(), 0.5 * ref_grad, rtol=1e-5, atol=1e-7)
    assert native.softmax_ce_grad(native.kernel(), scores.T.contiguous().T, targets, 1.0) is None
    with pytest.raises(IndexError, match=rf"outside \[0, {c}\)"):
        native.softmax_ce_grad(native.kernel(), scores.clone(), torch.full((m,), c), 1.0)


@needs_kernel
@pytest.mark.parametrize("elu_param", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("m, c", [(3, 5), (7, 40), (16, 333), (37, 300)])
def test_compiled_bpr_max_equals_the_pytorch_form(elu_param, m, c):
    """Loss, gradient and its column sums; widths not a multiple of the kernel's 16 lanes,
    scores spread wide enough to reach exp's clamp and a near-certain target."""
    g = torch.Generator().manual_seed(m * c)
    scores = torch.randn(m, c, generator=g) * 4
    scores[0, 1] = 120.0  # a negative far above the target: exp(a - a_t) clamps at exp(88)
    scores[-1, -1] = -120.0
    scores[1, 1] = 60.0  # a target far above every negative
    ref_loss, ref_grad = bpr_max_grad(scores.clone(), 0.7, elu_param, 1 / 8)
    dbias = torch.full((c,), 9.0)
    loss, grad = native.bpr_max_grad(native.kernel(), scores.clone(), 0.7, elu_param, 1 / 8, dbias)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    # atol: where (S - s^2)/denom and the bpreg term nearly cancel, relative error grows
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    # a sum of m such elements: their differences add up
    torch.testing.assert_close(dbias, ref_grad.sum(0), rtol=1e-5, atol=1e-6 * m**0.5)
    assert (
        native.bpr_max_grad(native.kernel(), scores.T.contiguous().T, 0.7, elu_param, 1.0) is None
    )


class _NoMemoryKernels:
    """Loss kernels that report a failed scratch allocation, as kernels.c does."""

    def ce_grad(self, *args):
        return -1.0

    def bpr_max_grad(self, *args):
        return -1.0


def test_a_loss_kernel_out_of_memory_is_said_not_taken_for_divergence():
    scores = torch.zeros(3, 5)
    with pytest.raises(MemoryError, match=r"ce loss kernel: out of memory .* 3 x 5 scores"):
        native.ce_grad(_NoMemoryKernels(), scores, 1.0)
    with pytest.raises(MemoryError, match="bpr-max loss kernel: out of memory"):
        native.bpr_max_grad(_NoMemoryKernels(), scores, 0.5, 0.5, 1.0)


@needs_kernel
def test_out_of_range_row_is_a_clear_error_and_changes_nothing():
    (table, _) = _tables((10, 3), seed=3)
    before = table.detach().clone()
    opt = IndexedAdagradM([table], lr=0.1, momentum=0.5)
    with pytest.raises(IndexError, match=r"outside \[0, 10\)"):
        opt.step(sparse=[(table, torch.tensor([1, 2, 10]), torch.ones(3, 3))])
    assert torch.equal(table, before)
    opt.step(sparse=[(table, torch.tensor([1, 1]), torch.ones(2, 3))])  # slots were reset
    assert not torch.equal(table[1], before[1]) and torch.equal(table[2], before[2])


@needs_kernel
@pytest.mark.parametrize("loss", ["ce", "bpr-max"])
def test_training_with_the_kernel_equals_training_without(loss):
    """Two epochs of the fused step with momentum and dropout: the same weights."""
    train = make_sessions(np.array([4, 2, 7, 3, 5, 6, 2, 8, 3, 4, 5, 9, 2, 3]), n_items=30)
    cfg = GRU4RecConfig(
        layers=[12],
        batch_size=6,
        n_sample=10,
        n_epochs=2,
        learning_rate=0.05,
        momentum=0.3,
        dropout_p_hidden=0.2,
        loss=loss,
    )
    states = []
    for use_kernel in (True, False):
        eng = SessionParallelTrainer(cfg, train, 30, seed=4)
        if not use_kernel:
            eng.optimizer.kernel = None
            eng.hand_derived.kernel = None
        fit(eng)
        assert bool(eng.optimizer._scratch) == use_kernel
        states.append(eng.model.state_dict())
    # the kernels' own exp (loss, sigmoid, tanh) and summation order add a few ulp per step
    for name, value in states[1].items():
        torch.testing.assert_close(states[0][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_without_a_compiler_the_pytorch_path_is_used_and_said(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    native.kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="bench.core.native"):
            opt = IndexedAdagradM([torch.nn.Parameter(torch.zeros(3, 2))], lr=0.1)
        assert opt.kernel is None
        (record,) = caplog.records
        assert "pure-PyTorch path" in record.getMessage()
        assert "no-such-cc" in record.getMessage()
    finally:
        native.kernel.cache_clear()


@needs_kernel
def test_a_failed_openmp_build_falls_back_to_the_serial_one(monkeypatch, tmp_path, caplog):
    """An OpenMP build that does not compile (here: a flag the compiler refuses) leaves
    the serial kernels, after one line saying so."""
    monkeypatch.setattr(native, "openmp_flags", lambda: ("-fno-such-openmp-flag",))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    native.kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="bench.core.native"):
            lib = native.kernel()
        assert lib is not None and lib.openmp is False
        (record,) = caplog.records
        assert "serial build" in record.getMessage()
    finally:
        native.kernel.cache_clear()


@needs_kernel
def test_bench_blas_0_leaves_the_large_products_to_torch(monkeypatch):
    monkeypatch.setenv("BENCH_BLAS", "0")
    native.kernel.cache_clear()
    try:
        lib = native.kernel()
        assert lib.blas is False
        assert native.matmul(lib, torch.ones(2, 3), torch.ones(3, 4)) is None
    finally:
        native.kernel.cache_clear()


def test_bench_native_0_selects_the_pytorch_path(monkeypatch):
    monkeypatch.setenv("BENCH_NATIVE", "0")
    native.kernel.cache_clear()
    try:
        assert native.kernel() is None
    finally:
        native.kernel.cache_clear()


@needs_kernel
def test_kernels_share_torchs_openmp_runtime():
    """Where torch brought GNU libgomp, the kernels are built with OpenMP and bind to that
    same runtime: still one OpenMP library in the process, so one thread pool."""
    if native.loaded_openmp() != {"libgomp.so.1"}:
        pytest.skip(f"torch's OpenMP runtime here: {native.loaded_openmp() or 'none'}")
    assert native.kernel().openmp
    assert native.loaded_openmp() == {"libgomp.so.1"}


@needs_kernel
@pytest.mark.parametrize("loss", ["ce", "bpr-max"])
def test_kernel_results_do_not_depend_on_the_thread_count(loss):
    """Above the size where the loops go parallel: loss, gradient, its column sums and
    the row-sparse and dense updates are bit-equal with 1 and 2 threads."""
    g = torch.Generator().manual_seed(12)
    scores = torch.randn(64, 600, generator=g) * 3
    idx = torch.randint(0, 2000, (1500,), generator=g)  # about 1,060 distinct rows of 50
    rows, dense = torch.randn(1500, 50, generator=g), torch.randn(40_000, generator=g)
    out = []
    for threads in (1, 2):
        with torch_threads(threads):
            dbias = torch.empty(600)
            if loss == "ce":
                L, G = native.ce_grad(native.kernel(), scores.clone(), 0.1, dbias)
            else:
                L, G = native.bpr_max_grad(native.kernel(), scores.clone(), 0.5, 0.5, 0.1, dbias)
            table, acc = torch.ones(2000, 50), torch.zeros(2000, 50)
            native.adagrad_rows(
                native.kernel(),
                native.RowScratch(2000),
                table,
                acc,
                None,
                idx,
                rows,
                0.05,
                1e-6,
                0.0,
            )
            flat, flat_acc, mom = torch.ones(40_000), torch.zeros(40_000), torch.zeros(40_000)
            plan = native.DenseTensors(None, None, [flat], [flat_acc], [mom], [dense])
            native.adagrad_dense(native.kernel(), plan, 0.05, 1e-6, 0.3)
            out.append((L, G, dbias, table, acc, flat, flat_acc, mom))
    for one, two in zip(*out):
        assert torch.equal(one, two)


def test_the_split_products_are_checked_against_torch_when_first_loaded(monkeypatch, caplog):
    """A BLAS whose products differ from torch's is not used: one warning, torch's products."""

    class Broken:
        blas = True

        def gemm_split(self, *args):
            return 0  # leaves the result unwritten

    assert not native.products_agree(Broken())
    native.kernel.cache_clear()
    monkeypatch.setattr(native, "products_agree", lambda lib: False)
    try:
        with caplog.at_level(logging.WARNING, logger=native.__name__):
            lib = native.kernel()
        if lib is None:
            pytest.skip("no C compiler on this machine: no kernels to check")
        found = native.numpy_openblas() is not None
        assert lib.blas is False
        assert ("gave other products than torch" in caplog.text) == found
    finally:
        monkeypatch.undo()
        native.kernel.cache_clear()  # the next use loads and checks the library afresh
    lib = native.kernel()
    assert lib is None or lib.blas == found
    if lib is not None and lib.blas:
        assert native.products_agree(lib)


def _innermost_loop_line(lines: list[str], call: int) -> int:
    """1-based line of the closest `for (` at or above the 0-based line `call`."""
    return next(i + 1 for i in range(call, -1, -1) if "for (" in lines[i])


def test_every_loop_that_calls_the_exp_polynomial_is_vectorised(tmp_path):
    """GCC's own report on the kernels as native.build compiles them: each loop that calls
    exp_poly (or sigmoid/tanh from it) is vectorised. Without -fno-trapping-math GCC kept
    the clamps as branches and, for AVX2 (no masked operations), vectorised none of them:
    the softmax kernel 4.7x slower on the AMD EPYC hosts."""
    cc = native.compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout if cc else ""
    if "Free Software Foundation" not in version:
        pytest.skip(f"the vectoriser report read here is GCC's; compiler: {cc or 'none'}")
    for flags in native.flag_sets():  # build's order: its fallback where the first fails
        report = [*flags, "-fopt-info-vec-optimized"]
        cmd = [cc, *report, "-o", str(tmp_path / "k.so"), str(native.SOURCE), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stderr[-2000:]
    vectorised = {
        int(m.group(1))
        for m in re.finditer(r"kernels\.c:(\d+):\d+: optimized: loop vectorized", done.stderr)
    }
    lines = native.SOURCE.read_text().splitlines()
    calls = [
        i
        for i, line in enumerate(lines)
        if re.search(r"\b(exp_poly|sigmoid_poly|tanh_poly)\(", line)
        and not line.startswith("static")  # the definitions themselves
        and "return" not in line  # one polynomial built on another
    ]
    loops = {_innermost_loop_line(lines, i) for i in calls}
    assert len(loops) == 7  # exp-and-sum (2), the gates forward (2), BPR-max (3)
    assert loops <= vectorised, f"not vectorised: kernels.c lines {sorted(loops - vectorised)}"


@pytest.mark.parametrize(
    "lines, name",
    [
        (
            {"model name": "AMD EPYC", "cpu family": "25", "model\t": "17"},
            "AMD EPYC (family 25, model 17)",
        ),
        (
            {"model name": "Intel(R) Xeon(R) Platinum 8488C", "cpu family": "6", "model\t": "143"},
            "Intel(R) Xeon(R) Platinum 8488C",
        ),
        ({"model name": "AMD EPYC"}, "AMD EPYC"),
    ],
)
def test_a_cpu_named_only_by_its_brand_gets_its_family_and_model(monkeypatch, lines, name):
    """Measurements are keyed by the CPU's name: two EPYC generations must not share one."""

    def cpu_info(*keys):
        key = next((k for k in keys if k in lines), None)
        return f"{key}\t: {lines[key]}" if key else None

    monkeypatch.setattr(native, "_cpu_info", cpu_info)
    assert native.cpu_name() == name
