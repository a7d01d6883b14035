"""Optuna studies through `bench.run -m hparams_search=...`: local storage and the
dashboard, two workers on PostgreSQL, a worker killed mid-trial, pruning, and the
tune-then-retrain step. Each study runs one- or two-epoch trials on small data."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from bench.studies import all_studies

SMALL = [
    "dataset.params.n_train_sessions=1200",
    "dataset.params.n_test_sessions=200",
    "n_sample=64",
    "n_epochs=1",
]
SPACE = [
    "hydra.sweeper.search=[layers,learning_rate]",
    "hydra.sweeper.params.layers={type:int,low:16,high:48,step:16,as_list:true}",
    "hydra.sweeper.params.learning_rate={type:float,low:0.02,high:0.2}",
]


def study_cmd(storage, name, sweep_dir, *extra):
    return [
        sys.executable,
        "-m",
        "bench.run",
        "-m",
        "hparams_search=gru4rec_ce",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.final_seeds=0",
        "hydra.sweeper.n_startup_trials=2",
        "hydra.sweeper.pruner=none",
        "save_model=false",
        *extra,
    ]


def run(cmd, cwd, timeout=600):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.real_data
def test_small_real_study_and_dashboard(shared_data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweeps' / 'rsc.db'}"
    run(
        study_cmd(
            storage,
            "rsc_ce",
            tmp_path / "sw",
            "dataset=rsc15_100k",
            f"data_dir={shared_data}",
            "hydra.sweeper.n_trials=3",
            "n_epochs=1",
            "batch_size=32",
            "n_sample=256",
            *SPACE,
        ),
        cwd=tmp_path,
    )
    study = optuna.load_study(study_name="rsc_ce", storage=storage)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3
    for t in done:  # every metric at every cutoff, timings, tuned on the tuning split
        assert {"recall@20", "mrr@20", "hr@20", "ndcg@20", "epoch_seconds", "events_per_s"} <= set(
            t.user_attrs
        )
        assert t.user_attrs["split"] == "tune" and t.value == t.user_attrs["mrr@20"]
        assert 0 in t.intermediate_values
    exe = Path(sys.executable).parent / "optuna-dashboard"
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), storage, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    assert r.status == 200
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, "dashboard did not answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["rsc_ce"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow  # long: CI runs it in make test-slow
def test_two_workers_share_one_postgres_study(pg_url, tmp_path):
    args = ["hydra.sweeper.n_trials=8", *SMALL, *SPACE]
    procs = [
        subprocess.Popen(
            study_cmd(pg_url, "shared", tmp_path / f"w{i}", *args),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    study = optuna.load_study(study_name="shared", storage=pg_url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 8, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials
    ]
    assert len({t.number for t in done}) == 8
    records = [t.user_attrs["record"] for t in done]
    assert len(set(records)) == 8 and all(Path(r).is_file() for r in records)  # no lost result
    # Both workers did part of the work.
    assert all(any(str(tmp_path / f"w{i}") in r for r in records) for i in range(2))


def test_killed_worker_trial_fails_and_study_completes(pg_url, tmp_path):
    args = [
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=3",
        *SMALL,
        "n_epochs=30",
        "dataset.params.n_train_sessions=4000",
        *SPACE,
    ]
    proc = subprocess.Popen(
        study_cmd(pg_url, "crash", tmp_path / "a", *args),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            s = optuna.load_study(study_name="crash", storage=pg_url)
            if s.get_trials(states=(TrialState.RUNNING,)):
                break
        except KeyError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("no trial started")
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The re-run finishes the study; shorter trials so that it ends quickly. The dead
    # worker's trial, re-queued, does not count against max_failures (a stop is no failure).
    rerun = [a if not a.startswith("n_epochs") else "n_epochs=1" for a in args]
    rerun.append("hydra.sweeper.max_failures=1")
    run(study_cmd(pg_url, "crash", tmp_path / "b", *rerun), cwd=tmp_path)
    s = optuna.load_study(study_name="crash", storage=pg_url)
    states = [t.state for t in s.trials]
    assert TrialState.RUNNING not in states
    assert states.count(TrialState.COMPLETE) == 3
    failed = s.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].number == 0
    # The dead trial's parameters were retried.
    retried = [
        t for t in s.trials if optuna.storages.RetryFailedTrialCallback.retried_trial_number(t) == 0
    ]
    assert retried and retried[0].params == failed[0].params


@pytest.mark.slow
def test_pruning_stops_a_bad_region(tmp_path):
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    space = [
        "hydra.sweeper.search=[learning_rate]",
        "hydra.sweeper.params.learning_rate.type=categorical",
        "+hydra.sweeper.params.learning_rate.choices=[0.2,0.000001]",
    ]
    run(
        study_cmd(
            storage,
            "prune",
            tmp_path / "sw",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.sampler=random",
            "hydra.sweeper.seed=2",
            "hydra.sweeper.pruner=median",
            "hydra.sweeper.pruner_startup_trials=2",
            *SMALL,
            "n_epochs=3",
            *space,
        ),
        cwd=tmp_path,
    )
    s = optuna.load_study(study_name="prune", storage=storage)
    pruned = s.get_trials(states=(TrialState.PRUNED,))
    assert pruned, [(t.params, t.state) for t in s.trials]
    assert all(t.params["learning_rate"] == 0.000001 for t in pruned)  # only the bad region
    assert all("pruned after epoch" in t.user_attrs["prune_reason"] for t in pruned)
    # An enqueued trial (the configured parameters) is never pruned, even in the bad region.
    s.enqueue_trial({"learning_rate": 0.000001}, user_attrs={"enqueued": "the configured values"})
    run(
        study_cmd(
            storage,
            "prune",
            tmp_path / "sw2",
            "hydra.sweeper.n_trials=9",
            "hydra.sweeper.sampler=random",
            "hydra.sweeper.pruner=median",
            "hydra.sweeper.pruner_startup_trials=2",
            *SMALL,
            "n_epochs=3",
            *space,
        ),
        cwd=tmp_path,
    )
    last = optuna.load_study(study_name="prune", storage=storage).trials[-1]
    assert last.params["learning_rate"] == 0.000001 and last.state == TrialState.COMPLETE
    assert len(last.intermediate_values) == 3


def test_successive_halving_judges_only_at_its_rungs_and_records_the_cost(tmp_path):
    """Epochs are the resource: with min 2 epochs and reduction 3 over 6 epochs a trial is
    evaluated (and can be cut) only after epochs 2 and 4, and after its last; every
    finished trial keeps its CPU seconds; the study keeps the pruner it ran under; the
    retraining keeps the per-event ranks in the storage."""
    from bench.records import RANKS_KEY, decode_ranks

    storage = f"sqlite:///{tmp_path / 'sh.db'}"
    cmd = study_cmd(
        storage,
        "sh",
        tmp_path / "sw",
        "hydra.sweeper.n_trials=7",
        *SMALL,
        *SPACE,
        "n_epochs=6",
        "hydra.sweeper.pruner=successive_halving",
        "hydra.sweeper.pruner_min_epochs=2",
        "hydra.sweeper.pruner_reduction=3",
    )
    cmd = [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=1" for c in cmd]
    run(cmd, cwd=tmp_path)
    s = optuna.load_study(study_name="sh", storage=storage)
    finished = s.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 7
    pruned = [t for t in finished if t.state == TrialState.PRUNED]
    assert pruned, [t.intermediate_values for t in finished]
    for t in finished:
        assert set(t.intermediate_values) <= {1, 3, 5}  # steps are 0-based epochs
        assert t.user_attrs["cpu_seconds"] > 0
        assert t.user_attrs["device"].startswith("cpu (")  # pruned ones too
    assert all(
        set(t.intermediate_values) == {1, 3, 5} for t in finished if t.state == TrialState.COMPLETE
    )
    assert all(max(t.intermediate_values) in (1, 3) for t in pruned)
    assert s.user_attrs["pruners"] == [
        [0, "successive_halving (first judged after epoch 2, reduction 3)"]
    ]
    final = s.user_attrs["final"]
    ranks = decode_ranks(final["records"][0][RANKS_KEY])
    assert len(ranks) == final["records"][0]["protocol"]["evaluated_events"]


def test_a_study_continued_with_other_scoring_options_is_refused(tmp_path):
    """Trials of one study share their objective: continuing it with another eval option
    (here unknown test items as misses instead of dropped) is one line, not a mixed study."""
    storage = f"sqlite:///{tmp_path / 'e.db'}"
    run(
        study_cmd(storage, "e", tmp_path / "sw", "hydra.sweeper.n_trials=1", *SMALL, *SPACE),
        cwd=tmp_path,
    )
    p = subprocess.run(
        study_cmd(
            storage,
            "e",
            tmp_path / "sw2",
            "hydra.sweeper.n_trials=2",
            *SMALL,
            *SPACE,
            "eval.unknown_test_items=miss",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode != 0
    lines = [line for line in p.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "would be scored differently" in lines[0], p.stderr[-2000:]
    assert len(optuna.load_study(study_name="e", storage=storage).trials) == 1


def test_a_study_past_the_budget_is_retrained_as_it_stood_at_the_budget():
    from bench.study import best_within_budget, first_finished

    study = optuna.create_study(direction="maximize")
    for value in [0.1, None, 0.3, "pruned", 0.2, 0.9]:  # None: a failed trial, not counted
        trial = study.ask()
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        elif value == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    assert [t.number for t in first_finished(study, 3)] == [0, 2, 3]
    assert best_within_budget(study, 3).number == 2  # not trial 5 (0.9), past the budget
    assert best_within_budget(study, 10).number == 5
    assert best_within_budget(study, 1).number == 0


def test_pruner_settings_are_checked_and_rungs_follow_them():
    from bench.errors import BenchError
    from bench.study import make_pruner, rung_epochs

    assert rung_epochs("successive_halving", 2, 3, 10) == {2, 4}
    assert rung_epochs("successive_halving", 3, 2, 10) == {3, 5, 9}
    assert rung_epochs("median", 2, 3, 10) is None  # judges after any epoch
    assert rung_epochs("none", 2, 3, 10) == set()
    with pytest.raises(BenchError, match="pruner_min_epochs"):
        make_pruner("successive_halving", min_epochs=1)
    with pytest.raises(BenchError, match="unknown 'asha'"):
        make_pruner("asha")
    band = make_pruner("hyperband", min_epochs=2, reduction=3, n_epochs=10)
    assert isinstance(band, optuna.pruners.HyperbandPruner)


def test_tune_then_retrain_on_test(tmp_path):
    storage = f"sqlite:///{tmp_path / 't.db'}"
    cmd = study_cmd(
        storage,
        "final",
        tmp_path / "sw",
        "hydra.sweeper.n_trials=3",
        *SMALL,
        *SPACE,
        "eval.also_tie_modes=[standard]",
    )
    cmd = [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=2" for c in cmd]
    run(cmd, cwd=tmp_path)
    summary = json.loads((tmp_path / "sw" / "final.json").read_text())
    final = summary["final"]
    assert final["n_trials"] == 3 and final["seeds"] == [0, 1] and final["split"] == "final"
    study = optuna.load_study(study_name="final", storage=storage)
    best = study.best_trial
    assert final["best_trial"] == best.number
    records = [json.loads(Path(path).read_text()) for path in final["records"]]
    for rec in records:
        assert rec["dataset"]["split"] == "final"
        assert rec["study"]["phase"] == "final" and rec["study"]["n_trials"] == 3
        assert rec["settings"]["learning_rate"] == pytest.approx(best.params["learning_rate"])
    # The study itself keeps the records and their mean/std per tie mode (the committed
    # storage regenerates the headline table without the run directories).
    kept = study.user_attrs["final"]
    assert [r["seed"] for r in kept["records"]] == [0, 1]
    assert [r["metrics"] for r in kept["records"]] == [r["metrics"] for r in records]
    values = [r["metrics_by_tie_mode"]["standard"]["mrr@20"] for r in records]
    assert kept["metrics"]["standard"]["mrr@20"]["mean"] == pytest.approx(sum(values) / 2)
    assert kept["metrics"]["conservative"]["mrr@20"]["std"] == pytest.approx(
        abs(records[0]["metrics"]["mrr@20"] - records[1]["metrics"]["mrr@20"]) / 2**0.5
    )
    # Re-running the same command resumes: the study is at its target and both seeds of
    # its best trial are retrained already, so nothing runs again.
    mtimes = [Path(path).stat().st_mtime_ns for path in final["records"]]
    run(cmd, cwd=tmp_path)
    assert len(optuna.load_study(study_name="final", storage=storage).trials) == 3
    assert [Path(path).stat().st_mtime_ns for path in final["records"]] == mtimes
    # A seed stored without its per-event ranks (as migrated from before they were kept)
    # is retrained, the other kept: the headline's paired test needs the ranks.
    from bench.records import RANKS_KEY

    kept["records"][1][RANKS_KEY] = None
    optuna.load_study(study_name="final", storage=storage).set_user_attr("final", kept)
    run(cmd, cwd=tmp_path)
    again = optuna.load_study(study_name="final", storage=storage).user_attrs["final"]
    assert all(r[RANKS_KEY] for r in again["records"])
    now = [Path(path).stat().st_mtime_ns for path in final["records"]]
    assert now[0] == mtimes[0] and now[1] != mtimes[1]


@pytest.mark.slow
def test_final_now_retrains_the_best_so_far_and_adds_only_missing_seeds(tmp_path):
    storage = f"sqlite:///{tmp_path / 'n.db'}"

    def cmd(n_trials, seeds, *extra):
        base = study_cmd(
            storage,
            "now",
            tmp_path / "sw",
            f"hydra.sweeper.n_trials={n_trials}",
            *SMALL,
            *SPACE,
            *extra,
        )
        return [
            c if c != "hydra.sweeper.final_seeds=0" else f"hydra.sweeper.final_seeds={seeds}"
            for c in base
        ]

    with pytest.raises(AssertionError, match="no complete trial to retrain"):
        run(cmd(50, 1, "hydra.sweeper.final_now=true"), cwd=tmp_path)
    run(cmd(2, 0), cwd=tmp_path)
    run(cmd(50, 1, "hydra.sweeper.final_now=true"), cwd=tmp_path)
    study = optuna.load_study(study_name="now", storage=storage)
    assert len(study.trials) == 2  # no trial beyond the two finished ones
    # The budget stays the largest asked for (50), not the 2 of the run that stopped early.
    assert study.user_attrs["n_trials_target"] == 50
    first = study.user_attrs["final"]
    assert first["n_trials"] == 2 and first["seeds"] == [0]
    seed0 = first["records"][0]["record_path"]
    mtime = Path(seed0).stat().st_mtime_ns
    run(cmd(50, 3, "hydra.sweeper.final_now=true"), cwd=tmp_path)
    final = optuna.load_study(study_name="now", storage=storage).user_attrs["final"]
    assert final["seeds"] == [0, 1, 2]
    assert Path(seed0).stat().st_mtime_ns == mtime  # seed 0 was kept, not retrained
    assert [r["seed"] for r in final["records"]] == [0, 1, 2]
    # A budget given explicitly is the study's, even below the largest asked for.
    run(cmd(50, 3, "hydra.sweeper.final_now=true", "hydra.sweeper.budget=2"), cwd=tmp_path)
    assert optuna.load_study(study_name="now", storage=storage).user_attrs["n_trials_target"] == 2


@pytest.mark.slow
def test_a_stopped_retraining_keeps_its_finished_seeds(tmp_path):
    """Seeds are stored on the study as they finish: a worker killed during the final
    retraining loses only the seed it was running, and the same command resumes."""
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    cmd = study_cmd(storage, "kill", tmp_path / "sw", "hydra.sweeper.n_trials=1", *SMALL, *SPACE)
    run(cmd, cwd=tmp_path)
    cmd = [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=4" for c in cmd]
    cmd.append("hydra.sweeper.final_now=true")
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    final, deadline = None, time.monotonic() + 300
    while final is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        final = optuna.load_study(study_name="kill", storage=storage).user_attrs.get("final")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert final is not None and 1 <= len(final["seeds"]) < 4
    stored = optuna.load_study(study_name="kill", storage=storage).user_attrs["final"]
    done = {r["seed"]: Path(r["record_path"]).stat().st_mtime_ns for r in stored["records"]}
    run(cmd, cwd=tmp_path)
    final = optuna.load_study(study_name="kill", storage=storage).user_attrs["final"]
    assert final["seeds"] == [0, 1, 2, 3]
    assert {
        s: Path(r["record_path"]).stat().st_mtime_ns
        for s, r in zip(final["seeds"], final["records"])
        if s in done
    } == done


def test_grid_values_are_refused_in_a_study(tmp_path):
    p = subprocess.run(
        study_cmd(f"sqlite:///{tmp_path / 'g.db'}", "g", tmp_path / "sw", "seed=1,2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 0
    assert "'seed=1,2' is a sweep" in p.stderr


def test_diverging_trials_fail_with_reason_and_the_study_stops(tmp_path):
    storage = f"sqlite:///{tmp_path / 'nan.db'}"
    space = [
        "hydra.sweeper.search=[learning_rate]",
        "hydra.sweeper.params.learning_rate.type=categorical",
        "+hydra.sweeper.params.learning_rate.choices=[1e30]",
    ]
    p = subprocess.run(
        study_cmd(
            storage,
            "nan",
            tmp_path / "sw",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.max_failures=2",
            *SMALL,
            *space,
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode != 0
    assert "2 failed trials (hydra.sweeper.max_failures=2)" in p.stderr
    s = optuna.load_study(study_name="nan", storage=storage)
    failed = s.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 2
    assert all("training diverged" in t.user_attrs["fail_reason"] for t in failed)


@pytest.mark.slow  # long: CI runs it in make test-slow
def test_parallel_local_launcher_runs_trials_in_batches(tmp_path):
    storage = f"sqlite:///{tmp_path / 'j.db'}"
    run(
        study_cmd(
            storage,
            "par",
            tmp_path / "sw",
            "hydra/launcher=local_parallel",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            *SMALL,
            *SPACE,
        ),
        cwd=tmp_path,
    )
    s = optuna.load_study(study_name="par", storage=storage)
    done = s.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2
    assert all(0 in t.intermediate_values and "mrr@20" in t.user_attrs for t in done)


def test_a_stop_file_ends_the_worker_after_its_trial_in_progress(tmp_path):
    """No trial lost at a stop: with the stop file written during a trial, the worker
    finishes that trial, starts no other and does not retrain; the same command, the
    file gone, continues the study."""
    storage = f"sqlite:///{tmp_path / 'stop.db'}"
    stop = tmp_path / "stop"
    cmd = study_cmd(
        storage,
        "stop",
        tmp_path / "sw",
        "hydra.sweeper.n_trials=3",
        *SMALL,
        *SPACE,
        "n_epochs=30",
        "dataset.params.n_train_sessions=4000",
        f"hydra.sweeper.stop_file={stop}",
    )
    cmd = [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=1" for c in cmd]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not stop.exists() and time.time() < deadline:
        try:
            running = optuna.load_study(study_name="stop", storage=storage).get_trials(
                states=(TrialState.RUNNING,)
            )
            if running:
                stop.touch()
        except KeyError:
            pass
        time.sleep(0.2)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="stop", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert "final" not in study.user_attrs
    assert json.loads((tmp_path / "sw" / "final.json").read_text())["stopped_by"] == str(stop)
    stop.unlink()
    run([c if not c.startswith("n_epochs") else "n_epochs=1" for c in cmd], cwd=tmp_path)
    study = optuna.load_study(study_name="stop", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.user_attrs["final"]["seeds"] == [0]


@pytest.mark.slow  # long: CI runs it in make test-slow
def test_the_final_seeds_retrain_in_parallel_through_the_local_launcher(tmp_path):
    """What `bench.studies --workers 2` runs after its workers: the retraining alone, two
    seeds at a time, each in its own process, both stored on the study."""
    from bench.records import RANKS_KEY

    storage = f"sqlite:///{tmp_path / 'pf.db'}"
    run(
        study_cmd(storage, "pf", tmp_path / "sw", "hydra.sweeper.n_trials=1", *SMALL, *SPACE),
        cwd=tmp_path,
    )
    cmd = study_cmd(
        storage,
        "pf",
        tmp_path / "sw",
        "hydra.sweeper.n_trials=1",
        *SMALL,
        *SPACE,
        "hydra.sweeper.final_now=true",
        "hydra/launcher=local_parallel",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
    )
    p = run(
        [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=2" for c in cmd],
        cwd=tmp_path,
    )
    assert (
        "Joblib.Parallel(n_jobs=2" in p.stdout + p.stderr
        and "is launching 2 jobs" in p.stdout + p.stderr
    )
    study = optuna.load_study(study_name="pf", storage=storage)
    assert len(study.trials) == 1  # nothing but the retraining ran
    final = study.user_attrs["final"]
    assert final["seeds"] == [0, 1] and [r["seed"] for r in final["records"]] == [0, 1]
    assert all(r[RANKS_KEY] for r in final["records"])
    assert len({Path(r["record_path"]).parent for r in final["records"]}) == 2


@pytest.mark.slow  # long: CI runs it in make test-slow
def test_a_study_runs_its_trials_through_submitit(tmp_path):
    """The path a cluster user takes (hydra/launcher=submitit_slurm differs only in the
    executor): each trial a submitit job in its own process, reporting to the storage."""
    storage = f"sqlite:///{tmp_path / 'sub.db'}"
    run(
        study_cmd(
            storage,
            "sub",
            tmp_path / "sw",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.sweeper.n_trials=2",
            *SMALL,
            *SPACE,
        ),
        cwd=tmp_path,
    )
    study = optuna.load_study(study_name="sub", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["cpu_seconds"] > 0 for t in study.trials)
    # submitit kept each job's own logs: the jobs really ran through its executor
    assert len(list((tmp_path / "sw" / ".submitit").glob("*/*_log.out"))) == 2


def test_slurm_launcher_config_composes(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "hydra/launcher=slurm",
            "--cfg",
            "hydra",
            "--package",
            "hydra.launcher",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "SlurmLauncher" in p.stdout and "gpus_per_node: 1" in p.stdout


def test_baseline_study_tunes_and_retrains_through_the_same_sweeper(tmp_path):
    storage = f"sqlite:///{tmp_path / 'b.db'}"
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "-m",
        "hparams_search=sr",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=sr_small",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_startup_trials=2",
        *SMALL[:2],
    ]
    run(cmd, cwd=tmp_path)
    study = optuna.load_study(study_name="sr_small", storage=storage)
    done = study.get_trials(states=[TrialState.COMPLETE])
    assert len(done) == 4
    assert all(set(t.params) == {"baseline.params.steps", "baseline.params.pruning"} for t in done)
    # The configured values (conf/baseline/sr.yaml) are the first trial, drawn from no sampler.
    assert done[0].params == {"baseline.params.steps": 10, "baseline.params.pruning": 20}
    assert done[0].user_attrs["enqueued"] == "the configured values"
    assert all(t.user_attrs["split"] == "tune" and "recall@20" in t.user_attrs for t in done)
    final = json.loads((tmp_path / "sw" / "final.json").read_text())["final"]
    rec = json.loads(Path(final["records"][0]).read_text())
    assert rec["method"] == "sr" and rec["dataset"]["split"] == "final"
    best = study.best_trial.params
    assert rec["settings"]["steps"] == best["baseline.params.steps"]
    assert rec["settings"]["pruning"] == best["baseline.params.pruning"]


@pytest.mark.slow  # long: CI runs it in make test-slow
def test_an_enqueued_trial_is_run_even_when_it_fills_the_budget(tmp_path):
    """A waiting trial is nobody's until asked: with a budget of one, the enqueued
    configured values are that one trial (the sweeper once waited on it forever)."""
    storage = f"sqlite:///{tmp_path / 'q.db'}"
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "-m",
        "hparams_search=sr",
        "baseline.params.steps=12",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=q",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.final_seeds=0",
        *SMALL[:2],
    ]
    run(cmd, cwd=tmp_path, timeout=240)
    (trial,) = optuna.load_study(study_name="q", storage=storage).trials
    assert trial.state == TrialState.COMPLETE
    assert trial.params == {"baseline.params.steps": 12, "baseline.params.pruning": 20}
    # Values the search space cannot draw are not enqueued (steps: 2..30).
    run(
        [*cmd[:5], "baseline.params.steps=99", *cmd[6:8], "hydra.sweeper.n_trials=2", *cmd[10:]],
        cwd=tmp_path,
        timeout=240,
    )
    second = optuna.load_study(study_name="q", storage=storage).trials[1]
    assert "enqueued" not in second.user_attrs and second.state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "space",
    sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "hparams_search").glob("*.yaml")),
)
def test_every_search_space_names_real_config_keys(space):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from bench.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("run", overrides=[f"hparams_search={space}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    if not params:  # allowed only where there is nothing to tune (POP, S-POP)
        assert cfg.baseline is not None and not cfg.baseline.params, f"{space}: empty search space"
    for key in params:
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", f"{space}: {key}"


@pytest.mark.parametrize("study", [s.name for s in all_studies()])
def test_every_headline_study_starts_from_its_configured_values(study):
    """The protocol's first trial is the configured one (official paramfile, published
    defaults): a value the sweeper would not enqueue starts the study elsewhere, as the
    yoochoose1/64 GRU4Rec and the first BPR-MF studies did (layers=[100] and n_factors=100
    between steps of 32 were skipped then)."""
    from hydra import compose, initialize_config_dir

    from bench import studies
    from bench.paths import conf_dir
    from hydra_plugins.bench_optuna_sweeper.study_loop import configured_trial, search_space

    s = next(s for s in studies.all_studies() if s.name == study)
    overrides = [
        f"hparams_search={s.search}",
        f"dataset={s.dataset}",
        *studies.EXTRA.get(s.search, []),
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("run", overrides=overrides, return_hydra_config=True)
    space = search_space(cfg.hydra.sweeper)
    values, outside = configured_trial(space, cfg)
    assert outside is None, f"{study}: {outside} is not in its search space"
    assert set(values) == set(space)


def test_a_configured_value_between_steps_is_enqueued_one_outside_the_range_is_not():
    from hydra_plugins.bench_optuna_sweeper.study_loop import configured_trial

    space = {
        "layers": {"type": "int", "low": 64, "high": 512, "step": 32, "as_list": True},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.05},
        "elu_param": {"type": "categorical", "choices": [0.5, 1, 0]},
    }
    config = OmegaConf.create({"layers": [100], "momentum": 0.3, "elu_param": 0.5})
    assert configured_trial(space, config) == (
        {"layers": 100, "momentum": 0.3, "elu_param": 0.5},
        None,
    )
    config.momentum = 0.95  # a space narrowed on purpose keeps the configured value out
    assert configured_trial(space, config) == (None, "momentum=0.95")
    config.momentum, config.elu_param = 0.3, 2
    assert configured_trial(space, config) == (None, "elu_param=2")
    config.elu_param, config.layers = 0.5, [100, 100]
    assert configured_trial(space, config) == (None, "layers=[100, 100]")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_study_and_the_same_command_retries_its_trial(sig, tmp_path):
    """SIGTERM (a scheduler, `timeout`, `kill`) or Ctrl+C during a trial: training stops
    after its batch, the trial is failed as interrupted and its parameters queued again,
    no other trial or retraining starts, and the study exits 143 with one line; the same
    command then retries those parameters first, and the interruption counts against
    nothing (max_failures=1)."""
    storage = f"sqlite:///{tmp_path / 'sig.db'}"
    cmd = study_cmd(
        storage,
        "sig",
        tmp_path / "sw",
        "hydra.sweeper.n_trials=2",
        *SMALL,
        *SPACE,
        "dataset.params.n_train_sessions=4000",
        "hydra.sweeper.max_failures=1",
    )
    cmd = [c if c != "hydra.sweeper.final_seeds=0" else "hydra.sweeper.final_seeds=1" for c in cmd]
    proc = subprocess.Popen(
        [*cmd, "n_epochs=60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("Epoch 2 -->"):
            break
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"interrupted ({signal.Signals(sig).name}): study sig, 0 of 2 trials finished; trial 0 "
        "was stopped and queued again; the same command continues it"
    )
    study = optuna.load_study(study_name="sig", storage=storage)
    first, queued = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"].startswith(
        "interrupted: training stopped by SIGTERM or Ctrl+C"
    )
    assert queued.state == TrialState.WAITING and queued.user_attrs["retry_of"] == 0
    assert "final" not in study.user_attrs
    run(cmd, cwd=tmp_path)  # n_epochs=1
    study = optuna.load_study(study_name="sig", storage=storage)
    retried = study.trials[1]
    assert retried.state == TrialState.COMPLETE and retried.params == first.params
    assert [t.state for t in study.trials[1:]] == [TrialState.COMPLETE] * 2
    assert study.user_attrs["final"]["seeds"] == [0]


def test_a_study_ends_with_its_summary_in_three_lines():
    from hydra_plugins.bench_optuna_sweeper.bench_optuna_sweeper import closing_summary

    summary = {
        "study": "s",
        "trials": {"complete": 20, "pruned": 9, "fail": 1},
        "best": {
            "number": 7,
            "value": 0.31234,
            "params": {"layers": 96, "learning_rate": 0.0712345},
        },
        "final": {
            "seeds": [0, 1],
            "metrics": {"conservative": {"mrr@20": {"mean": 0.3, "std": 0.002}}},
        },
    }
    assert closing_summary(summary, "mrr@20").splitlines() == [
        "study s: 20 complete, 9 pruned, 1 failed trials",
        "best: trial 7, validation mrr@20 0.3123; layers=96 learning_rate=0.07123",
        "final: 2 seed(s) on the test split, mrr@20 0.3000 ± 0.0020 (conservative ties)",
    ]


def composed(*overrides):
    from hydra import compose, initialize_config_dir

    import bench.run  # noqa: F401  (registers the resolvers the search files use)
    from bench.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("run", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("dataset", ["diginetica_srgnn", "yoochoose1_64"])
def test_every_shipped_search_passes_the_sweeper_options_check(dataset):
    """Each searched parameter is a setting of its job config, so no trial fails at launch."""
    from bench.paths import conf_dir
    from hydra_plugins.bench_optuna_sweeper.bench_optuna_sweeper import check_options

    searches = sorted(p.stem for p in (conf_dir() / "hparams_search").glob("*.yaml"))
    assert len(searches) >= 14
    for search in searches:
        cfg = composed(f"hparams_search={search}", f"dataset={dataset}")
        check_options(cfg.hydra.sweeper, cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["hydra.sweeper.direction=up"], "hydra.sweeper.direction: unknown 'up'; expected max"),
        (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials: got 0; expected an integer >= 1"),
        (["hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs: got 0; expected an integer >= 1"),
        (["hydra.sweeper.budget=0"], "hydra.sweeper.budget: got 0; expected an integer >= 1"),
        (["hydra.sweeper.max_failures=0"], "hydra.sweeper.max_failures: got 0; expected an"),
        (["hydra.sweeper.final_seeds=-1"], "hydra.sweeper.final_seeds: got -1; expected an"),
        (
            ["+hydra.sweeper.params.n_simz={type:int,low:1,high:9}"],
            "hydra.sweeper.params.n_simz: not a setting of the job's config",
        ),
    ],
)
def test_a_bad_sweeper_option_is_one_line_before_the_storage_opens(overrides, message):
    from bench.errors import BenchError
    from hydra_plugins.bench_optuna_sweeper.bench_optuna_sweeper import check_options

    cfg = composed("hparams_search=itemknn", *overrides)
    with pytest.raises(BenchError) as e:
        check_options(cfg.hydra.sweeper, cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
