"""The machine's choice of library for the large products, one per family (the GRU4Rec
step's, the full-softmax output layer's): measured once, kept, followed, and overridable
(product_choice.py)."""

import json
from pathlib import Path

import pytest
import torch

from bench.core import native, product_choice
from bench.core.config import GRU4RecConfig
from bench.core.full_softmax import full_softmax_cross_entropy
from bench.core.hand_derived import HandDerivedStep
from bench.core.model import GRU4RecModel
from tests.test_native import needs_blas


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BENCH_BLAS", raising=False)
    product_choice._chosen.cache_clear()
    yield tmp_path
    product_choice._chosen.cache_clear()


@needs_blas
def test_the_choice_is_measured_once_kept_and_followed(fresh_cache, monkeypatch):
    calls = []

    def measured(lib, threads, family):
        calls.append((threads, family))
        return {"chosen": "torch", "split_over_torch": 1.3, "threads": threads, "shapes": []}

    monkeypatch.setattr(product_choice, "measure", measured)
    lib = native.kernel()
    assert product_choice.split_products_chosen(lib) is False
    path = product_choice.record_path(lib, torch.get_num_threads())
    assert path.parent == fresh_cache and json.loads(path.read_text())["chosen"] == "torch"
    product_choice._chosen.cache_clear()  # a new process: reads the record, measures nothing
    path.write_text(json.dumps({"chosen": "split"}))
    assert product_choice.split_products_chosen(lib) is True
    assert calls == [(torch.get_num_threads(), "step")]
    step = HandDerivedStep(GRU4RecModel(20, GRU4RecConfig(layers=[8])), "ce", 1.0, 0.0)
    assert step.split_products and "gemm_split" in step.compiled_kernels()


@needs_blas
def test_each_family_keeps_and_follows_its_own_choice(fresh_cache, monkeypatch):
    """The step's products by torch, the output layer's split (as on an AMD EPYC host at
    one thread): each path follows its own record; the step's record keeps its old key."""
    lib = native.kernel()
    threads = torch.get_num_threads()
    step_path = product_choice.record_path(lib, threads)
    output_path = product_choice.record_path(lib, threads, "output")
    assert step_path == product_choice.record_path(lib, threads, "step") != output_path
    step_path.write_text(json.dumps({"chosen": "torch"}))
    output_path.write_text(json.dumps({"chosen": "split"}))
    step = HandDerivedStep(GRU4RecModel(20, GRU4RecConfig(layers=[8])), "ce", 1.0, 0.0)
    assert not step.split_products and "gemm_split" not in step.compiled_kernels()
    calls = []
    matmul = native.matmul
    monkeypatch.setattr(native, "matmul", lambda *a, **k: calls.append(1) or matmul(*a, **k))
    h = torch.randn(16, 8, requires_grad=True)
    table = torch.randn(300, 8, requires_grad=True)
    full_softmax_cross_entropy(h, table, torch.randint(0, 300, (16,))).backward()
    assert len(calls) == 3  # scores, the queries' gradient, the table's gradient
    product_choice._chosen.cache_clear()
    output_path.write_text(json.dumps({"chosen": "torch"}))
    full_softmax_cross_entropy(h, table, torch.randint(0, 300, (16,))).backward()
    assert len(calls) == 3


@needs_blas
def test_the_record_is_keyed_by_numpys_blas_alone(monkeypatch):
    """A run maps scipy's 32-bit OpenBLAS beside numpy's (install time does not): the
    record install time wrote must still be the one a run reads."""
    lib = native.kernel()
    mapped = native.mapped_files()
    at_install = product_choice.record_path(lib, 1)
    scipys = Path("/x/libscipy_openblas-6cdc3b4a.so")
    monkeypatch.setattr(native, "mapped_files", lambda: mapped | {scipys})
    assert product_choice.record_path(lib, 1) == at_install
    other = Path("/x/libscipy_openblas64_-00000000.so")  # another numpy build: another key
    monkeypatch.setattr(native, "mapped_files", lambda: mapped | {other})
    assert product_choice.record_path(lib, 1) != at_install


def test_an_unknown_family_is_named_in_a_one_line_error():
    with pytest.raises(ValueError, match=r"product family 'gates': expected one of step, output"):
        product_choice.measure(None, 1, "gates")


@needs_blas
def test_bench_blas_forces_either_form_over_the_record(fresh_cache, monkeypatch):
    lib = native.kernel()
    path = product_choice.record_path(lib, torch.get_num_threads())
    path.write_text(json.dumps({"chosen": "torch"}))
    monkeypatch.setenv("BENCH_BLAS", "1")
    assert product_choice.split_products_chosen(lib) is True
    monkeypatch.setenv("BENCH_BLAS", "0")
    assert product_choice.split_products_chosen(lib) is False


def test_without_split_products_torch_computes_them(fresh_cache):
    class NoBlas:
        blas = False

    assert product_choice.split_products_chosen(None) is False
    assert product_choice.split_products_chosen(NoBlas()) is False
    assert not list(fresh_cache.iterdir())  # nothing measured, nothing written


@needs_blas
def test_the_measurement_times_both_forms_on_every_shape(monkeypatch):
    monkeypatch.setattr(product_choice, "SHAPES", ((4, 8), (16, 8)))
    monkeypatch.setattr(product_choice, "N_SAMPLE", 32)
    rec = product_choice.measure(native.kernel(), 2)
    assert [(r["rows"], r["units"]) for r in rec["shapes"]] == [(4, 8), (16, 8)]
    ratios = [r["split_s"] / r["torch_s"] for r in rec["shapes"]]
    assert all(r["split_s"] > 0 and r["torch_s"] > 0 for r in rec["shapes"])
    assert rec["split_over_torch"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5)
    assert rec["chosen"] == ("split" if rec["split_over_torch"] < 1 else "torch")
    assert rec["cpu"] == native.cpu_name() and rec["cpu"] and rec["family"] == "step"


@needs_blas
def test_the_output_layer_is_measured_on_its_own_shapes(monkeypatch):
    monkeypatch.setattr(product_choice, "OUTPUT_SHAPES", ((4, 8, 50), (16, 4, 70)))
    rec = product_choice.measure(native.kernel(), 1, "output")
    assert [(r["rows"], r["units"], r["items"]) for r in rec["shapes"]] == [(4, 8, 50), (16, 4, 70)]
    assert all(r["split_s"] > 0 and r["torch_s"] > 0 for r in rec["shapes"])
    assert rec["family"] == "output" and rec["chosen"] in ("split", "torch")


@needs_blas
def test_install_measures_one_thread_and_the_default_count(fresh_cache, monkeypatch, capsys):
    default = torch.get_num_threads()
    measured = []
    monkeypatch.setattr(
        product_choice,
        "measure",
        lambda lib, threads, family: (
            measured.append((threads, family)) or {"chosen": "torch", "split_over_torch": 2}
        ),
    )
    assert product_choice.main() == 0
    counts = sorted({1, default})
    assert measured == [(t, f) for t in counts for f in ("step", "output")]
    assert torch.get_num_threads() == default
    out = capsys.readouterr().out
    assert (
        out.count("large products (step) at")
        == out.count("large products (output) at")
        == len(counts)
    )
