"""Each method owns its knobs: the record states exactly the settings the trained objects
used (read back from them, not from the config), and a knob the method does not read is a
one-line error naming the method and the knob."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bench.errors import BenchError
from bench.paths import conf_dir
from bench.run import run_job

SMALL = [
    "dataset.params.n_train_sessions=600",
    "dataset.params.n_test_sessions=80",
    "save_model=false",
]
BASELINES = ["pop", "spop", "itemknn", "bprmf", "sknn", "vsknn", "stan", "sr", "ar"]


def config(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("run", overrides=list(overrides))


def alias_distribution(prob: torch.Tensor, alias: torch.Tensor) -> np.ndarray:
    """The distribution an alias table draws from: a column keeps prob_i, gives the rest to
    alias_i."""
    prob, alias = prob.double().numpy(), alias.numpy()
    p = prob.copy()
    np.add.at(p, alias, 1.0 - prob)
    return p / len(p)


@pytest.mark.parametrize(
    "overrides",
    [
        [
            "loss=bpr-max",
            "layers=[24,16]",
            "batch_size=16",
            "n_sample=32",
            "sample_alpha=0.3",
            "learning_rate=0.07",
            "momentum=0.2",
            "dropout_p_embed=0.1",
            "dropout_p_hidden=0.25",
            "bpreg=0.6",
            "elu_param=1.0",
            "n_epochs=2",
        ],
        [
            "loss=ce",
            "logq=1.0",
            "layers=[20]",
            "batch_size=8",
            "optimizer=sgd",
            "learning_rate=0.03",
            "sampling=in_batch",
            "n_epochs=1",
        ],
    ],
)
def test_session_parallel_record_matches_the_trained_objects(tmp_path, overrides):
    record, method = run_job(config(*overrides, *SMALL), tmp_path)
    s, engine = record.settings, method.trainer
    model, opt = engine.model, engine.optimizer
    assert [c.hidden_size for c in model.cells] == s["layers"]
    assert model.Wy.shape[1] == s["layers"][-1] and model.constrained == s["constrained_embedding"]
    assert (
        model.drop_embed.p == s["dropout_p_embed"] and model.drop_hidden.p == s["dropout_p_hidden"]
    )
    assert engine.schedule.initial_width == s["batch_size"]
    group = opt.param_groups[0]
    assert group["lr"] == s["learning_rate"] and group["momentum"] == s["momentum"]
    assert {"IndexedAdagradM": "adagrad_m", "IndexedSGD": "sgd"}[type(opt).__name__] == s[
        "optimizer"
    ]
    assert len(record.epochs) == s["n_epochs"]
    assert engine.hand_derived.loss == s["loss"]
    if s["loss"] == "bpr-max":
        assert (engine.hand_derived.bpreg, engine.hand_derived.elu_param) == (
            s["bpreg"],
            s["elu_param"],
        )
        assert "logq" not in s and engine.log_p is None
        support = np.maximum(method_support(method, tmp_path), 0.0)
        expected = support ** s["sample_alpha"] / (support ** s["sample_alpha"]).sum()
        drawn = alias_distribution(engine.sampler.prob, engine.sampler.alias)
        assert engine.sampler.n_sample == s["n_sample"]
        np.testing.assert_allclose(drawn, expected, atol=1e-6)
    else:  # ce reads logq only; in-batch sampling reads neither sample_alpha nor the store
        assert s["logq"] == 1.0 and engine.log_p is not None
        assert not {"bpreg", "elu_param", "sample_alpha", "sample_store_size"} & set(s)
        assert engine.sampler is None and s["n_sample"] == 0


def method_support(method, tmp_path) -> np.ndarray:
    """Item support of the training data the method saw (what the sampler weights)."""
    from bench.datasets import load_dataset

    cfg = method.cfg
    data = load_dataset(dict(cfg.dataset), cfg.data_dir, cfg.split)
    return data.train.support(len(data.item_map)).astype(np.float64)


@pytest.mark.real_data
def test_bptt_record_matches_the_trained_objects(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = config(
        "model=gru4rec_seq",
        "dataset=ml-100k",
        "batch_size=64",
        "learning_rate=0.01",
        "n_epochs=1",
        "max_len=20",
        "layers=[16]",
        "save_model=false",
    )
    record, method = run_job(cfg, tmp_path)
    s = record.settings
    # The defect this replaces: batch 64 / Adam 0.01 / full softmax, not the session-parallel
    # defaults.
    assert (s["batch_size"], s["learning_rate"], s["n_sample"]) == (64, 0.01, 0)
    assert not {"loss", "optimizer", "momentum", "sample_alpha", "logq"} & set(s)
    epoch = record.epochs[0]
    n_users = sum(
        1 for a, b in zip(method.histories.offsets[:-1], method.histories.offsets[1:]) if b - a > 1
    )
    assert epoch["steps"] == math.ceil(n_users / s["batch_size"])  # users per Adam step
    assert epoch["learning_rate"] == s["learning_rate"]  # as the optimizer held it
    assert [c.hidden_size for c in method.model.cells] == s["layers"] == [16]
    assert method.model.drop_hidden.p == s["dropout_p_hidden"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_record_matches_the_fitted_object(tmp_path, name):
    record, method = run_job(config(f"baseline={name}", *SMALL), tmp_path)
    cfg_params = dict(method.cfg.baseline.params)
    if cfg_params.get("snh_unit") == "auto":  # STAN records the unit it used
        cfg_params["snh_unit"] = "days"  # the synthetic generator has timestamps
    assert record.settings == cfg_params  # nothing added, nothing lost
    for key, value in record.settings.items():
        assert getattr(method.model, key) == value
    assert record.kind == "baseline" and record.training is None
    assert record.method == name and record.harness is None and record.training_step is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["baseline=sknn", "layers=[512]"],
            "layers: not used by method sknn (a baseline) (got [512]); its settings are "
            "baseline.params.k, baseline.params.sample_size",
        ),
        (
            ["baseline=pop", "loss=top1"],
            "loss: not used by method pop (a baseline) (got 'top1'); it has no settings",
        ),
        (["loss=ce", "bpreg=0.5"], "gru4rec: bpreg: not used with loss=ce; remove it"),
        (["loss=ce", "elu_param=0.5"], "gru4rec: elu_param: not used with loss=ce; remove it"),
        (["loss=bpr-max", "logq=1.0"], "gru4rec: logq: not used with loss=bpr-max; remove it"),
        (
            ["optimizer=adam", "momentum=0.1"],
            "gru4rec: momentum: not used with optimizer=adam; remove it",
        ),
        (
            ["sampling=in_batch", "sample_alpha=0.2"],
            "gru4rec: sample_alpha: not used with n_sample=0",
        ),
        (
            ["embedding=32"],
            "gru4rec: embedding: not used with constrained_embedding=true; remove it",
        ),
        (["model=gru4rec_seq", "loss=ce"], "loss: not used by method gru4rec_seq (got 'ce')"),
        (["max_len=50"], "max_len: not used by method gru4rec (got 50)"),
        (
            ["baseline=sknn", "baseline.params.k=-3"],
            "baseline.params.k: got -3; expected >= 1 (sknn)",
        ),
        (
            ["params=official", "loss=top1", "dataset=yoochoose1_64"],
            "params=official: no official paramfile for dataset yoochoose1_64 with loss top1",
        ),
        (
            ["params=official", "baseline=sr"],
            "params=official: official paramfiles exist for session-parallel GRU4Rec only",
        ),
    ],
)
def test_a_knob_the_method_does_not_read_is_an_error(tmp_path, overrides, message):
    small = [] if any(o.startswith("dataset=") for o in overrides) else SMALL
    with pytest.raises(BenchError) as e:
        run_job(config(*overrides, *small), tmp_path)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "result.json").exists()  # refused before any training


@pytest.mark.parametrize("dataset", ["diginetica_srgnn", "yoochoose1_64"])
def test_a_loss_grid_changes_only_the_loss(dataset):
    """`-m loss=top1,bpr,ce` compares losses: the official paramfile is not slipped into one row."""
    from bench.methods import build_method

    settings = {}
    for loss in ("top1", "bpr", "ce", "bpr-max"):
        cfg = config(f"dataset={dataset}", f"loss={loss}")
        assert cfg.params == "default" and cfg.paramfile is None
        settings[loss] = build_method(cfg).settings()
    loss_knobs = {"loss", "logq", "bpreg", "elu_param"}
    shared = [{k: v for k, v in s.items() if k not in loss_knobs} for s in settings.values()]
    assert all(s == shared[0] for s in shared)
    official = build_method(config(f"dataset={dataset}", "loss=ce", "params=official"))
    assert official.cfg.paramfile == f"official_{dataset}_ce"
    assert official.settings() != settings["ce"]


def test_bptt_knobs_mean_what_they_say():
    """`batch_size` is the batch of whatever is trained: the BPTT one, not a silent default."""
    from bench.methods import build_method

    method = build_method(config("model=gru4rec_seq", "dataset=ml-100k", "batch_size=16"))
    assert method.config.batch_size == 16 and method.settings()["batch_size"] == 16


def test_the_record_names_the_kernels_the_engine_itself_holds(tmp_path):
    """training_step is read from the engine's parts, not from the process-wide library:
    a serial kernel library in the engine is recorded as serial, none as none."""
    _, method = run_job(
        config("loss=ce", "layers=[8]", "batch_size=8", "n_epochs=1", *SMALL), tmp_path
    )
    eng = method.trainer
    if eng.optimizer.kernel is None:
        pytest.skip("no C compiler on this machine: no kernels to record")
    assert method.training_step()["compiled_kernels_openmp"] == eng.optimizer.kernel.openmp

    class SerialBuild:
        openmp, blas = False, eng.hand_derived.kernel.blas

    eng.optimizer.kernel = eng.hand_derived.kernel = SerialBuild()
    assert method.training_step()["compiled_kernels_openmp"] is False
    eng.optimizer.kernel = eng.hand_derived.kernel = None
    assert method.training_step() == {
        "step": "fused",
        "cuda_graphs": False,
        "compiled_kernels": [],
        "compiled_kernels_openmp": False,
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["layers=[100,abc]"],
            "error: gru4rec: layers: got [100, 'abc']; expected a list of integers",
        ),
        (["learning_rate=fast"], "error: gru4rec: learning_rate: got 'fast'; expected a number"),
        (["eval.batch_size=0"], "error: eval.batch_size: got 0; expected a positive integer"),
        (
            ["baseline=stan", "baseline.params.lambda_spw=abc"],
            "error: baseline.params.lambda_spw: got 'abc'; expected a number (stan)",
        ),
        (
            ["+model.params.x=1"],
            "error: model: not used by method gru4rec (got {'params': {'x': 1}}); "
            "model.target and model.params belong to model=external",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_before_training(tmp_path, overrides, message):
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *overrides,
            *SMALL,
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [message]
    assert "Epoch" not in p.stdout and not (tmp_path / "run").exists()  # no training, no folder
