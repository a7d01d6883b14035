"""Experiment loggers (logger=csv|tensorboard|mlflow|none): what a run and a study log,
read back with each tool's own reader."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

SMALL = [
    "dataset.params.n_train_sessions=1200",
    "dataset.params.n_test_sessions=200",
    "n_sample=64",
    "batch_size=32",
    "save_model=false",
]


def bench_run(args, cwd):
    p = subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_csv_tensorboard_and_mlflow_read_back_one_run(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracking = f"sqlite:///{tmp_path / 'ml.db'}"
    out = tmp_path / "run"
    bench_run(
        [
            "logger=[csv,tensorboard,mlflow]",
            f"logger.tensorboard.save_dir={tmp_path / 'tb'}",
            f"logger.mlflow.tracking_uri={tracking}",
            "n_epochs=2",
            "eval.per_epoch=true",
            *SMALL,
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
    )
    record = json.loads((out / "result.json").read_text())
    final = record["metrics"]["mrr@20"]

    csv = pd.read_csv(out / "logs" / "metrics.csv")
    assert csv["step"].tolist() == [1, 2]  # one row per epoch, the last holding the final metrics
    assert csv["train/loss"].tolist() == pytest.approx([e["loss"] for e in record["epochs"]])
    assert csv["test/mrr_at_20"].iloc[-1] == pytest.approx(final)
    hparams = (out / "logs" / "hparams.yaml").read_text()
    assert "loss: ce" in hparams and "method: gru4rec" in hparams and "n_sample: 64" in hparams

    runs = list((tmp_path / "tb" / "gru4rec-bench").iterdir())
    assert [r.name for r in runs] == ["gru4rec_synthetic_seed42"]
    events = EventAccumulator(str(runs[0])).Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2]
    assert events.Scalars("test/mrr_at_20")[-1].value == pytest.approx(final, rel=1e-6)

    client = MlflowClient(tracking_uri=tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("gru4rec-bench").experiment_id])
    assert run.info.run_name == "gru4rec_synthetic_seed42" and run.info.status == "FINISHED"
    assert run.data.metrics["test/mrr_at_20"] == pytest.approx(final)
    assert run.data.params["loss"] == "ce" and run.data.params["layers"] == "[100]"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2]


def test_a_study_logs_each_trial_as_one_tagged_mlflow_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'ml.db'}"
    bench_run(
        [
            "-m",
            "hparams_search=gru4rec_ce",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 's.db'}",
            "hydra.sweeper.study_name=logged",
            f"hydra.sweep.dir={tmp_path / 'sw'}",
            "hydra.sweeper.final_seeds=0",
            "hydra.sweeper.n_startup_trials=2",
            "hydra.sweeper.pruner=none",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.search=[learning_rate]",
            "n_epochs=1",
            *SMALL,
            "logger=mlflow",
            f"logger.mlflow.tracking_uri={tracking}",
        ],
        cwd=tmp_path,
    )
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("logged")  # the study's name
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["trial"] for r in runs) == ["0", "1", "2", "3"]
    assert {r.data.tags["study"] for r in runs} == {"logged"}
    assert {r.data.tags["phase"] for r in runs} == {"tune"}
    assert all("valid/mrr_at_20" in r.data.metrics for r in runs)  # scored on the validation split
    assert sorted(r.info.run_name for r in runs) == [f"trial_{n}" for n in range(4)]


def test_baselines_log_too_and_none_logs_nothing(tmp_path):
    """In process (run_job, as a Hydra job runs it), so that it costs no interpreter start."""
    from hydra import compose, initialize_config_dir

    from bench.paths import conf_dir
    from bench.run import run_job

    def config(*overrides):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(
                "run",
                overrides=[
                    *overrides,
                    "dataset.params.n_train_sessions=500",
                    "dataset.params.n_test_sessions=100",
                    "save_model=false",
                ],
            )

    record, _ = run_job(config("baseline=pop"), tmp_path / "pop")
    csv = pd.read_csv(tmp_path / "pop" / "logs" / "metrics.csv")
    assert csv["step"].tolist() == [1]
    assert csv["test/mrr_at_20"].iloc[0] == pytest.approx(record.metrics["mrr@20"])
    hparams = (tmp_path / "pop" / "logs" / "hparams.yaml").read_text()
    assert "method: pop" in hparams
    run_job(config("logger=none", "baseline=pop"), tmp_path / "quiet")
    assert (tmp_path / "quiet" / "result.json").is_file()
    assert not (tmp_path / "quiet" / "logs").exists()


def test_a_tracking_store_that_cannot_be_opened_is_one_line(tmp_path):
    pytest.importorskip("mlflow")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "logger=mlflow",
            "logger.mlflow.tracking_uri=/proc/no/ml.db",
            *SMALL,
            "n_epochs=1",
            f"hydra.run.dir={tmp_path / 'r'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: logger: cannot start ['mlflow']"), p.stderr[
        -2000:
    ]


def test_progress_bar_is_on_at_a_terminal_only(monkeypatch):
    from bench.job_options import want_progress_bar

    assert want_progress_bar(True) and not want_progress_bar(False)
    monkeypatch.setenv("CI", "true")
    assert not want_progress_bar("auto")
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert not want_progress_bar("auto")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert want_progress_bar("auto")  # not under Hydra here: a plain terminal


def logger_config(**chosen):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "logger": chosen,
            "study": {"name": None, "trial": None, "phase": None},
            "dataset": {"name": "synthetic"},
            "method": "gru4rec",
            "seed": 0,
        }
    )


@pytest.mark.parametrize(
    "chosen, message",
    [
        ({"csv": {"save_dir": "/proc/no"}}, "logger.csv.save_dir: cannot create /proc/no ("),
        (
            {"tensorboard": {"save_dir": "/proc/no"}},
            "logger.tensorboard.save_dir: cannot create /proc/no (",
        ),
    ],
)
def test_a_log_folder_that_cannot_be_made_is_one_line_before_any_data(tmp_path, chosen, message):
    """Lightning would fail on it at its first write, after the data has loaded."""
    from bench.errors import BenchError
    from bench.loggers import RunLoggers

    with pytest.raises(BenchError) as e:
        RunLoggers(logger_config(**chosen), tmp_path)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_tracking_server_that_answers_no_connection_is_one_line_at_once(tmp_path):
    """MLflow's client would retry with back-off for about four minutes; the message is
    the harness's own check, made before MLflow is asked."""
    import socket

    from bench.errors import BenchError
    from bench.loggers import RunLoggers

    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BenchError) as e:
        RunLoggers(logger_config(mlflow={"tracking_uri": f"http://127.0.0.1:{port}"}), tmp_path)
    assert str(e.value) == (
        f"logger.mlflow.tracking_uri: cannot reach 127.0.0.1:{port} (Connection refused)"
    )
