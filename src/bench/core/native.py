"""The compiled kernels of the training step (kernels.c: row-sparse and dense Adagrad, the
gather of item rows, the split large matrix products, the GRU gates' forward and backward,
the logQ-shifted output bias, the cross-entropy and BPR-max losses with their gradients),
with the PyTorch fallback.

The kernels are plain C with no Python or torch headers: the file compiles in well under a
second with the system's C compiler and is called through ctypes on the tensors' own
memory. `make` builds them at install time (`python -m bench.core.native`) into a cache
keyed by the source, compiler and flags; a process that finds no build compiles it once.
Where torch runs on GNU OpenMP, the row loops (row-sparse update, losses) and the dense
update run in parallel on torch's own thread pool (openmp_flags): with torch's second
worker spinning between its matrix products, that core was otherwise idle during the
kernels (benchmarks/step_profile.py measures both builds). The step's three large products
go to the OpenBLAS that numpy ships, single-threaded, one slice of the result per thread
of that pool (numpy_openblas, matmul), which beats torch's own two-thread product at the
grid's shapes (benchmarks/throughput.py); where numpy brought no
OpenBLAS (or BENCH_BLAS=0) torch computes them. Where no C compiler is present (or
BENCH_NATIVE=0), `kernel()` returns None and the optimizer and the fused step keep their
PyTorch forms, after one line saying so.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from bench.atomic import atomic_path
from bench.paths import default_cache_dir

SOURCE = Path(__file__).with_name("kernels.c")
# No contraction into fused multiply-adds: the kernel must round as PyTorch's kernels do.
# -fno-trapping-math (as PyTorch's own build): without it GCC may not turn the comparisons
# in exp_poly's clamps into selects (a comparison could raise a floating-point exception).
# It then vectorised the loops that call exp_poly only with AVX-512's masked operations
# (the Intel Xeon hosts here), not for AVX2 (the AMD EPYC: the softmax kernel 4.7x slower
# at 256 x 43k). It changes no value: every kernel's output bit for bit the same.
CFLAGS = (
    "-O3",
    "-std=c99",
    "-fPIC",
    "-shared",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
)
# Tuned for this CPU where the compiler allows (1.3-1.5x on the update at 100 units); the
# cache key holds the CPU's flags, so a home shared between machines gets one build each.
NATIVE_FLAGS = ("-march=native",)
log = logging.getLogger(__name__)


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cpu_info(*keys: str) -> str | None:
    """The first /proc/cpuinfo line starting with one of `keys`; None where Linux does
    not tell."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return next((ln for ln in text.splitlines() if ln.startswith(keys)), None)


def _cpu_flags() -> str:
    line = _cpu_info("flags", "Features")
    return platform.processor() if line is None else line


def cpu_name() -> str:
    """The CPU's model name (x86 Linux), else the platform's processor string: what a
    measurement records, since which BLAS or kernel is faster depends on it. A virtual
    machine may show only the brand ("AMD EPYC"), which hosts of different generations
    share: the family and model numbers are added then."""
    value = lambda line: line.split(":", 1)[1].strip()
    line = _cpu_info("model name")
    if not line:
        return platform.processor() or platform.machine()
    name = value(line)
    family, model = _cpu_info("cpu family"), _cpu_info("model\t")
    if not any(c.isdigit() for c in name) and family and model:
        name += f" (family {value(family)}, model {value(model)})"
    return name


def mapped_files() -> set[Path]:
    """The files mapped into this process (its shared libraries among them); empty where
    /proc/self/maps cannot tell (not Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    return {Path(line.split()[-1]) for line in maps.splitlines() if "/" in line}


def loaded_openmp() -> set[str]:
    """File names of the OpenMP runtimes mapped into this process (torch's, once torch is
    imported)."""
    names = {f.name for f in mapped_files()}
    return {n for n in names if n.startswith(("libgomp", "libomp", "libiomp"))}


def openmp_flags() -> tuple[str, ...]:
    """-fopenmp where the OpenMP runtime torch loaded is GNU libgomp under its plain soname:
    the library then binds to that very runtime (the loader reuses an object already loaded
    under the soname it needs), so the kernels' parallel loops run on torch's own thread
    pool, whose workers are already awake. A second runtime would bring a second pool that
    competes with torch's spinning workers for the same cores; there, and with no runtime,
    the kernels are built serial."""
    return ("-fopenmp",) if loaded_openmp() == {"libgomp.so.1"} else ()


# numpy's OpenBLAS (scipy-openblas with 64-bit integers), by its file name's start
NUMPY_BLAS = "libscipy_openblas64_"


def numpy_openblas() -> tuple[int, int] | None:
    """Addresses of cblas sgemm and openblas_set_num_threads_local in the OpenBLAS that
    numpy's wheels ship (scipy-openblas, 64-bit integers), for the kernels' split matrix
    products (kernels.c, gemm_split); None where numpy brought another BLAS (or none can
    be found), and then torch computes those products."""
    import numpy  # noqa: F401  (maps its BLAS into the process)

    for path in sorted(f for f in mapped_files() if f.name.startswith(NUMPY_BLAS)):
        try:
            blas = ctypes.CDLL(str(path))
            fns = blas.scipy_cblas_sgemm64_, blas.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        sgemm, threads = (ctypes.cast(fn, ctypes.c_void_p).value for fn in fns)
        return sgemm, threads
    return None


def flag_sets(parallel: bool = True) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The compiler flags a build tries, in order: with -march=native, then without it
    (for a compiler that refuses it); OpenMP's where `parallel` and openmp_flags() allow."""
    omp = openmp_flags() if parallel else ()
    return CFLAGS + NATIVE_FLAGS + omp, CFLAGS + omp


def build(parallel: bool = True) -> Path:
    """Compile the kernels into the cache (atomically: concurrent workers may build too);
    without -march=native where this compiler refuses it; with OpenMP where `parallel` and
    openmp_flags() allow."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc, or $CC) on PATH")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    except OSError as err:
        raise RuntimeError(f"C compiler {cc} does not run: {err}") from err
    attempts = flag_sets(parallel)
    parts = [SOURCE.read_text(), cc, version, *attempts[0], platform.machine()]
    key = hashlib.sha256("\0".join([*parts, _cpu_flags()]).encode()).hexdigest()[:16]
    target = default_cache_dir() / f"kernels-{key}.so"
    if target.is_file():
        return target
    for flags in attempts:
        try:
            with atomic_path(target, suffix=".so") as tmp:
                cmd = [cc, *flags, "-o", str(tmp), str(SOURCE), "-lm"]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"{cc} failed on {SOURCE.name}: {done.stderr.strip()[:500]}")
            return target
        except RuntimeError as e:
            failed = e
    raise failed


def _load() -> ctypes.CDLL:
    """The parallel build, else (it failed to compile or to load, e.g. a runtime without
    the symbol versions it needs) the serial one; `.openmp` says which."""
    if openmp_flags():
        try:
            lib = ctypes.CDLL(str(build(parallel=True)))
            lib.openmp = True
            return lib
        except (RuntimeError, OSError) as err:
            failed = err
    else:
        failed = None
    lib = ctypes.CDLL(str(build(parallel=False)))  # its error is the caller's to report
    if failed is not None:
        log.warning("training-step kernels: serial build (the OpenMP one failed: %s)", failed)
    lib.openmp = False
    return lib


def _signatures() -> dict[str, tuple[list, object]]:
    """kernels.c's functions: name -> (argument types, result type), as ctypes needs them."""
    p, i64, f32, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double
    char = ctypes.c_char
    return {
        "adagrad_rows": ([p, p, p, p, i64, p, p, i64, i64, p, p, p, f32, f32, f32], i64),
        "adagrad_dense": ([i64, p, p, p, p, p, f32, f32, f32], None),
        "gemm_split": ([ctypes.c_int, char, char, i64, i64, i64, p, i64, p, i64, p, p, i64], i64),
        "gemm_pair": ([ctypes.POINTER(GemmSpec), ctypes.POINTER(GemmSpec)], i64),
        "gather_rows": ([p, i64, i64, p, i64, p], i64),
        "gru_gates_forward": ([p, p, p, p, i64, i64], None),
        "gru_gates_backward": ([p, p, p, p, p, p, p, p, i64, i64], None),
        "gather_bias": ([p, p, p, p, i64, i64, i64, p], i64),
        "ce_grad": ([p, i64, i64, f32, p], f64),
        "bpr_max_grad": ([p, i64, i64, f32, f32, f32, p], f64),
        "softmax_ce_grad": ([p, i64, i64, p, f32], f64),
        "centred_unit_forward": ([p, i64, i64, p, p], None),
        "centred_unit_backward": ([p, p, p, i64, i64, p], None),
    }


@functools.cache
def kernel() -> ctypes.CDLL | None:
    """The loaded library (the functions of kernels.c), or None (the PyTorch forms, said
    once)."""
    if os.environ.get("BENCH_NATIVE", "1") == "0":
        return None
    try:
        lib = _load()
    except (RuntimeError, OSError) as err:
        log.warning("training step: pure-PyTorch path (compiled kernels unavailable: %s)", err)
        return None
    for name, (argtypes, restype) in _signatures().items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    blas = numpy_openblas() if os.environ.get("BENCH_BLAS", "1") != "0" else None
    lib.blas = blas is not None
    if blas is not None:
        lib.set_blas(ctypes.c_void_p(blas[0]), ctypes.c_void_p(blas[1]))
    if lib.blas and not products_agree(lib):
        log.warning(
            "training step: numpy's OpenBLAS gave other products than torch; torch computes them"
        )
        lib.blas = False
    return lib


class RowScratch:
    """Per-table buffers the kernel reuses between steps: the slot map (all -1 between
    calls), the summed-gradient rows, the list of distinct rows and where each is read."""

    def __init__(self, n_rows: int):
        self.slot = torch.full((n_rows,), -1, dtype=torch.int32)
        self.work = torch.empty(0)
        self.rows = torch.empty(0, dtype=torch.int64)
        self.src = torch.empty(0, dtype=torch.int64)

    def reserve(self, n: int, d: int) -> None:
        if self.work.numel() < n * d:
            self.work = torch.empty(n * d)
            self.rows = torch.empty(n, dtype=torch.int64)
            self.src = torch.empty(n, dtype=torch.int64)


def cpu_float32(*tensors: torch.Tensor | None) -> bool:
    """What every kernel reads and writes: contiguous float32 memory on the CPU (an
    optional tensor left out, None, passes). Checked on every call, so written for speed
    (`is_cpu`, `is`: about 0.1 us a tensor against 0.4 through `device.type`)."""
    f32 = torch.float32
    for t in tensors:
        if t is not None and not (t.is_cpu and t.dtype is f32 and t.is_contiguous()):
            return False
    return True


def _ptr(t: torch.Tensor | None):
    return t.data_ptr() if t is not None else None


def usable(p: torch.Tensor, grad: torch.Tensor, *states, idx: torch.Tensor | None = None) -> bool:
    """Whether the Adagrad kernels apply to p, its gradient and its state; row gradients
    (with int64 indices) may be strided, they are made contiguous."""
    if idx is None:
        return cpu_float32(p, grad, *states)
    return cpu_float32(p, *states) and idx.dtype == torch.int64 and grad.dtype == torch.float32


def adagrad_rows(lib, scratch: RowScratch, p, acc, mom, idx, g_rows, lr, eps, momentum) -> None:
    """Sum the repeated rows of g_rows, update the used rows of p in place."""
    n = idx.shape[0]
    d = p[0].numel() if p.dim() > 1 else 1
    idx = idx.contiguous()
    g_rows = g_rows.contiguous()
    scratch.reserve(n, d)
    found = lib.adagrad_rows(
        p.data_ptr(),
        acc.data_ptr(),
        _ptr(mom),
        scratch.slot.data_ptr(),
        p.shape[0],
        idx.data_ptr(),
        g_rows.data_ptr(),
        n,
        d,
        scratch.work.data_ptr(),
        scratch.rows.data_ptr(),
        scratch.src.data_ptr(),
        lr,
        eps,
        momentum,
    )
    if found < 0:
        raise IndexError(f"row-sparse update: a row index is outside [0, {p.shape[0]})")


class DenseTensors:
    """The pointer arrays of one adagrad_dense call over a fixed set of tensors, built once
    and reused while the same memory is updated (parameters and their states are updated
    in place, the fused step writes its gradients into the same buffers every step)."""

    def __init__(self, key, owner, params, accs, moms, grads):
        """key and owner: what the caller compares to tell whether the plan still holds."""

        def array(ts):
            return (ctypes.c_void_p * len(ts))(*(t.data_ptr() for t in ts))

        self.key, self.owner = key, owner
        self.k = len(params)
        self.params, self.accs, self.grads = array(params), array(accs), array(grads)
        self.moms = array(moms) if moms is not None else None
        self.sizes = (ctypes.c_int64 * len(params))(*(p.numel() for p in params))


def adagrad_dense(lib, plan: DenseTensors, lr, eps, momentum) -> None:
    """Update all of plan's tensors in place from their (contiguous) gradients."""
    lib.adagrad_dense(
        plan.k, plan.params, plan.accs, plan.moms, plan.grads, plan.sizes, lr, eps, momentum
    )


def products_agree(lib) -> bool:
    """The split product against torch's, once, on every transposition, before any step
    relies on it (a foreign or broken BLAS falls back instead of training wrongly)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(37, 53, generator=gen), torch.randn(53, 41, generator=gen)
    bias = torch.randn(41, generator=gen)  # one per column of the result
    cases = [
        (a, b, False, False, bias, torch.addmm(bias, a, b)),
        (a.T.contiguous(), b, True, False, None, a @ b),
        (a, b.T.contiguous(), False, True, None, a @ b),
    ]
    for x, y, ta, tb, rb, want in cases:
        for split_n in (False, True):
            got = matmul(lib, x, y, ta, tb, rb, split_n=split_n)
            if got is None or not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                return False
    return True


def _shape(a, b, trans_a, trans_b) -> tuple[int, int, int]:
    """(M, N, K) of op(a) @ op(b)."""
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    return M, (b.shape[0] if trans_b else b.shape[1]), K


def matmul(lib, a, b, trans_a=False, trans_b=False, row_bias=None, out=None, split_n=None):
    """a @ b (a.T, b.T where trans_a/trans_b: a and b are passed untransposed), plus
    row_bias on every row where given, into out (a new tensor if None), by gemm_split;
    split along the longer side of the result unless split_n says which. None where it
    does not apply (no BLAS found, not contiguous float32 CPU tensors)."""
    if not (lib.blas and cpu_float32(a, b, row_bias, out)):
        return None
    M, N, K = _shape(a, b, trans_a, trans_b)
    if out is None:
        out = torch.empty(M, N)
    if split_n is None:
        split_n = N > M
    lib.gemm_split(
        int(split_n),
        b"T" if trans_a else b"N",
        b"T" if trans_b else b"N",
        M,
        N,
        K,
        a.data_ptr(),
        a.shape[1],
        b.data_ptr(),
        b.shape[1],
        _ptr(row_bias),
        out.data_ptr(),
        N,
    )
    return out


class GemmSpec(ctypes.Structure):
    """kernels.c's gemm_spec: one product for gemm_pair."""

    _fields_ = [
        ("ta", ctypes.c_char),
        ("tb", ctypes.c_char),
        ("M", ctypes.c_int64),
        ("N", ctypes.c_int64),
        ("K", ctypes.c_int64),
        ("A", ctypes.c_void_p),
        ("lda", ctypes.c_int64),
        ("B", ctypes.c_void_p),
        ("ldb", ctypes.c_int64),
        ("row_bias", ctypes.c_void_p),
        ("C", ctypes.c_void_p),
        ("ldc", ctypes.c_int64),
    ]


def matmul_pair(lib, first: tuple, second: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Two independent products at once by gemm_pair, each given as (a, b, trans_a,
    trans_b, row_bias, out) with matmul's meaning (out None: a new tensor); None where it
    does not apply."""
    specs, outs = [], []
    for a, b, trans_a, trans_b, row_bias, out in (first, second):
        if not (lib.blas and cpu_float32(a, b, row_bias, out)):
            return None
        M, N, K = _shape(a, b, trans_a, trans_b)
        out = torch.empty(M, N) if out is None else out
        flags = (b"T" if trans_a else b"N", b"T" if trans_b else b"N")
        pointers = (a.data_ptr(), a.shape[1], b.data_ptr(), b.shape[1], _ptr(row_bias))
        specs.append(GemmSpec(*flags, M, N, K, *pointers, out.data_ptr(), N))
        outs.append(out)
    lib.gemm_pair(ctypes.byref(specs[0]), ctypes.byref(specs[1]))
    return outs[0], outs[1]


def gather_rows(lib, table, idx) -> torch.Tensor | None:
    """table[idx] (as table.index_select(0, idx)); None where the kernel does not apply."""
    if not (cpu_float32(table) and table.dim() == 2 and idx.dtype == torch.int64):
        return None
    idx = idx.contiguous()
    n, d = idx.shape[0], table.shape[1]
    out = torch.empty(n, d)
    found = lib.gather_rows(table.data_ptr(), table.shape[0], d, idx.data_ptr(), n, out.data_ptr())
    if found < 0:
        raise IndexError(f"item rows: an index is outside [0, {table.shape[0]})")
    return out


def gru_gates_forward(lib, gi, gh, h) -> torch.Tensor | None:
    """The new hidden state of one GRU layer from its pre-activations (hand_derived.py),
    gi overwritten with the activated gates; None where the kernel does not apply."""
    if not cpu_float32(gi, gh, h):
        return None
    m, hs = h.shape
    out = torch.empty(m, hs)
    lib.gru_gates_forward(gi.data_ptr(), gh.data_ptr(), h.data_ptr(), out.data_ptr(), m, hs)
    return out


def gru_gates_backward(lib, dh, h, gi, gh, dbi=None, dbh=None):
    """(dgi, dgh) of one GRU layer (hand_derived.py), the bias gradients written into dbi
    and dbh where given; None where the kernel does not apply (not contiguous float32 CPU
    tensors)."""
    if not cpu_float32(dh, h, gi, gh, dbi, dbh):
        return None
    m, hs = dh.shape
    dgi = torch.empty(m, 3 * hs)
    dgh = torch.empty(m, 3 * hs)
    lib.gru_gates_backward(
        dh.data_ptr(),
        h.data_ptr(),
        gi.data_ptr(),
        gh.data_ptr(),
        dgi.data_ptr(),
        dgh.data_ptr(),
        _ptr(dbi),
        _ptr(dbh),
        m,
        hs,
    )
    return dgi, dgh


def gather_bias(lib, by, shift_t, shift_n, cols, n_targets) -> torch.Tensor | None:
    """by[cols], minus the logQ shift (shift_t for the first n_targets columns, shift_n for
    the rest) where shift_t is given; None where the kernel does not apply."""
    if not (
        cpu_float32(by, shift_t, shift_n) and cols.dtype == torch.int64 and cols.is_contiguous()
    ):
        return None
    out = torch.empty(cols.shape[0])
    status = lib.gather_bias(
        by.data_ptr(),
        _ptr(shift_t),
        _ptr(shift_n),
        cols.data_ptr(),
        n_targets,
        cols.shape[0],
        by.shape[0],
        out.data_ptr(),
    )
    if status < 0:
        raise IndexError(f"output bias: a column index is outside [0, {by.shape[0]})")
    return out


# softmax_ce_grad's result where a target is outside the scores' columns (kernels.c)
LOSS_BAD_TARGET = -2.0


def _loss_or_raise(loss: float, name: str, m: int, c: int) -> float:
    """The loss kernels' result, or a clear error where they could not allocate their
    scratch (they return a negative loss then, kernels.c LOSS_NO_MEMORY; a NaN passes on
    to the trainer's divergence check)."""
    if loss < 0:
        raise MemoryError(f"{name} loss kernel: out of memory for the scratch of {m} x {c} scores")
    return loss


def ce_grad(lib, scores, scale, dbias=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(summed loss, scale * dLoss/dscores) of cross-entropy (hand_derived.ce_grad), the
    gradient written over the scores and its column sums into dbias where given; None
    where the kernel does not apply."""
    if not cpu_float32(scores, dbias):
        return None
    m, c = scores.shape
    loss = _loss_or_raise(lib.ce_grad(scores.data_ptr(), m, c, scale, _ptr(dbias)), "ce", m, c)
    return scores.new_tensor(loss), scores


def softmax_ce_grad(lib, scores, targets, scale) -> float | None:
    """Summed softmax cross-entropy of `scores` (m x all items) against `targets` (m item
    indices), scale * its gradient written over the scores (full_softmax.py); None where
    the kernel does not apply."""
    if not cpu_float32(scores) or targets.dtype != torch.int64 or targets.device != scores.device:
        return None
    m, c = scores.shape
    targets = targets.contiguous()
    loss = lib.softmax_ce_grad(scores.data_ptr(), m, c, targets.data_ptr(), scale)
    if loss == LOSS_BAD_TARGET:
        raise IndexError(f"softmax cross-entropy: a target is outside [0, {c})")
    return _loss_or_raise(loss, "softmax cross-entropy", m, c)


def bpr_max_grad(lib, scores, bpreg, elu_param, scale, dbias=None):
    """(summed loss, scale * dLoss/dscores) of BPR-max (hand_derived.bpr_max_grad), the
    gradient written over the scores and its column sums into dbias where given; None
    where the kernel does not apply."""
    if not cpu_float32(scores, dbias):
        return None
    m, c = scores.shape
    loss = lib.bpr_max_grad(scores.data_ptr(), m, c, bpreg, max(elu_param, 0.0), scale, _ptr(dbias))
    return scores.new_tensor(_loss_or_raise(loss, "bpr-max", m, c)), scores


def centred_unit_forward(lib, x) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(y, norm) of SGNN-HN's row normalisation y = (x - mean) / |x - mean| (norm: n x 1);
    None where the kernel does not apply (not a contiguous float32 CPU matrix)."""
    if not (cpu_float32(x) and x.dim() == 2):
        return None
    n, d = x.shape
    y, norm = torch.empty(n, d), torch.empty(n, 1)
    lib.centred_unit_forward(x.data_ptr(), n, d, y.data_ptr(), norm.data_ptr())
    return y, norm


def centred_unit_backward(lib, y, norm, dy) -> torch.Tensor | None:
    """The gradient of centred_unit_forward's input from its output's (dy); None where the
    kernel does not apply."""
    if not (cpu_float32(y, norm, dy) and dy.shape == y.shape and y.dim() == 2):
        return None
    n, d = y.shape
    dx = torch.empty(n, d)
    lib.centred_unit_backward(y.data_ptr(), norm.data_ptr(), dy.data_ptr(), n, d, dx.data_ptr())
    return dx


def main() -> int:
    """Build at install time; one line either way (a missing compiler is not an error)."""
    try:
        lib = _load()
    except (RuntimeError, OSError) as err:
        print(f"training-step kernels not built ({err}); training uses the pure-PyTorch path")
        return 0
    how = "parallel on torch's OpenMP thread pool" if lib.openmp else "serial"
    print(f"training-step kernels built ({how}): {lib._name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
