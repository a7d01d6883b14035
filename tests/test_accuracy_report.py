"""The accuracy check's report (benchmarks/accuracy.py): a variant's runs over seeds become
one row (mean, standard deviation, spread), re-running one loss keeps the other losses'
rows, and benchmarks/README.md shows the committed report's table."""

import argparse
import json
import re
from pathlib import Path

import pytest

from tests.benchmark_scripts import benchmark_module

ROOT = Path(__file__).parents[1]
accuracy = benchmark_module("accuracy")
summarize = benchmark_module("summarize")


def run(recall: float, mrr: float, train_s: float) -> dict:
    return {
        "overrides": ["trainer.step=fused"],
        "env": {},
        "training_step": {"step": "fused"},
        "device": "cpu (2 threads)",
        "metrics": {"recall@20": recall, "mrr@20": mrr},
        "train_s": train_s,
    }


def test_runs_over_seeds_become_one_row_with_their_spread():
    row = accuracy.over_seeds([run(0.4, 0.1, 10.0), run(0.5, 0.2, 20.0), run(0.6, 0.3, 30.0)])
    # means 0.5 and 0.2; sample standard deviation 0.1; spread (max - min) / mean
    assert row["metrics"] == pytest.approx({"recall@20": 0.5, "mrr@20": 0.2})
    assert row["std"] == pytest.approx({"recall@20": 0.1, "mrr@20": 0.1})
    assert row["spread"] == pytest.approx({"recall@20": 0.4, "mrr@20": 1.0})
    assert row["per_seed"][1] == {"recall@20": 0.5, "mrr@20": 0.2}
    assert row["train_s"] == pytest.approx(20.0)
    assert accuracy.over_seeds([run(0.4, 0.1, 1.0)])["std"] == {"recall@20": 0.0, "mrr@20": 0.0}


def test_rerunning_one_loss_or_one_path_keeps_the_other_rows(tmp_path):
    ref = "autograd (reference)"
    old = {
        "date": "2026-11-30T10:00:00+00:00",
        "dataset": "diginetica_srgnn",
        "n_epochs": 1,
        "seed": 42,  # a report from before rows named their seeds
        "rows": [
            {"loss": "ce", "variant": ref, "metrics": {"recall@20": 0.5}},
            {"loss": "ce", "variant": "compiled"},
            {"loss": "bpr-max", "variant": ref},
        ],
    }
    out = tmp_path / "accuracy.json"
    out.write_text(json.dumps(old))
    args = argparse.Namespace(out=str(out), dataset="diginetica_srgnn", n_epochs=1, losses=["ce"])
    dated = {"seeds": [42], "date": "2026-11-30"}
    assert accuracy.kept_rows(args, [ref, "compiled"]) == [dated | old["rows"][2]]
    kept = accuracy.kept_rows(args, ["compiled"])  # only the compiled path re-run
    assert kept == [dated | old["rows"][0], dated | old["rows"][2]]
    assert accuracy.reference(kept, "ce", [42]) == {"recall@20": 0.5}
    with pytest.raises(SystemExit, match=r"reference row has seeds \[42\], not \[42, 43\]"):
        accuracy.reference(kept, "ce", [42, 43])
    args.n_epochs = 2  # another experiment: nothing of it is kept
    assert accuracy.kept_rows(args, ["compiled"]) == []


def test_the_readme_shows_the_committed_accuracy_table():
    report = json.loads((ROOT / "benchmarks" / "results" / "accuracy.json").read_text())
    block = re.search(
        r"<!-- figures:start -->\n(.*)<!-- figures:end -->",
        (ROOT / "benchmarks" / "README.md").read_text(),
        re.S,
    )
    assert block and summarize.accuracy_table(report) in block.group(1)
    assert all(len(r["seeds"]) >= 1 and r["date"] for r in report["rows"])
