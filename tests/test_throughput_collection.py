"""The throughput collection (benchmarks/results/throughput.json): full training splits and
the catalogue sweep measured in separate sittings, folded into one file whose table the
README shows; and the sweep's synthetic sessions, which must hold exactly the catalogue."""

import itertools
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

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


def test_a_setting_measured_on_another_cpu_keeps_both_rows_each_named(tmp_path):
    out = tmp_path / "throughput.json"
    epyc = report("2026-12-03", [("ce", 64, 400.0, 100.0)])  # from before the CPU was recorded
    out.write_text(json.dumps(throughput.merge(out, epyc)))
    xeon = report("2026-12-04", [("ce", 64, 500.0, 100.0)], machine={"cpu": "Xeon"})
    out.write_text(json.dumps(throughput.merge(out, xeon)))
    again = report("2026-12-05", [("ce", 64, 550.0, 100.0)], machine={"cpu": "Xeon"})
    coll = throughput.merge(out, again)
    got = [(r["date"], r.get("host"), r["bare"]["events_per_s"]) for r in coll["parts"][0]["rows"]]
    assert sorted(got, key=str) == [("2026-12-03", None, 400.0), ("2026-12-05", "Xeon", 550.0)]
    assert [summarize.measured(r) for r in coll["parts"][0]["rows"]] == [
        "2026-12-03",
        "2026-12-05, Xeon",
    ]


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


def grid_args(**kw):
    args = type("A", (), {})()
    args.batch_sizes, args.losses, args.layer_sizes = [512, 32], ["ce", "bpr-max"], [100]
    args.budget_s, args.harnesses, args.window_events, args.shared_processes = (
        None,
        ["bare"],
        None,
        False,
    )
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_the_grid_runs_large_batches_first_keeps_going_past_a_failure_and_saves_each_step(
    monkeypatch,
):
    """Batch sizes outermost (a budget cut leaves every loss measured at the first ones),
    a failed setting listed with its error, the report saved after every setting, and the
    rows back in table order."""
    ran, saved = [], []

    def measure(args, tsv, harnesses, group):
        rows, failed = [], []
        for st in group:
            ran.append((st["loss"], st["batch_size"]))
            if (st["loss"], st["batch_size"]) == ("bpr-max", 512):
                failed.append({**st, "error": "bare: CUDA error"})
            else:
                rows.append(dict(st))
        return rows, failed

    monkeypatch.setattr(throughput, "measure", measure)
    args = grid_args()
    rows, skipped, failed = throughput.measure_grid(
        args, None, ["cuda"], lambda *a: saved.append(len(a[0]))
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
            "error": "bare: CUDA error",
        }
    ]
    assert saved == [1, 1, 2, 3] and skipped == []
    args.budget_s = -1  # every setting past the budget: all listed, none run
    ran.clear()
    rows, skipped, failed = throughput.measure_grid(args, None, ["cuda"], lambda *a: None)
    assert ran == [] and len(skipped) == 4


def test_shared_processes_group_a_batch_size_and_a_window_sets_each_settings_steps(
    monkeypatch,
):
    """--shared-processes: one group (so one process per side) per device and batch size;
    --window-events: each setting trains ceil(events / batch) minibatches."""
    groups = []
    monkeypatch.setattr(
        throughput, "measure", lambda a, t, h, group: (groups.append(group), ([], []))[1]
    )
    args = grid_args(shared_processes=True, window_events=1000, layer_sizes=[100, 480])
    throughput.measure_grid(args, None, ["cuda"], lambda *a: None)
    assert [[(s["loss"], s["layers"]) for s in g] for g in groups] == [
        [("ce", 100), ("ce", 480), ("bpr-max", 100), ("bpr-max", 480)]
    ] * 2
    assert [{s["window_steps"] for s in g} for g in groups] == [{2}, {32}]  # 1000/512, 1000/32
    assert {s["window_warmup"] for g in groups for s in g} == {throughput.WINDOW_WARMUP}


def test_a_worker_that_dies_fails_only_the_settings_it_had_not_reported(tmp_path):
    """One process runs several settings: those it reported keep their result or error,
    those after its death carry its exit status and stderr."""
    script = tmp_path / "w.py"
    script.write_text(
        "import json, sys\n"
        "print('RESULT ' + json.dumps({'index': 0, 'events_per_s': 5.0, 'peak_rss_mb': 9}))\n"
        "print('FAILED ' + json.dumps({'index': 1, 'error': 'OutOfMemoryError: x'}))\n"
        "sys.stderr.write('Segmentation fault'); sys.exit(139)\n"
    )
    got = throughput.run_settings([sys.executable, str(script)], 3)
    assert got[0] == {"events_per_s": 5.0, "peak_rss_mb": None}  # RSS: not per setting
    assert got[1] == "OutOfMemoryError: x"
    assert got[2] == "worker exited (139) before it: Segmentation fault"
    script.write_text(
        "import json\n"
        "print('RESULT ' + json.dumps({'index': 0, 'events_per_s': 5.0, 'peak_rss_mb': 9}))\n"
    )
    alone = throughput.run_settings([sys.executable, str(script)], 1)[0]
    assert alone["peak_rss_mb"] == 9 and alone["process_s"] > 0  # one setting: its own


def test_the_official_window_skips_its_warm_up_times_its_steps_and_counts_their_lanes():
    """official_epoch.windowed: the official iterator cut after warm-up + N minibatches,
    the clock started at the first counted one, its events counted from the inputs'
    lengths (a shrinking lane count included)."""
    official_epoch = benchmark_module("official_epoch")

    def iterate(self, enable_neg_samples, reset_hook=None):
        yield from (([0] * n, None) for n in (4, 4, 3, 1))

    counter = {"steps": 0, "events": 0}
    cut = official_epoch.windowed(iterate, counter, 2, warmup=1)
    assert [len(x) for x, _ in cut(None, True)] == [4, 4, 3]
    assert counter["steps"] == 2 and counter["events"] == 7
    assert counter["t1"] >= counter["t0"]
    counter = {"steps": 0, "events": 0}
    assert len(list(official_epoch.windowed(iterate, counter, None)(None, True))) == 4
    assert counter["steps"] == 4 and counter["events"] == 12


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


def test_a_caption_names_the_cpu_model_where_the_report_recorded_it():
    common = benchmark_module("common")
    old = {"processor": "x86_64", "cpu_count": 2}
    assert common.host(old) == "x86_64"  # reports from before the model was recorded
    assert common.host({**old, "cpu": "Intel(R) Xeon(R)"}) == "Intel(R) Xeon(R) (x86_64)"
    assert common.machine_info()["cpu"]


def test_the_figure_draws_a_setting_measured_on_two_hosts_as_two_lines():
    from bench.report import plots

    old = report("2026-12-03", [("ce", 64, 400.0, 100.0)])["rows"][0]
    new = {**old, "host": "Xeon", "bare": {"events_per_s": 500.0}}
    rows = plots.throughput_rows([{"dataset": "d", "rows": [old, new]}])
    assert list(rows["host"]) == ["", "Xeon"] and rows.groupby(["layers", "host"]).ngroups == 2


def test_host_drift_summary_spreads_and_rank_correlation():
    host_drift = benchmark_module("host_drift")
    rows = [
        {"step_ms": 2.0, "probe_ms": 1.0},
        {"step_ms": 3.0, "probe_ms": 1.5},
        {"step_ms": 4.0, "probe_ms": 8.0},  # a burst: one rank, not a lever
        {"step_ms": 1.0, "probe_ms": 0.5},
    ]
    s = host_drift.summary(rows)
    assert s["windows"] == 4
    assert s["step_ms_range"] == [1.0, 4.0] and s["step_slowest_over_fastest"] == 4.0
    assert s["probe_slowest_over_fastest"] == 16.0
    assert s["rank_correlation_step_probe"] == pytest.approx(1.0)
    rows[0]["probe_ms"], rows[1]["probe_ms"] = 1.5, 1.0  # two middle ranks swapped
    # ranks (1, 2, 3, 0) against (2, 1, 3, 0), both of mean 1.5: co-deviation 4, deviation 5
    assert host_drift.summary(rows)["rank_correlation_step_probe"] == pytest.approx(0.8)


def test_sliced_pair_counts_only_the_turns_inside_a_window():
    sliced_pair = benchmark_module("sliced_pair")
    turns = [(0.0, 2.0), (4.0, 6.0), (8.0, 10.0)]
    assert sliced_pair.running_seconds(turns, (1.0, 9.0)) == 1.0 + 2.0 + 1.0
    assert sliced_pair.running_seconds(turns, (2.5, 3.5)) == 0.0


def test_sliced_pair_runs_two_processes_in_alternating_turns_until_both_exit():
    """The controller stops one process while the other runs: the turns never overlap, the
    first goes to the side named, they alternate while both live, and a side left alone
    runs on to its end."""
    sliced_pair = benchmark_module("sliced_pair")
    import subprocess

    def child(cpu_s: float) -> subprocess.Popen:  # spins until it has used `cpu_s` of CPU
        code = f"import time\nwhile time.process_time() < {cpu_s}: pass\n"
        return subprocess.Popen([sys.executable, "-c", code])

    procs = {"a": child(0.15), "b": child(0.4)}
    turns = sliced_pair.take_turns(procs, "b", slice_s=0.05)
    assert all(p.returncode == 0 for p in procs.values())
    spans = sorted((start, end, side) for side, ts in turns.items() for start, end in ts)
    assert spans[0][2] == "b"
    assert all(end <= nxt for (_, end, _), (nxt, _, _) in itertools.pairwise(spans))
    last_a = max(i for i, s in enumerate(spans) if s[2] == "a")
    assert [s[2] for s in spans[: last_a + 1]] == ["b", "a"] * ((last_a + 1) // 2)
    assert {s[2] for s in spans[last_a + 1 :]} == {"b"}
    # a side's CPU time only grows in its turns: b ran at least its 0.4 s of CPU
    assert sum(end - start for start, end in turns["b"]) >= 0.4


def test_allocator_modes_summarises_each_mode_and_the_worker_keeps_freed_memory_by_default():
    allocator_modes = benchmark_module("allocator_modes")
    runs = [
        {"mode": "glibc", "events_per_s": 14.0, "minflt": 1_390_000, "stime": 5.0},
        {"mode": "kept", "events_per_s": 17.0, "minflt": 85_000, "stime": 1.0},
        {"mode": "glibc", "events_per_s": 17.0, "minflt": 105_000, "stime": 1.2},
        {"mode": "kept", "events_per_s": 18.0, "minflt": 85_500, "stime": 0.8},
        {"mode": "glibc", "events_per_s": 16.0, "minflt": 105_300, "stime": 1.1},
    ]
    s = allocator_modes.summary(runs)
    assert s["glibc"] == {
        "events_per_s_range": [14.0, 17.0],
        "minflt_range": [105_000, 1_390_000],
        "stime_median": 1.2,
    }
    assert s["kept"]["minflt_range"] == [85_000, 85_500] and s["kept"]["stime_median"] == 0.9
    args = SimpleNamespace(subset_file="s.npz", n_sample=2048)
    cmd, _ = throughput.ours_command(args, [{"device": "cpu"}], "bare")
    assert cmd[cmd.index("--allocator") + 1] == "kept"  # as bench.run runs every job
    cmd, _ = throughput.ours_command(args, [{"device": "cpu"}], "bare", allocator="glibc")
    assert cmd[cmd.index("--allocator") + 1] == "glibc"
