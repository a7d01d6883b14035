"""The results aggregator on a fixed set of hand-built records: golden Markdown/LaTeX output,
styling rules, significance marks, robustness to bad records, byte-identical reruns.

Set BENCH_UPDATE_GOLDEN=1 to rewrite tests/golden/ after an intended format change.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.metrics import metrics_from_ranks
from bench.report.__main__ import main as report_main
from bench.report.collect import collect
from bench.report.tables import comparison_table, to_frame, to_latex, to_markdown

GOLDEN = Path(__file__).parent / "golden"
N_EVENTS = 400


def write_record(
    root: Path,
    name: str,
    dataset: str,
    method: str,
    ranks: np.ndarray,
    seed=0,
    loss=None,
    unknown="drop",
    layers=100,
):
    out = root / name
    out.mkdir(parents=True)
    np.save(out / "ranks.npy", ranks.astype(np.float32))
    gru = loss is not None
    hp = {
        "loss": loss,
        "n_sample": 2048,
        "sample_alpha": 0.5,
        "n_epochs": 5,
        "layers": [layers],
        "batch_size": 64,
    }
    record = {
        "kind": "gru4rec" if gru else "baseline",
        "method": "gru4rec" if gru else method,
        "dataset": {"dataset": dataset, "label": f"{dataset} (test split)", "split": "final"},
        "protocol": {
            "tie_mode": "conservative",
            "candidates": "all training items (full ranking)",
            "unknown_test_items": "dropped, session re-chained",
            "seen_item_filtering": False,
            "evaluated_events": len(ranks),
            "test_fingerprint": f"fp-{dataset}",
        },
        "ranks_file": "ranks.npy",
        "schema_version": 2,
        "training": "session_parallel" if gru else None,
        "settings": hp if gru else {"k": 10},
        "eval": {"unknown_test_items": unknown},
        "params": "official" if layers != 100 else "default",
        "seed": seed,
        "study": {"name": None, "phase": None, "trial": None, "n_trials": None},
        "metrics": metrics_from_ranks(torch.as_tensor(ranks, dtype=torch.float64), [5, 20]),
        "epochs": [
            {"epoch": e, "events_per_s": 1000.0, "eval": {"mrr@20": 0.1 + 0.01 * e}}
            for e in range(2)
        ]
        if gru
        else [],
        "timings": {"train_s": 1.0, "eval_s": 1.0},
        "git_commit": "abc",
    }
    (out / "result.json").write_text(json.dumps(record))


@pytest.fixture
def records(tmp_path):
    """ds_a: XE clearly beats the best baseline (3 seeds), BPR-max ties it on most events;
    ds_b: the baselines win."""
    rng = np.random.default_rng(0)
    root = tmp_path / "raw"
    base_a = rng.integers(1, 60, N_EVENTS).astype(np.float64)
    write_record(root, "a_pop", "ds_a", "pop", base_a + 30)
    write_record(root, "a_sknn", "ds_a", "sknn", base_a)
    for seed in range(3):
        better = np.maximum(1, base_a - rng.integers(0, 8, N_EVENTS))
        write_record(root, f"a_xe{seed}", "ds_a", "gru", better, seed=seed, loss="ce")
    noisy = base_a.copy()
    noisy[:5] -= 1
    write_record(root, "a_bprmax", "ds_a", "gru", np.maximum(1, noisy), loss="bpr-max")
    base_b = rng.integers(1, 40, N_EVENTS).astype(np.float64)
    write_record(root, "b_pop", "ds_b", "pop", base_b)
    write_record(root, "b_sknn", "ds_b", "sknn", base_b + 2)
    write_record(root, "b_xe", "ds_b", "gru", base_b + 5, loss="ce")
    return root


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("BENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"


def test_comparison_table_golden_markdown_and_latex(records):
    runs = collect([records], []).runs
    table = comparison_table(runs, ["recall@20", "mrr@20"], "conservative", "Golden")
    golden("comparison.md", to_markdown(table))
    golden("comparison.tex", to_latex(table))


def test_comparison_table_styling_rules(records):
    runs = collect([records], []).runs
    table = comparison_table(runs, ["recall@20", "mrr@20"], "conservative", "Golden")
    assert table.rows == ["POP", "SKNN", "GRU4Rec XE", "GRU4Rec BPR-max"]
    md = to_markdown(table)
    xe = next(line for line in md.splitlines() if line.startswith("| GRU4Rec XE "))
    cells = [c.strip() for c in xe.split("|")[1:-1]]
    # ds_a: XE best (bold), mean ± std over 3 seeds, significant against SKNN (dagger).
    assert cells[1].startswith("**") and "±" in cells[1] and "†" in cells[1]
    # ds_b: XE is last of three: neither bold nor underlined, and significantly worse.
    assert "**" not in cells[3] and "<ins>" not in cells[3] and "†" in cells[3]
    # Second best on ds_a MRR is underlined; BPR-max differs on only 5 events: no dagger.
    bpr = next(line for line in md.splitlines() if line.startswith("| GRU4Rec BPR-max "))
    assert "<ins>" in bpr.split("|")[3] and "†" not in bpr
    # Improvement of the best GRU4Rec over the best baseline, in %.
    frame = to_frame(table)
    col = frame[(frame["dataset"] == "ds_a") & (frame["metric"] == "mrr@20")].set_index("method")
    expected = (col.loc["GRU4Rec XE", "mean"] / col.loc["SKNN", "mean"] - 1) * 100
    imp_line = next(line for line in md.splitlines() if "Improvement" in line)
    assert f"{expected:+.1f}%" == [c.strip() for c in imp_line.split("|")[1:-1]][2]
    assert (
        col.loc["GRU4Rec XE", "n_seeds"] == 3 and col.loc["GRU4Rec XE", "p_vs_best_baseline"] < 0.05
    )


def test_report_cli_skips_bad_records_and_is_byte_identical_on_rerun(records, tmp_path, capsys):
    (records / "broken").mkdir()
    (records / "broken" / "result.json").write_text('{"method": "pop", "metr')  # truncated
    (records / "partial").mkdir()
    (records / "partial" / "result.json").write_text('{"method": "pop"}')
    out = tmp_path / "out"
    args = [
        "--records",
        str(records),
        "--out",
        str(out),
        "--benchmark",
        str(tmp_path / "no.json"),
    ]
    assert report_main(args) == 0
    skipped = (out / "tables" / "skipped_records.csv").read_text()
    assert "broken" in skipped and "partial record, missing" in skipped

    def digest():
        return {
            p.relative_to(out): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }

    first = digest()
    assert report_main(args) == 0
    assert digest() == first
    names = {p.name for p in first}
    assert {"comparison.md", "comparison.tex", "comparison.csv", "reproduction.md"} <= names
    assert {"metrics_vs_k_ds_a.png", "metrics_vs_k_ds_a.pdf", "learning_curves_ds_a.png"} <= names


def test_report_bad_metric_is_one_line(records, tmp_path, capsys):
    code = report_main(
        [
            "--records",
            str(records),
            "--out",
            str(tmp_path / "o"),
            "--metrics",
            "recall@50",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recall@50" in err


def report_args(records, out, tmp_path, *extra):
    return [
        "--records",
        str(records),
        "--out",
        str(out),
        "--benchmark",
        str(tmp_path / "no.json"),
        *extra,
    ]


def test_a_table_never_mixes_evaluation_protocols(records, tmp_path, capsys):
    """Rows evaluated with unknown items counted as misses cannot share a table with rows
    that dropped them: refused in one line, nothing written."""
    write_record(records, "b_sr_miss", "ds_b", "sr", np.arange(1, N_EVENTS + 1), unknown="miss")
    out = tmp_path / "out"
    assert report_main(report_args(records, out, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: eval.unknown_test_items: the records mix drop for 9 runs")
    assert "miss for 1 runs (e.g. SR on ds_b)" in err[0]
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_rows_that_differ_in_more_than_the_loss_are_named(records, tmp_path):
    write_record(
        records,
        "b_bprmax_official",
        "ds_b",
        "gru",
        np.arange(1, N_EVENTS + 1),
        loss="bpr-max",
        layers=192,
    )
    table = comparison_table(collect([records], []).runs, ["recall@20"], "conservative")
    text = to_markdown(table)
    assert (
        "The GRU4Rec rows differ in more than the loss (network, batch, learning rate or "
        "sampling; see the hyperparameters below): GRU4Rec BPR-max, GRU4Rec XE: the defaults; "
        "GRU4Rec BPR-max: the official parameters of each dataset (params=official)."
    ) in text
    # Hyperparameters per dataset where they differ.
    assert "- GRU4Rec BPR-max: `ds_a: layers=[100]" in text and "; ds_b: layers=[192]" in text


def test_a_readme_block_is_not_replaced_by_a_smaller_table(records, tmp_path, capsys):
    readme = tmp_path / "README.md"
    rows = "\n".join(f"| Row {i} | 1 |" for i in range(12))
    readme.write_text(
        f"<!-- comparison:start -->\n| Method | x |\n|---|---|\n{rows}\n<!-- comparison:end -->\n"
    )
    before = readme.read_text()
    out = tmp_path / "out"
    assert report_main(report_args(records, out, tmp_path, "--readme", str(readme))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "table has 5 rows where the README holds 12" in err[0]
    assert readme.read_text() == before and not out.exists()
    args = report_args(records, out, tmp_path, "--readme", str(readme), "--allow-fewer-rows")
    assert report_main(args) == 0
    assert "GRU4Rec XE" in readme.read_text() and (out / "tables" / "comparison.md").is_file()


def test_readme_block_receives_the_generated_table(records, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- comparison:start -->\nold table\n<!-- comparison:end -->\noutro\n"
    )
    args = [
        "--records",
        str(records),
        "--out",
        str(tmp_path / "o"),
    ]
    assert report_main([*args, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- comparison:start -->\n| Method |") and text.endswith(
        "<!-- comparison:end -->\noutro\n"
    )
    assert "old table" not in text and "| GRU4Rec XE |" in text
    (tmp_path / "plain.md").write_text("no markers\n")
    assert report_main([*args, "--readme", str(tmp_path / "plain.md")]) == 2
    assert report_main([*args, "--readme", str(tmp_path / "missing.md")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --readme: {tmp_path / 'missing.md'} is not a file"
    )


def test_readme_blocks_are_filled_by_name(records, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- a:start -->\n<!-- a:end -->\nmid\n<!-- b:start -->\nold\n<!-- b:end -->\n"
    )
    args = [
        "--records",
        str(records),
        "--out",
        str(tmp_path / "o"),
        "--readme",
        str(readme),
    ]
    assert report_main([*args, "--readme-block", "b"]) == 0
    text = readme.read_text()
    assert text.startswith("<!-- a:start -->\n<!-- a:end -->\nmid\n<!-- b:start -->\n| Method |")
    assert "OLD TABLE" not in text


def final_record(dataset, method, ranks, seed, standard_recall20, loss=None, unknown="miss"):
    """A final-split record as a study keeps it in its `final` attribute."""
    metrics = metrics_from_ranks(torch.as_tensor(ranks, dtype=torch.float64), [10, 20])
    gru = loss is not None
    return {
        "kind": "gru4rec" if gru else "baseline",
        "method": "gru4rec" if gru else method,
        "dataset": {"dataset": dataset, "label": dataset, "split": "final"},
        "protocol": {
            "tie_mode": "conservative",
            "evaluated_events": len(ranks),
            "unknown_test_items": "dropped, session re-chained",
        },
        "schema_version": 2,
        "training": "session_parallel" if gru else None,
        "settings": {
            "loss": loss,
            "n_sample": 2048,
            "sample_alpha": 0.5,
            "n_epochs": 10,
            "layers": [192],
            "batch_size": 224,
        }
        if gru
        else {"k": 300},
        "eval": {"unknown_test_items": unknown},
        "seed": seed,
        "study": {
            "name": f"s_{method}_{dataset}",
            "phase": "final",
            "trial": None,
            "n_trials": 12,
            "best_trial": 7,
        },
        "metrics": metrics,
        "metrics_by_tie_mode": {
            "conservative": metrics,
            "standard": {**metrics, "recall@20": standard_recall20},
        },
        "record_path": f"/elsewhere/{method}/{dataset}/seed{seed}/result.json",
    }


def study_with_final(storage, name, records, target=200, space=True):
    import optuna

    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("n_trials_target", target)
    study.set_user_attr(
        "search_space", {"k": {"type": "int", "low": 1, "high": 9}} if space else {}
    )
    study.set_user_attr(
        "final",
        {
            "best_trial": 7,
            "n_trials": 12,
            "seeds": [r["seed"] for r in records],
            "metrics": {},
            "records": records,
        },
    )
    return study


def test_headline_comes_from_the_studies_alone(tmp_path):
    """Two seeds of a tuned GRU4Rec and one of a baseline, kept only in a study storage:
    mean ± std (ddof 1) per cell, standard ties in brackets, the gap to the leaderboard,
    the unfinished budget said plainly, and a drop-protocol retraining left out."""
    import optuna

    from bench.report.headline import build, to_latex, to_markdown

    storage = f"sqlite:///{tmp_path / 's.db'}"
    ranks_a = np.full(100, 30.0)
    ranks_a[:60] = 1.0  # recall@20 = mrr@20 = recall@10 = 60%
    ranks_b = np.full(100, 30.0)
    ranks_b[:50] = 2.0  # recall@20 = 50%, mrr@20 = 25%
    gru = [
        final_record("diginetica_srgnn", "gru", r, s, 0.7, loss="ce")
        for s, r in enumerate([ranks_a, ranks_b])
    ]
    study = study_with_final(storage, "gru4rec_ce_diginetica_srgnn", gru)
    for number in range(8):  # trial 0: the configured parameters; 7: the best, retrained
        trial = study.ask()
        trial.set_user_attr("objective_metric", "mrr@20")
        if number == 0:
            trial.set_user_attr("enqueued", "the configured values")
        study.tell(trial, 0.3 if number == 7 else 0.1 + 0.01 * number)
    # A seed retrained after 5 trials and kept, the best trial unchanged, until the 12th.
    sknn = final_record("yoochoose1_64", "sknn", ranks_b, 0, 0.5)
    sknn["study"]["n_trials"] = 5
    study_with_final(storage, "sknn_yoochoose1_64", [sknn], target=12)
    study_with_final(
        storage,
        "stan_yoochoose1_64",
        [final_record("yoochoose1_64", "stan", ranks_b, 0, 0.5, unknown="drop")],
    )
    study_with_final(
        storage,
        "spop_yoochoose1_64",
        [final_record("yoochoose1_64", "spop", ranks_a, 0, 0.6)],
        target=1,
        space=False,
    )
    optuna.create_study(study_name="gru4rec_bpr-max_yoochoose1_64", storage=storage)
    col = collect([], [storage])
    h = build(col.runs, col.studies)
    md = to_markdown(h)
    # P@20: (60 + 50) / 2 = 55.00, std = sqrt(((60-55)^2 + (50-55)^2) / 1) = 7.07; standard 70.
    # MRR@20: (60 + 25) / 2 = 42.50, std = sqrt(2 * 17.5^2) = 24.75.
    assert "| GRU4Rec XE (tuned) | 55.00 ± 7.07 (70.00) | 42.50 ± 24.75 (42.50) |" in md
    assert "| SKNN (tuned) | – | – | – | – | 50.00 (50.00) | 25.00 (25.00) |" in md
    assert "| SGNN-HN (published) | 55.67 | 19.45 |" in md
    assert (
        "our best GRU4Rec (GRU4Rec XE (tuned), 55.00) is SHORT of the best published (SGNN-HN, "
        "55.67) by -0.67 points" in md
    )
    assert "our best GRU4Rec (GRU4Rec XE (tuned), 42.50) is at or above" in md
    assert "by -0.67 points; at or above GRU4REC (2015), NARM, STAMP, SR-GNN." in md
    assert "GRU4Rec XE (tuned) on diginetica_srgnn: retrained after 12 of 200 trials" in md
    # 2 of GRU4Rec's 5 final seeds: said; the baselines' single seed is complete
    assert "GRU4Rec XE (tuned) on diginetica_srgnn: 2 of its 5 final seeds so far" in md
    assert "SKNN (tuned) on yoochoose1_64: 1 of" not in md
    # Pruned trials and CPU-hours of the budget; trials without a recorded CPU time are
    # counted as wall time x 2 threads and marked.
    assert "| SKNN (tuned) | yoochoose1_64 | 12 of 12 | 0 | 0.00 | 7 | – | 1 | `k=300` |" in md
    assert (
        "| GRU4Rec XE (tuned) | diginetica_srgnn | 12 of 200 | 0 | 0.00* | 7 | MRR@20 0.3000 "
        "(configured: 0.1000) | 2 |" in md
    )
    assert "CPU-hours marked * include trials run before" in md
    assert "Protocol: every tuned method had the same budget of 30 finished trials" in md
    assert "Left out: the retraining of study stan_yoochoose1_64" in md
    # Nothing to tune (empty search space): no "(tuned)", no trial budget.
    assert "| S-POP | – | – | – | – | 60.00 (60.00) |" in md
    assert "| S-POP | yoochoose1_64 | no hyperparameters | – | – | – | – | 1 |" in md
    assert "STAN" not in md.split("Left out")[0]
    assert "- gru4rec_bpr-max_yoochoose1_64: 0 of ? trials finished" in md
    assert "- itemknn_diginetica_srgnn: not started" in md  # a study the headline asks for
    assert "- sknn_yoochoose1_64: not started" not in md
    tex = to_latex(h)
    assert r"55.00 $\pm$ 7.07 (70.00)" in tex and r"\begin{tabular}{llllllllp{7cm}}" in tex


def test_headline_marks_a_significant_gap_between_the_best_gru4rec_and_the_best_baseline(
    tmp_path,
):
    """Per-event ranks kept with the retrainings (the storage alone) pair the best GRU4Rec
    with the best baseline: Wilcoxon over the events, † on both cells where p < 0.05."""
    from scipy.stats import wilcoxon

    from bench.records import RANKS_KEY, encode_ranks
    from bench.report.headline import build, to_markdown

    storage = f"sqlite:///{tmp_path / 's.db'}"
    ranks_a = np.full(100, 30.0)
    ranks_a[:60] = 1.0  # hit@20 on 60 events, reciprocal rank 1
    ranks_b = np.full(100, 30.0)
    ranks_b[:50] = 2.0  # hit@20 on 50 of the same events, reciprocal rank 1/2
    ranks_c = np.full(100, 30.0)
    ranks_c[:59] = 1.0  # a baseline one event short of GRU4Rec: not significant
    ranks_c[59] = 400.0  # beyond the stored cap: still a miss

    def rec(method, ranks, seed=0, loss=None):
        r = final_record("yoochoose1_64", method, ranks, seed, 0.6, loss=loss)
        r["protocol"]["test_fingerprint"] = "f1"
        return r | {RANKS_KEY: encode_ranks(ranks)}

    study_with_final(
        storage, "gru4rec_ce_yoochoose1_64", [rec("gru", ranks_a, s, loss="ce") for s in (0, 1)]
    )
    study_with_final(storage, "sknn_yoochoose1_64", [rec("sknn", ranks_b)])
    study_with_final(storage, "sknn_diginetica_srgnn", [])
    col = collect([], [storage])
    md = to_markdown(build(col.runs, col.studies))
    row = next(line for line in md.splitlines() if line.startswith("| GRU4Rec XE (tuned)"))
    assert row.count("†") == 4  # P@20, MRR@20, P@10, MRR@10 all differ significantly
    assert "| SKNN (tuned) | – | – | – | – | 50.00 (60.00) † |" in md
    hits_a, hits_b = (ranks_a <= 20).astype(float), (ranks_b <= 20).astype(float)
    p = wilcoxon(hits_a, hits_b, zero_method="wilcox").pvalue  # 10 events differ, all +1
    assert (
        f"against the best other method tuned here (SKNN (tuned), 50.00) +10.00 points, paired "
        f"Wilcoxon p = {p:.2g} over 100 test events." in md
    )
    # A close baseline: no mark, the p-value still stated.
    storage2 = f"sqlite:///{tmp_path / 't.db'}"
    study_with_final(storage2, "gru4rec_ce_yoochoose1_64", [rec("gru", ranks_a, 0, loss="ce")])
    study_with_final(storage2, "sknn_yoochoose1_64", [rec("sknn", ranks_c)])
    col = collect([], [storage2])
    md = to_markdown(build(col.runs, col.studies))
    assert "†" not in md.split("\n- ")[0].split("Protocol")[0].replace("† marks", "")
    assert "+1.00 points, paired Wilcoxon p = 0.32 over 100 test events." in md
    # A gap so wide that p underflows to 0 (as on 55,898 yoochoose1/64 events): a bound
    big_a, big_b = np.full(20_000, 30.0), np.full(20_000, 30.0)
    big_a[:15_000], big_b[:5_000] = 1.0, 1.0
    storage3 = f"sqlite:///{tmp_path / 'u.db'}"
    study_with_final(storage3, "gru4rec_ce_yoochoose1_64", [rec("gru", big_a, 0, loss="ce")])
    study_with_final(storage3, "sknn_yoochoose1_64", [rec("sknn", big_b)])
    col = collect([], [storage3])
    md = to_markdown(build(col.runs, col.studies))
    assert "+50.00 points, paired Wilcoxon p < 1e-300 over 20,000 test events." in md
    assert "p = 0 " not in md


def test_a_tuned_neural_peer_above_every_baseline_is_what_gru4rec_is_held_against(tmp_path):
    """The plain statements name where GRU4Rec stands against the best model tuned here:
    a neural peer tuned under the same protocol counts, not only the baselines."""
    from bench.records import RANKS_KEY, encode_ranks
    from bench.report.headline import build, to_markdown

    ranks_gru, ranks_peer, ranks_base = (np.full(100, 30.0) for _ in range(3))
    ranks_gru[:60], ranks_peer[:55], ranks_base[:40] = 1.0, 1.0, 1.0

    def rec(method, ranks, loss=None):
        r = final_record("yoochoose1_64", method, ranks, 0, 0.6, loss=loss)
        r["protocol"]["test_fingerprint"] = "f1"
        return r | {RANKS_KEY: encode_ranks(ranks)}

    peer = rec("srgnn", ranks_peer) | {"kind": "model"}
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study_with_final(storage, "gru4rec_ce_yoochoose1_64", [rec("gru", ranks_gru, loss="ce")])
    study_with_final(storage, "srgnn_yoochoose1_64", [peer])
    study_with_final(storage, "sknn_yoochoose1_64", [rec("sknn", ranks_base)])
    col = collect([], [storage])
    md = to_markdown(build(col.runs, col.studies))
    assert "| SR-GNN (tuned) | – | – | – | – | 55.00 (60.00) † |" in md  # (standard ties)
    assert "against the best other method tuned here (SR-GNN (tuned), 55.00) +5.00 points" in md
    assert "| SKNN (tuned) | – | – | – | – | 40.00 (60.00) |" in md  # no mark: not compared


def test_headline_command_writes_the_files_and_the_readme_block(tmp_path):
    from bench.report.headline import main

    storage = f"sqlite:///{tmp_path / 's.db'}"
    ranks = np.full(10, 1.0)
    study_with_final(
        storage,
        "gru4rec_ce_yoochoose1_64",
        [final_record("yoochoose1_64", "gru", ranks, 0, 1.0, loss="ce")],
    )
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- headline:start -->\nold\n<!-- headline:end -->\nrest\n")
    out = tmp_path / "results"
    assert main(["--storage", storage, "--out", str(out), "--readme", str(readme)]) == 0
    md = (out / "headline.md").read_text()
    assert "| GRU4Rec XE (tuned) | – | – | – | – | 100.00 (100.00) |" in md
    text = readme.read_text()
    assert "old" not in text and "| GRU4Rec XE (tuned) |" in text and text.endswith("rest\n")
    assert (out / "headline.tex").read_text().startswith(r"\begin{table*}")
    # A README without the block is a one-line error, not a silent skip.
    readme.write_text("# no block\n")
    assert main(["--storage", storage, "--out", str(out), "--readme", str(readme)]) == 2


def test_headline_with_an_unreadable_storage_is_a_one_line_error(tmp_path, capsys):
    from bench.report.headline import main

    assert main(["--storage", "postgresql://nobody@127.0.0.1:1/none", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --storage: postgresql://nobody@127.0.0.1:1/none: cannot open (")
    assert "\n" not in err
    assert err.endswith(")")  # the driver's first line, inside the parentheses


def test_headline_validation_column_names_the_configured_trial():
    import optuna

    from bench.report.headline import validation

    study = optuna.create_study(direction="maximize")
    for number, value in enumerate([0.5, 0.2]):
        trial = study.ask()
        trial.set_user_attr("objective_metric", "mrr@20")
        if number == 0:
            trial.set_user_attr("enqueued", "the configured values")
        study.tell(trial, value)
    assert validation(study, 0) == "MRR@20 0.5000 (the configured values)"
    assert validation(study, 1) == "MRR@20 0.2000 (configured: 0.5000)"
    assert validation(study, float("nan")) == "–"

    # Run after the study's budget (2 finished trials): shown, and said to be outside it.
    study.set_user_attr("n_trials_target", 2)
    trial = study.ask()
    trial.set_user_attr("objective_metric", "mrr@20")
    trial.set_user_attr("enqueued", "the configured values")
    study.tell(trial, 0.4)
    assert validation(study, 0) == "MRR@20 0.5000 (configured, run after the budget: 0.4000)"


def test_the_protocol_names_the_pruner_and_the_trials_an_earlier_one_judged():
    from types import SimpleNamespace

    from bench.report.headline import protocol

    sh, med = "successive_halving (first judged after epoch 2, reduction 3)", "median (warm-up 0)"
    studies = [
        SimpleNamespace(study_name="gru4rec_ce_a", user_attrs={"pruners": [[0, med], [4, sh]]}),
        SimpleNamespace(study_name="gru4rec_bpr-max_a", user_attrs={"pruners": [[1, sh]]}),
        SimpleNamespace(study_name="sknn_a", user_attrs={"pruners": [[1, "none"]]}),
    ]
    text = protocol(studies, {})
    assert (
        f"pruned by {sh} (earlier trials of a study under another: gru4rec_ce_a trials 0-3 by "
        f"{med})." in text
    )
    assert "per study below" not in text and "none" not in text
    one = protocol(studies[1:], {})
    assert f"pruned by {sh}. " in one and "earlier" not in one


def test_trials_and_seeds_run_on_a_gpu_are_said_under_the_table():
    import optuna
    import pandas as pd

    from bench.report.headline import accelerated

    study = optuna.create_study(direction="maximize")
    for device in ["cpu (1 threads)"] * 2 + ["NVIDIA H200"] * 3:
        trial = study.ask()
        trial.set_user_attr("device", device)
        study.tell(trial, 0.1)
    seeds = pd.DataFrame({"device": ["NVIDIA H200"] * 4 + ["cpu (1 threads)"]})
    (note,) = accelerated("GRU4Rec BPR-max (tuned)", "diginetica_srgnn", study, 4, seeds)
    assert note.startswith(
        "GRU4Rec BPR-max (tuned) on diginetica_srgnn: 2 of its 4 trials and 4 of its 5 final "
        "seeds ran on a GPU (NVIDIA H200)"
    )
    cpu_only = pd.DataFrame({"device": ["cpu (2 threads)"]})
    assert accelerated("x", "d", study, 2, cpu_only) == []  # the first two trials: CPU


def test_study_figures_leave_the_global_matplotlib_style_alone(tmp_path):
    """Optuna's plots switch to ggplot globally; figures drawn afterwards in the same process
    (the report's learning curves after a headline) must not change with it."""
    import matplotlib
    import optuna

    from bench.report import plots

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    objective = lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1)
    study.optimize(objective, plots.MIN_IMPORTANCE_TRIALS - 1)
    paths, reason = plots.study_figures(study, tmp_path)  # too few: the history only
    assert len(paths) == 2 and reason.endswith("needs 5+ complete trials with parameters")
    study.optimize(objective, 1)
    with matplotlib.rc_context():
        matplotlib.style.use("default")  # whatever an earlier test left behind
        before = dict(matplotlib.rcParams)
        paths, reason = plots.study_figures(study, tmp_path)
        changed = {k for k, v in matplotlib.rcParams.items() if before[k] != v}
    assert reason is None and len(paths) == 4
    assert changed == set()


def test_the_protocol_names_the_studies_whose_configured_trial_was_not_the_first():
    import optuna

    from bench.report.headline import protocol
    from bench.study import ENQUEUED

    def study(name, enqueued_at, tuned=True, trials=3):
        s = optuna.create_study(study_name=name, direction="maximize")
        s.set_user_attr("n_trials_target", 3)
        if tuned:
            s.set_user_attr("search_space", {"k": {"type": "int", "low": 1, "high": 9}})
        for i in range(trials):
            if i == enqueued_at:
                s.enqueue_trial({"k": 5}, user_attrs={ENQUEUED: "the configured values"})
            t = s.ask()
            t.suggest_int("k", 1, 9)
            s.tell(t, 0.1 * i)
        return s

    text = protocol(
        [
            study("first", 0),
            study("late", 2),
            study("never", None),
            study("pop", None, tuned=False),
            study("after", 3, trials=4),
        ],
        {},
    )
    assert (
        "as the first trial (except: after ran them only after its budget, as trial 3, which "
        "does not count; late ran them as trial 2; never never ran them; "
    ) in text
    assert "first ran" not in text and "pop" not in text
    assert "(except" not in protocol([study("first", 0)], {})


def test_the_protocol_says_how_many_seeds_each_row_was_retrained_with():
    from bench.report.headline import retraining

    seeds = {
        "POP": 1,
        "BPR-MF (tuned)": 5,
        "SKNN (tuned)": 1,
        "GRU4Rec XE (tuned)": 5,
        "GRU4Rec BPR-max (tuned)": 5,
        "X (tuned)": 3,
    }
    assert retraining(seeds).startswith(
        "The best trial retrained on train -> test with 5 seeds for BPR-MF, GRU4Rec XE and "
        "GRU4Rec BPR-max; 3 seeds for X (the seed changes their initialisation and sampling), "
        "once for the others (deterministic"
    )
    assert retraining({"POP": 1, "SKNN (tuned)": 1}).startswith(
        "The best trial retrained on train -> test once per method"
    )


def test_a_peer_run_with_its_published_settings_gets_its_two_rows_and_statements():
    """End of schedule and best test epoch per metric, beside the published row, and the two
    differences said plainly (hand-computed from the epochs below)."""
    import pandas as pd

    from bench.report.headline import build

    def metrics(r20, m20):
        return {"recall@20": r20, "mrr@20": m20, "recall@10": r20 - 0.1, "mrr@10": m20 - 0.01}

    epochs = [
        {"eval": metrics(0.69, 0.30)},
        {"eval": metrics(0.71, 0.305)},
        {"eval": metrics(0.70, 0.31)},
    ]
    runs = pd.DataFrame(
        [
            {
                "kind": "model",
                "phase": None,
                "dataset": "yoochoose1_64",
                "label": "SR-GNN",
                "unknown_test_items_option": "miss",
                "tie_mode": "conservative",
                "record": "r",
                **metrics(0.70, 0.31),
            }
        ]
    )
    h = build(runs, [], {"r": epochs})
    labels = [r[0] for r in h.rows]
    at = labels.index("SR-GNN (published)")
    assert labels[at + 1 : at + 3] == [
        "SR-GNN (published settings, run here: end of schedule)",
        "SR-GNN (published settings, run here: best test epoch)",
    ]
    assert h.rows[at + 1][5:9] == ["70.00", "31.00", "60.00", "30.00"]  # yoochoose1_64 columns
    assert h.rows[at + 2][5:7] == ["71.00 (epoch 2)", "31.00 (epoch 3)"]
    assert h.rows[at + 1][1] == "–"  # not run on Diginetica
    assert (
        "SR-GNN on yoochoose1_64 P@20: published 70.57; run here with its published settings "
        "70.00 after its 3 epochs and 71.00 at its best test epoch (2): choosing the epoch on "
        "the test set adds +1.00 points, and the published number is -0.43 points from what "
        "this harness reproduces."
    ) in h.notes
    assert any(n.startswith("SR-GNN on yoochoose1_64 MRR@20: published 30.94;") for n in h.notes)


def test_the_report_reads_only_what_it_is_pointed_at_and_filters(records, tmp_path, capsys):
    """No study storage unless named (--storage, --studies); --dataset and --method keep a
    part of the records; a name that is not among them is one line."""
    out = tmp_path / "out"
    assert (
        report_main(
            report_args(
                records, out, tmp_path, "--dataset", "ds_b", "--method", "pop", "--method", "sknn"
            )
        )
        == 0
    )
    table = (out / "tables" / "comparison.md").read_text()
    assert "ds_b Recall@20" in table and "ds_a" not in table
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| POP", "| SKNN", "| *Improvement of best GRU4Rec over best baseline*"]
    assert "0 studies" in capsys.readouterr().err.replace("\n", " ")
    assert report_main(report_args(records, out, tmp_path, "--dataset", "ds_c")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --dataset: ds_c not among the records; they hold ds_a, ds_b"]


def test_a_seed_run_twice_counts_once_and_is_named(records, tmp_path):
    """The same seed twice is one run, not two samples: no "± 0.00" from repeats, a note
    instead; and two configurations under one name are two labels, in the table and in the
    figures drawn from the same runs."""
    from bench.report.tables import table_runs

    rng = np.random.default_rng(5)
    write_record(records, "a_sknn_again", "ds_a", "sknn", rng.integers(1, 60, N_EVENTS))
    write_record(
        records, "a_xe_big", "ds_a", "gru", rng.integers(1, 60, N_EVENTS), loss="ce", layers=200
    )
    col = collect([records], [])
    final, notes = table_runs(col.runs, "conservative")
    sknn = final[(final["label"] == "SKNN") & (final["dataset"] == "ds_a")]
    assert len(sknn) == 1 and sknn["record"].iloc[0].endswith("a_sknn_again/result.json")
    assert notes == [
        "SKNN on ds_a: 1 more run(s) of seed(s) 0 left out (the same seed twice is "
        "the same run, not another sample)"
    ]
    on_a = final[final["dataset"] == "ds_a"]
    xe = sorted(label for label in on_a["label"].unique() if label.startswith("GRU4Rec XE"))
    assert len(xe) == 2 and all(" [" in label for label in xe)
    table = comparison_table(col.runs, ["recall@20"], "conservative")
    assert table.cells[("SKNN", "ds_a", "recall@20")].n == 1
    assert notes[0] in table.notes


def test_the_figure_draws_one_line_per_table_row(records, tmp_path, monkeypatch):
    """metrics_vs_k: each panel has exactly the table's rows, in its order, one line each
    (it once drew one line at the mean of rows that the table kept apart)."""
    from bench.report import plots
    from bench.report.tables import table_runs

    write_record(
        records, "b_bprmax_official", "ds_b", "gru", np.arange(1, N_EVENTS + 1), loss="bpr-max"
    )
    runs = collect([records], []).runs
    table = comparison_table(runs, ["recall@20"], "conservative")
    final, _ = table_runs(runs, "conservative")
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.append(fig) or [])
    plots.metrics_vs_k(final, "ds_b", [5, 20], tmp_path)
    rows = [r for r in table.rows if (r, "ds_b", "recall@20") in table.cells]
    assert len([r for r in rows if r.startswith("GRU4Rec")]) == 2 and len(rows) >= 4
    for ax in drawn[0].axes:
        assert [line.get_label() for line in ax.get_lines()] == rows


def test_an_unknown_tie_mode_is_refused_by_the_option(capsys):
    with pytest.raises(SystemExit) as e:
        report_main(["--tie-mode", "weird"])
    assert e.value.code == 2
    assert "--tie-mode: invalid choice: 'weird'" in capsys.readouterr().err


def test_a_storage_file_that_does_not_exist_is_one_line_and_is_not_created(tmp_path, capsys):
    """SQLite would create an empty storage, and the table would silently lack its studies."""
    from bench.report.headline import main as headline_main

    typo = tmp_path / "sweeps" / "typo.db"
    for main, out in ((report_main, "r"), (headline_main, "h")):
        argv = ["--storage", f"sqlite:///{typo}", "--out", str(tmp_path / out)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: --storage: sqlite:///{typo}: no such file"
    assert not typo.exists() and not typo.parent.exists()


def test_a_database_without_studies_is_refused_and_gets_no_tables(pg_url, tmp_path, capsys):
    """A report pointed at the wrong database must neither print an empty table nor leave
    Optuna's tables in it."""
    import sqlalchemy

    from bench.report.headline import main as headline_main

    for main, out in ((report_main, "r"), (headline_main, "h")):
        assert main(["--storage", pg_url, "--out", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: --storage: {pg_url}: not a study storage (no Optuna tables in it)"
    engine = sqlalchemy.create_engine(pg_url)
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()
