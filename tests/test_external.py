"""The public model interface (bench.api): the README's example through `bench.run` and a
2-trial study, its knob rule, the training prefixes, the evaluator's prefix state, and a
resume that continues exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from bench.api import PAD, SessionModel
from bench.core.evaluate import evaluate
from bench.core.prefixes import PrefixScorer, TrainingPrefixes
from bench.errors import BenchError
from bench.methods import build_method
from bench.paths import conf_dir
from tests.conftest import bench_run as run_bench
from tests.conftest import make_sessions

ROOT = Path(__file__).parents[1]
EXAMPLE = ["model=external", "model.target=examples.my_model:PrefixGRU"]
SMALL = [
    "dataset.params.n_train_sessions=600",
    "dataset.params.n_test_sessions=80",
    "save_model=false",
    "n_epochs=1",
]
SEARCH = "hydra.searchpath=[file://examples/conf]"


def bench_run(*args, cwd=ROOT):
    return run_bench(*args, cwd=cwd)


def config(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("run", overrides=list(overrides))


def test_the_example_runs_through_bench_run_and_into_the_report(tmp_path):
    runs = tmp_path / "runs"
    p = bench_run(*EXAMPLE, *SMALL, "+model.params.hidden=24", f"hydra.run.dir={runs / 'mine'}")
    assert p.returncode == 0, p.stderr[-3000:]
    rec = json.loads((runs / "mine" / "result.json").read_text())
    assert (rec["method"], rec["kind"], rec["training"]) == ("prefix_gru", "model", "prefixes")
    assert rec["settings"] == {
        "model": "examples.my_model:PrefixGRU",
        "hidden": 24,
        "dropout": 0.0,
        "lr": 0.001,
        "batch_size": 100,
        "n_epochs": 1,
    }
    ranks = np.load(runs / "mine" / "ranks.npy")
    assert len(ranks) == rec["protocol"]["evaluated_events"]
    assert np.mean(ranks <= 20) == pytest.approx(rec["metrics"]["recall@20"], abs=1e-6)
    assert rec["epochs"][0]["events"] > 0 and rec["epochs"][0]["loss"] > 0
    assert (runs / "mine" / "checkpoints" / "last.ckpt").is_file()
    # bench.report puts it in the comparison table beside a baseline, tested against it.
    base = bench_run("baseline=pop", *SMALL[:3], f"hydra.run.dir={runs / 'pop'}")
    assert base.returncode == 0, base.stderr[-3000:]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.report",
            "--records",
            str(runs),
            "--out",
            str(tmp_path / "rep"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = (tmp_path / "rep" / "tables" / "comparison.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:3] == ["| POP", "| prefix_gru"], table
    assert "model=examples.my_model:PrefixGRU" in table
    # The same model from its own config file, found on the search path.
    q = bench_run("model=prefix_gru", SEARCH, *SMALL, f"hydra.run.dir={tmp_path / 'b'}")
    assert q.returncode == 0, q.stderr[-3000:]
    assert json.loads((tmp_path / "b" / "result.json").read_text())["settings"]["hidden"] == 64


def test_the_example_study_prunes_on_epochs_and_retrains_the_best(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    p = bench_run(
        "-m",
        "hparams_search=prefix_gru",
        SEARCH,
        *SMALL[:3],
        "n_epochs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.final_seeds=1",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    study = optuna.load_study(study_name="prefix_gru_synthetic", storage=storage)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    assert trials[0].params == {
        "model.params.hidden": 64,
        "model.params.dropout": 0.0,
        "model.params.lr": 0.001,
    }  # the configured values first
    assert all(set(t.intermediate_values) == {1} for t in trials)  # judged after epoch 2
    final = json.loads((tmp_path / "sw" / "final.json").read_text())["final"]
    assert final["best_trial"] == study.best_trial.number and final["seeds"] == [0]
    retrained = json.loads(Path(final["records"][0]).read_text())
    assert retrained["method"] == "prefix_gru" and retrained["study"]["phase"] == "final"
    assert retrained["settings"]["hidden"] == study.best_trial.params["model.params.hidden"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["+model.params.hiddn=3"],
            "model.params.hiddn: not a parameter of examples.my_model:PrefixGRU (its parameters: "
            "hidden, dropout, lr)",
        ),
        (["+model.params.hidden=abc"], "model.params.hidden: got 'abc'; expected an integer"),
        (["+model.params.dropout=true"], "model.params.dropout: got True; expected a number"),
        (
            ["model.target=examples.my_model:Nope"],
            "model.target: module 'examples.my_model' has no 'Nope'",
        ),
        (
            ["model.target=examples.my_model:nn"],
            "model.target: 'examples.my_model:nn' is not a subclass of bench.api.SessionModel",
        ),
        (
            ["model.target=no_such_pkg.mod:X"],
            "model.target: cannot import module 'no_such_pkg.mod'",
        ),
        (
            ["model.target=examples.my_model.PrefixGRU"],
            "model.target: got 'examples.my_model.PrefixGRU'; expected 'package.module:Class' "
            "(e.g. model.target=examples.my_model:PrefixGRU)",
        ),
        (["+layers=[100]"], "layers: not used by method external (model.target)"),
        (["n_epochs=0"], "n_epochs: got 0; expected a positive integer"),
        (["+patience=2"], "patience: early stopping watches the evaluated split"),
    ],
)
def test_a_bad_knob_is_one_error_before_any_data(overrides, message):
    cfg = config(*EXAMPLE, *overrides)
    with pytest.raises(BenchError) as e:
        build_method(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_bad_knob_exits_2_with_one_line(tmp_path):
    p = bench_run(*EXAMPLE, "+model.params.hiddn=3", f"hydra.run.dir={tmp_path}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: model.params.hiddn: not a parameter of examples.my_model:PrefixGRU "
        "(its parameters: hidden, dropout, lr)"
    ]
    assert not (tmp_path / "result.json").exists()


def test_training_prefixes_are_every_prefix_with_its_next_item():
    s = make_sessions([3, 1, 2], n_items=10, seed=1)  # a single-item session has no pair
    a, b = s.items[:3].tolist(), s.items[4:6].tolist()
    pairs = TrainingPrefixes(s, None, torch.device("cpu"))
    assert len(pairs) == 3
    p, n, y = pairs.batch(torch.tensor([1, 0, 2]))
    assert p.tolist() == [[a[0], a[1]], [a[0], PAD], [b[0], PAD]]
    assert n.tolist() == [2, 1, 1] and y.tolist() == [a[2], a[1], b[1]]
    short = TrainingPrefixes(s, 1, torch.device("cpu"))  # the most recent item only
    p, n, y = short.batch(torch.tensor([1, 0]))
    assert p.tolist() == [[a[1]], [a[0]]] and n.tolist() == [1, 1] and y.tolist() == [a[2], a[1]]


class LastTwo(SessionModel):
    """Scores from the last two items and the prefix length, so that a wrong state shows."""

    def __init__(self, n_items: int):
        super().__init__(n_items)
        self.table = torch.nn.Parameter(torch.randn(n_items, n_items))

    def score(self, prefixes, lengths):
        rows = torch.arange(len(lengths))
        last = self.table[prefixes[rows, lengths - 1]]
        before = prefixes[rows, (lengths - 2).clamp(min=0)]
        return last + 0.5 * self.table[before] * (lengths >= 2)[:, None] + 0.01 * lengths[:, None]


@pytest.mark.parametrize("batch_size", [1, 3, 512])
def test_the_evaluator_scores_each_test_prefix_as_the_model_scores_it(batch_size):
    """Through the session-parallel walk (resets, shrinking batch) the model sees exactly
    each prefix: ranks equal those computed prefix by prefix."""
    torch.manual_seed(0)
    test = make_sessions([4, 2, 6, 3, 5], n_items=7, seed=3)
    model = LastTwo(7)
    result = evaluate(
        PrefixScorer(model, int(test.lengths.max())),
        test,
        [1, 3],
        "standard",
        batch_size=batch_size,
    )
    expected = []
    for a, b in zip(test.offsets[:-1], test.offsets[1:]):
        for t in range(a + 1, b):
            prefix = torch.as_tensor(test.items[a:t])[None]
            scores = model.score(prefix, torch.tensor([t - a]))[0]
            expected.append(1 + int((scores > scores[test.items[t]]).sum()))
    assert result.ranks.tolist() == expected


def test_a_score_of_the_wrong_shape_is_named():
    class Wrong(LastTwo):
        def score(self, prefixes, lengths):
            return super().score(prefixes, lengths)[:, :-1]

    with pytest.raises(ValueError, match=r"Wrong.score returned shape \(2, 6\); expected"):
        evaluate(PrefixScorer(Wrong(7), 3), make_sessions([3, 2], n_items=7), [1])


def test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path):
    """Model, optimizer, learning-rate schedule and the shuffling generator all resume."""
    common = [
        "model=srgnn",
        *SMALL[:3],
        "model.params.hidden_size=16",
        "model.params.lr_dc_step=1",
        "eval.per_epoch=true",
    ]
    whole = bench_run(*common, "n_epochs=3", f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = bench_run(*common, "n_epochs=2", f"hydra.run.dir={tmp_path / 'part'}")
    assert first.returncode == 0, first.stderr[-3000:]
    rest = bench_run(
        *common, "n_epochs=3", f"resume={tmp_path / 'part'}", f"hydra.run.dir={tmp_path / 'rest'}"
    )
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert "resumed from the checkpoint after epoch 2" in rest.stdout
    a = json.loads((tmp_path / "whole" / "result.json").read_text())
    b = json.loads((tmp_path / "rest" / "result.json").read_text())
    assert b["metrics"] == a["metrics"]
    assert [e["loss"] for e in b["epochs"]] == [e["loss"] for e in a["epochs"]]
    # every epoch's evaluation, those before the resume too (a best-test-epoch row needs them)
    assert [e["eval"] for e in b["epochs"]] == [e["eval"] for e in a["epochs"]]


def test_the_config_names_every_harness_knob_it_sets():
    cfg = config("model=srgnn")
    with open_dict(cfg):
        method = build_method(cfg)
    assert method.name == "srgnn"
    assert method.settings() == {
        "model": "bench.peers.srgnn:SRGNN",
        "hidden_size": 100,
        "step": 1,
        "lr": 0.001,
        "lr_dc": 0.1,
        "lr_dc_step": 3,
        "l2": 1e-05,
        "nonhybrid": False,
        "batch_size": 100,
        "n_epochs": 30,
    }
