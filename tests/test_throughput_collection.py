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
