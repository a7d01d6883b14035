"""The Hydra entry point end to end on the synthetic default (subprocesses, as a user runs it)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.core import native, product_choice
from bench.job_options import added_key_error
from tests.conftest import bench_run

FAST = ["n_epochs=1", "n_sample=64", "batch_size=32"]
SMALL = ["dataset.params.n_train_sessions=1500", "dataset.params.n_test_sessions=200"]


def run(args, cwd):
    return bench_run(*args, cwd=cwd)


def test_single_run_writes_record_and_prints_table(tmp_path):
    out = tmp_path / "run"
    p = run([*FAST, *SMALL, f"hydra.run.dir={out}", "print_config=true"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Recall (=HR)" in p.stdout and "SYNTHETIC" in p.stdout
    assert "sample_store_size: 10000000" in p.stdout  # resolved config printed on request
    rec = json.loads((out / "result.json").read_text())
    assert rec["dataset"]["label"].startswith("SYNTHETIC")
    assert rec["protocol"]["tie_mode"] == "conservative"
    assert set(rec["metrics"]) >= {
        f"{m}@{k}" for m in ("recall", "mrr", "hr", "ndcg") for k in (1, 5, 10, 20)
    }
    assert rec["settings"]["n_sample"] == 64 and rec["seed"] == 42
    assert rec["versions"]["torch"] and rec["git_commit"]
    assert rec["epochs"][0]["events_per_s"] > 0
    assert (out / "model.pt").is_file()
    ranks = np.load(out / "ranks.npy")
    assert len(ranks) == rec["protocol"]["evaluated_events"]
    assert ranks.min() >= 1
    assert np.mean(ranks <= 20) == pytest.approx(rec["metrics"]["recall@20"], abs=1e-6)
    assert "eval" not in rec["epochs"][0]  # per-epoch evaluation is off by default
    loss_kernel = {"ce": "ce_grad", "bpr-max": "bpr_max_grad"}[rec["settings"]["loss"]]
    lib = native.kernel()
    blas = ["gemm_split", "gemm_pair"] if product_choice.split_products_chosen(lib) else []
    kernels = ["adagrad", "gather_rows", *blas, "gru_gates_forward", "gru_gates_backward"]
    compiled = [*kernels, "gather_bias", loss_kernel] if lib is not None else []
    assert rec["training_step"] == {
        "step": "fused",
        "cuda_graphs": False,
        "compiled_kernels": compiled,
        "compiled_kernels_openmp": bool(compiled) and native.kernel().openmp,
    }


def test_per_epoch_evaluation_gives_a_learning_curve(tmp_path):
    """`++` of a setting that exists sets it (only a `++` that adds an unread key is refused)."""
    out = tmp_path / "run"
    args = ["n_epochs=2", *FAST[1:], *SMALL, f"hydra.run.dir={out}", "++eval.per_epoch=true"]
    p = run([*args, "++eval.cutoffs=[5,20]"], tmp_path)
    assert p.returncode == 0, p.stderr
    rec = json.loads((out / "result.json").read_text())
    assert set(rec["metrics"]) == {
        f"{m}@{k}" for m in ("recall", "mrr", "hr", "ndcg") for k in (5, 20)
    }
    assert [len(e["eval"]) for e in rec["epochs"]] == [len(rec["metrics"])] * 2
    assert rec["epochs"][-1]["eval"] == rec["metrics"]  # the last epoch's evaluation is the result


def test_multirun_over_losses(tmp_path):
    sweep = tmp_path / "multi"
    p = run(["-m", "loss=top1,bpr,ce", *FAST, *SMALL, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    recs = [json.loads((sweep / str(i) / "result.json").read_text()) for i in range(3)]
    assert [r["settings"]["loss"] for r in recs] == ["top1", "bpr", "ce"]
    assert p.stdout.count("Recall (=HR)") == 3
    # The grid ends with one comparison table of its three runs.
    table = p.stdout[p.stdout.index(f"### Grid {sweep}") :]
    rows = [line for line in table.splitlines() if line.startswith("| GRU4Rec")]
    assert [r.split(" | ")[0] for r in rows] == ["| GRU4Rec XE", "| GRU4Rec TOP1", "| GRU4Rec BPR"]
    assert f"| {recs[2]['metrics']['recall@20'] * 100:.2f}" in rows[0].replace("**", "")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["dataset=files", "dataset.train=/nonexistent/train.tsv", "dataset.test=x"],
            "error: dataset.train: file not found: /nonexistent/train.tsv",
        ),
        (["batch_size=0"], "error: gru4rec: batch_size: got 0, expected a positive integer"),
        (["eval.tie_mode=optimistic"], "error: eval.tie_mode: unknown 'optimistic'"),
        (["trainer.harness=keras"], "error: trainer.harness: unknown 'keras'"),
        (["eval.unknown_test_items=skip"], "error: eval.unknown_test_items: got 'skip'"),
        (["method=tbptt"], "error: method: unknown 'tbptt'"),
        (["trainer.step=jit"], "error: trainer.step: unknown 'jit'"),
        (
            ["trainer.cuda_graphs=true", "trainer.accelerator=cpu"],
            "error: trainer.cuda_graphs: needs a CUDA device",
        ),
        (
            ["model=gru4rec_seq"],
            "error: model=gru4rec_seq: dataset 'synthetic' is not a leave-one-out",
        ),
        (["patience=2"], "error: patience: early stopping watches the evaluated split, which"),
        (["patience=2", "split=tune", "stop_metric=mrr@7"], "error: stop_metric: 'mrr@7' is not"),
        (["stop_metric=mrr@20"], "error: gru4rec: stop_metric: not used with patience unset"),
        (["trainer.checkpoint=sometimes"], "error: trainer.checkpoint: got 'sometimes'"),
        (["resume=nowhere"], "error: resume: no checkpoint at nowhere (expected a .ckpt file"),
        (["resume=r", "trainer.harness=bare"], "error: resume: checkpoints are the Lightning"),
        # FAST sets batch_size, which a baseline does not read:
        (["baseline=sknn"], "error: batch_size: not used by method sknn (a baseline) (got 32)"),
        # study.* is the sweeper's channel to its jobs: a hand-set value names the setting.
        (
            ["study.storage=postgresql://x"],
            "error: study.storage: set by the study sweeper for each of its jobs, not a knob; "
            "set hydra.sweeper.storage instead",
        ),
        (["study.trial=3"], "error: study.trial: set by the study sweeper for each of its jobs"),
        # `+` adds a key Hydra did not know (its advice for a misspelt knob): refused
        # unless something checks it where it is read.
        (["+n_epoch=3"], "error: +n_epoch: not a setting that anything reads (did you mean n_ep"),
        (["+eval.cutofs=[5]"], "error: +eval.cutofs: not a setting that anything reads (did you"),
        (["+trainer.foo=1"], "error: +trainer.foo: not a setting that anything reads (misspelt?)"),
        (["++n_epoch=3"], "error: ++n_epoch: not a setting that anything reads (did you mean"),
        (["++eval.cutofs=[5]"], "error: ++eval.cutofs: not a setting that anything reads (did"),
    ],
)
def test_bad_options_give_one_line(tmp_path, args, message):
    p = run([*FAST, *args, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in p.stderr


def test_baselines_run_through_the_same_entry_point(tmp_path):
    sweep = tmp_path / "bl"
    names = ["pop", "spop", "itemknn", "bprmf", "sknn", "vsknn", "stan", "sr", "ar"]
    p = run(
        ["-m", f"baseline={','.join(names)}", *SMALL, "seed=7", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    recs = [json.loads((sweep / str(i) / "result.json").read_text()) for i in range(len(names))]
    assert [r["method"] for r in recs] == names
    assert recs[3]["settings"]["seed"] == 7  # BPR-MF follows the run's seed
    assert all(r["kind"] == "baseline" and r["training"] is None for r in recs)
    # Same evaluator, same events: the protocol block is identical.
    assert len({json.dumps(r["protocol"], sort_keys=True) for r in recs}) == 1
    assert recs[2]["metrics"]["recall@20"] > recs[0]["metrics"]["recall@20"]


def test_an_unreachable_study_storage_is_one_line(tmp_path):
    """The sweeper's own errors reach the user as one line, not Hydra's stack trace."""
    url = "postgresql://root@127.0.0.1:5999/nope"
    p = run(
        [
            "-m",
            "hparams_search=pop",
            f"hydra.sweeper.storage={url}",
            f"hydra.sweep.dir={tmp_path / 's'}",
        ],
        cwd=tmp_path,
    )
    assert p.returncode != 0
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: hydra.sweeper.storage: cannot open '{url}' (")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        # The sweeper would overwrite study.storage for each trial: refused, not ignored.
        (
            "study.storage=postgresql://root@127.0.0.1:5432/elsewhere",
            "error: study.storage: set by the study sweeper for each of its jobs, not a knob; "
            "set hydra.sweeper.storage instead",
        ),
        ("+dataset.sesion_key=x", "error: +dataset.sesion_key: not a setting that anything reads"),
        ("++dataset.sesion_key=x", "error: ++dataset.sesion_key: not a setting that anything"),
    ],
)
def test_a_bad_override_given_to_a_study_is_one_line_before_any_trial(tmp_path, override, message):
    p = run(
        [
            "-m",
            "hparams_search=pop",
            override,
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 's.db'}",
            f"hydra.sweep.dir={tmp_path / 's'}",
        ],
        cwd=tmp_path,
    )
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode != 0 and len(errors) == 1, p.stderr
    assert errors[0].startswith(message)
    assert not (tmp_path / "s.db").exists() and "Traceback" not in p.stderr


def test_an_installed_copy_keeps_its_files_in_the_current_directory(tmp_path):
    """A non-editable install (the package in site-packages, no checkout around it) takes
    the current directory as the project: runs, logger output and study storages land
    there, never inside the environment."""
    import shutil
    from pathlib import Path

    root = Path(__file__).parents[1]
    site = tmp_path / "site"
    shutil.copytree(root / "src" / "bench", site / "bench")
    shutil.copytree(root / "conf", site / "bench" / "conf")  # as the wheel packs it
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *FAST,
            *SMALL,
            "save_model=false",
            "logger=[csv,tensorboard]",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert list(work.glob("results/raw/runs/*/result.json"))
    assert list(work.glob("results/raw/tensorboard/*/*/events.out.tfevents.*"))
    assert not list(site.rglob("results"))
    # Outside a project, the headline studies' status is one line saying where to run it
    # (it once listed "0 of 30" for every study, silently).
    p = subprocess.run(
        [sys.executable, "-m", "bench.studies", "--status"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stdout == "", p.stdout[-2000:]
    assert p.stderr.count("\n") == 1 and f"no sweeps/ folder in {work}" in p.stderr


@pytest.mark.parametrize(
    "key, refused",
    [
        ("model.params.hidden", False),  # checked against the model's signature
        ("dataset.options.test_days", False),  # checked against the recipe's options
        ("baseline.params.k", False),  # checked against the baseline's settings
        ("layers", False),  # checked against the method that runs
        ("hydra.sweeper.params.x", False),
        ("logger", False),  # a config group: Hydra checks the option
        ("n_epoch", True),
        ("eval.cutofs", True),
        ("dataset.params.n_item", True),
        ("logger.foo", True),
    ],
)
def test_only_keys_checked_where_they_are_read_may_be_added(key, refused):
    assert (added_key_error(key) is not None) == refused


def test_a_refused_added_key_names_the_setting_closest_in_spelling():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"n_epochs": 3, "eval": {"cutoffs": [20], "tie_mode": "standard"}})
    assert "(did you mean eval.cutoffs?)" in added_key_error("eval.cutofs", cfg)
    assert "(did you mean n_epochs?)" in added_key_error("n_epoch", cfg)
    assert "(misspelt?)" in added_key_error("colour", cfg)
