"""The throughput collection (benchmarks/results/throughput.json): full training splits and
the catalogue sweep measured in separate sittings, folded into one file whose table the
README shows; and the sweep's synthetic sessions, which must hold exactly the catalogue."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.benchmark_scripts import benchmark_module

ROOT = Path(__file__).parents[1]


throughput = benchmark_module("throughput")
summarize = benchmark_module("summarize")


def report(date: str, rows: list[tuple], **source) -> dict:
    """A throughput report as throughput.py writes it, with one events/s per side per row."""
    return {
        "benchmark": "throughput",
        "date": date,
        "dataset": "diginetica_srgnn",
        "catalogue": None,
        "events_requested": 0,
        **source,
        "rows": [
            {
                "device": "cpu",
                "loss": loss,
                "batch_size": batch,
                "layers": 100,
                "bare": {"events_per_s": ours},
                "official": {"events_per_s": off},
            }
            for loss, batch, ours, off in rows
        ],
    }


def test_a_setting_measured_again_replaces_its_row_and_sources_stay_apart(tmp_path):
    out = tmp_path / "throughput.json"
    first = report("2026-12-03", [("ce", 32, 300.0, 100.0), ("ce", 64, 400.0, 100.0)])
    out.write_text(json.dumps(throughput.merge(out, first)))
    again = report("2026-12-04", [("ce", 64, 500.0, 100.0), ("bpr-max", 32, 600.0, 100.0)])
    out.write_text(json.dumps(throughput.merge(out, again)))
    sweep = report("2026-12-04", [("ce", 128, 50.0, 10.0)], dataset="synthetic", catalogue=10_000)
    coll = throughput.merge(out, sweep)

    assert coll["benchmark"] == "throughput" and len(coll["parts"]) == 2
    digi, synth = coll["parts"]
    got = [(r["loss"], r["batch_size"], r["bare"]["events_per_s"], r["date"]) for r in digi["rows"]]
    assert got == [
        ("bpr-max", 32, 600.0, "2026-12-04"),
        ("ce", 32, 300.0, "2026-12-03"),  # kept, with the day it was measured
        ("ce", 64, 500.0, "2026-12-04"),  # replaced
    ]
    assert synth["catalogue"] == 10_000 and len(synth["rows"]) == 1


def test_an_older_single_report_becomes_the_first_part(tmp_path):
    out = tmp_path / "throughput.json"
    out.write_text(json.dumps(report("2026-12-01", [("ce", 32, 300.0, 100.0)])))
    coll = throughput.merge(out, report("2026-12-04", [("ce", 64, 1.0, 1.0)], dataset="x"))
    assert [p["dataset"] for p in coll["parts"]] == ["diginetica_srgnn", "x"]
    assert coll["parts"][0]["rows"][0]["date"] == "2026-12-01"


@pytest.mark.parametrize("n_items", [500, 5_000])
def test_the_sweep_sessions_hold_exactly_the_catalogue(n_items):
    got, sessions = throughput.catalogue_sessions(n_items, 6_000, seed=3)
    assert got == n_items
    assert np.array_equal(np.unique(sessions.items), np.arange(n_items))
    training_events = int((sessions.lengths - 1).sum())
    assert abs(training_events - 6_000) < 600 and sessions.lengths.min() >= 2
    again = throughput.catalogue_sessions(n_items, 6_000, seed=3)[1]
    assert np.array_equal(again.items, sessions.items)  # seeded


def test_too_few_events_for_the_catalogue_is_one_line():
    with pytest.raises(SystemExit, match="too few to cover 100,000 items"):
        throughput.catalogue_sessions(100_000, 3_000)


def test_the_readme_speed_table_is_drawn_from_the_collection():
    coll = json.loads((ROOT / "benchmarks/results/throughput.json").read_text())
    kinds = {p.get("catalogue") is None for p in coll["parts"]}
    assert kinds == {True, False}  # full splits and the catalogue sweep
    assert {p["dataset"] for p in coll["parts"]} >= {"diginetica_srgnn", "yoochoose1_64"}
    found = re.search(
        r"<!-- speed:start -->\n(.*)<!-- speed:end -->", (ROOT / "README.md").read_text(), re.S
    )
    assert found and found.group(1) == summarize.collection_table(coll) + "\n"


def gpu_report(date: str, settings: list[tuple], skipped: list[tuple]) -> dict:
    def setting(loss, batch, layers):
        return {"device": "cuda", "loss": loss, "batch_size": batch, "layers": layers}

    return {
        "benchmark": "throughput",
        "date": date,
        "dataset": "diginetica_srgnn",
        "events_requested": 0,
        "n_sample": 2048,
        "machine": {"gpu": "H200"},
        "versions": {"torch": "2.11"},
        "official": True,
        "losses": ["ce", "bpr-max"],
        "rows": [{**setting(*s), "bare": {"events_per_s": 1.0}} for s in settings],
        "skipped": [setting(*s) for s in skipped],
        "failed": [],
    }


def test_calls_of_one_grid_join_into_one_report(tmp_path):
    first = gpu_report(
        "2026-12-04T16:54",
        [("ce", 32, 100)],
        [("bpr-max", 32, 100), ("ce", 512, 100), ("ce", 128, 100)],
    )
    second = gpu_report(
        "2026-12-04T17:00", [("ce", 512, 100), ("bpr-max", 512, 100)], [("ce", 128, 100)]
    )
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(second))
    throughput.join(tmp_path / "j.json", [tmp_path / "a.json", tmp_path / "b.json"])
    joined = json.loads((tmp_path / "j.json").read_text())
    # table order: the run's losses in order, then layers, then batch size
    assert [(r["loss"], r["batch_size"], r["date"]) for r in joined["rows"]] == [
        ("ce", 32, "2026-12-04T16:54"),
        ("ce", 512, "2026-12-04T17:00"),
        ("bpr-max", 512, "2026-12-04T17:00"),
    ]
    # what no call measured, once each
    assert [(s["loss"], s["batch_size"]) for s in joined["skipped"]] == [
        ("bpr-max", 32),
        ("ce", 128),
    ]
    assert joined["calls"] == [
        {"date": "2026-12-04T16:54", "rows": 1},
        {"date": "2026-12-04T17:00", "rows": 2},
    ]
    assert "in 2 calls on one machine (1 settings done by 16:54, 2 settings done by 17:00 UTC)" in (
        summarize.gpu_caption(joined)
    )


def test_calls_on_different_machines_do_not_join(tmp_path):
    other = gpu_report("2026-12-04T17:00", [("ce", 512, 100)], [])
    other["machine"] = {"gpu": "H100"}
    (tmp_path / "a.json").write_text(json.dumps(gpu_report("d", [("ce", 32, 100)], [])))
    (tmp_path / "b.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match=r"--join: .*b.json differs from .*a.json in one of"):
        throughput.join(tmp_path / "j.json", [tmp_path / "a.json", tmp_path / "b.json"])


def test_the_grid_runs_large_batches_first_keeps_going_past_a_failure_and_saves_each_step(
    monkeypatch,
):
    """Batch sizes outermost (a budget cut leaves every loss measured at the first ones),
    a failed setting listed with its error, the report saved after every setting, and the
    rows back in table order."""
    ran, saved = [], []

    def measure(args, tsv, events, device, harnesses, loss, batch, layers):
        ran.append((loss, batch))
        if (loss, batch) == ("bpr-max", 512):
            raise RuntimeError("worker failed (bare, 512, 100): CUDA error")
        return {"device": device, "loss": loss, "batch_size": batch, "layers": layers}

    monkeypatch.setattr(throughput, "measure", measure)
    args = type("A", (), {})()
    args.batch_sizes, args.losses, args.layer_sizes = [512, 32], ["ce", "bpr-max"], [100]
    args.budget_s, args.harnesses = None, ["bare"]
    rows, skipped, failed = throughput.measure_grid(
        args, None, 0, ["cuda"], lambda *a: saved.append(len(a[0]))
    )
    assert ran == [("ce", 512), ("bpr-max", 512), ("ce", 32), ("bpr-max", 32)]
    assert [(r["loss"], r["batch_size"]) for r in rows] == [
        ("ce", 32),
        ("ce", 512),
        ("bpr-max", 32),
    ]
    assert failed == [
        {
            "device": "cuda",
            "loss": "bpr-max",
            "batch_size": 512,
            "layers": 100,
            "error": "worker failed (bare, 512, 100): CUDA error",
        }
    ]
    assert saved == [1, 1, 2, 3] and skipped == []
    args.budget_s = -1  # every setting past the budget: all listed, none run
    ran.clear()
    rows, skipped, failed = throughput.measure_grid(args, None, 0, ["cuda"], lambda *a: None)
    assert ran == [] and len(skipped) == 4


def test_the_gpu_table_is_drawn_from_the_committed_gpu_run():
    train = json.loads((ROOT / "benchmarks/results/gpu_throughput.json").read_text())
    evaluation = json.loads((ROOT / "benchmarks/results/gpu_eval.json").read_text())
    assert train["machine"]["gpu"] and evaluation["device"] == "cuda"
    measured = {(r["loss"], r["batch_size"], r["layers"]) for r in train["rows"]}
    listed = {(s["loss"], s["batch_size"], s["layers"]) for s in train["skipped"]}
    grid = {(lo, b, h) for lo in ("ce", "bpr-max") for b in (32, 128, 512) for h in (100, 480)}
    assert measured | listed == grid and not measured & listed  # every setting accounted for
    for r in train["rows"]:
        assert r["speedup_vs_official"] == r["bare"]["events_per_s"] / r["official"]["events_per_s"]
    found = re.search(
        r"<!-- gpu:start -->\n(.*)<!-- gpu:end -->",
        (ROOT / "benchmarks/README.md").read_text(),
        re.S,
    )
    expected = summarize.throughput_table(train) + "\n\n" + summarize.eval_table(evaluation)
    assert found and found.group(1) == expected + "\n"


def test_a_setting_measured_in_two_calls_keeps_the_later_row(tmp_path):
    first = gpu_report("2026-12-04T16:54", [("ce", 32, 100), ("ce", 512, 100)], [])
    again = gpu_report("2026-12-05T10:00", [("ce", 32, 100)], [])
    again["rows"][0]["bare"]["events_per_s"] = 2.0
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(again))
    throughput.join(tmp_path / "j.json", [tmp_path / "a.json", tmp_path / "b.json"])
    rows = json.loads((tmp_path / "j.json").read_text())["rows"]
    assert [(r["batch_size"], r["date"], r["bare"]["events_per_s"]) for r in rows] == [
        (32, "2026-12-05T10:00", 2.0),
        (512, "2026-12-04T16:54", 1.0),
    ]
