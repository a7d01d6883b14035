"""Pins the Optuna behaviour bench.optuna_adapter relies on beyond Optuna's public API."""

import time

import optuna
import pytest
from optuna.trial import TrialState

from bench.optuna_adapter import heartbeats, trial_by_number


def storage_with_heartbeat(tmp_path, interval=1, grace=2):
    return optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=interval, grace_period=grace
    )


def test_a_job_reports_to_the_trial_the_sweeper_asked_for(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 't.db'}")
    asker = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    asked = [asker.ask() for _ in range(2)]
    job_side = optuna.load_study(study_name="s", storage=storage)
    trial = trial_by_number(job_side, storage, 1)
    trial.report(0.5, step=0)
    trial.set_user_attr("seen", True)
    frozen = asker.trials[1]
    assert frozen.number == asked[1].number == 1
    assert frozen.intermediate_values == {0: 0.5} and frozen.user_attrs == {"seen": True}
    assert asker.trials[0].intermediate_values == {}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_heartbeats_keep_a_running_trial_alive_and_a_silent_one_is_failed(tmp_path):
    storage = storage_with_heartbeat(tmp_path)
    study = optuna.create_study(study_name="h", storage=storage)
    study.ask()
    with heartbeats(storage, "h", [0]):
        time.sleep(3.5)  # past the grace period: only the heartbeat keeps it running
        optuna.storages.fail_stale_trials(study)
        assert study.trials[0].state == TrialState.RUNNING
    time.sleep(3.5)  # no heartbeat any more
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL


def test_a_waiting_enqueued_trial_shows_its_values():
    from bench.optuna_adapter import queued_params

    study = optuna.create_study()
    study.enqueue_trial({"x": 3})
    waiting = study.get_trials(deepcopy=False)[0]
    assert waiting.params == {} and queued_params(waiting) == {"x": 3}
    trial = study.ask()
    trial.suggest_int("x", 0, 10)
    study.tell(trial, 1.0)
    assert queued_params(study.get_trials(deepcopy=False)[0]) == {"x": 3}


def test_asking_and_reading_a_retry_warn_of_nothing_that_applies(tmp_path):
    """The heartbeat warning of ask() outside optimize(), and the experimental mark of the
    retry look-up, are what these two helpers keep out of a study's output."""
    import warnings

    from bench.optuna_adapter import ask, retried_number

    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'w.db'}",
        heartbeat_interval=1,
        grace_period=2,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
    )
    study = optuna.create_study(study_name="w", storage=storage)
    with pytest.warns(UserWarning, match="Heartbeat of storage"):
        study.ask()  # what Optuna says; the first trial is then left to go stale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ask(study)
    with heartbeats(storage, "w", [0]):
        time.sleep(1.5)  # trial 0 beats once, then falls silent past the grace period
    time.sleep(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fail_stale_trials is experimental too: not ours
        optuna.storages.fail_stale_trials(study)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numbers = [retried_number(t) for t in study.get_trials(deepcopy=False)]
    assert numbers[:2] == [None, None] and 0 in numbers[2:]  # the stale trial 0, re-queued


def test_the_experimental_features_used_on_purpose_warn_only_outside_the_helper(tmp_path):
    """Optuna marks the heartbeat's retry callback and interval and set_metric_names as
    experimental; once it stops, this fails and the filter can go."""
    import warnings

    from bench.optuna_adapter import experimental_features

    def use_them(name):
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / name}",
            heartbeat_interval=60,
            grace_period=120,
            heartbeat_stale_trial_callback=retry,
        )
        optuna.create_study(study_name="m", storage=storage).set_metric_names(["validation"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        use_them("loud.db")
    experimental = [
        w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)
    ]
    assert len(experimental) == 3, [str(w.message) for w in caught]
    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        with experimental_features():
            use_them("quiet.db")


def test_a_queued_value_between_the_grid_steps_runs_as_it_is_without_the_range_warning():
    """The official layers=100 on the grid 64..512 step 32: Optuna calls it out of range
    (it is not: it lies between steps) and runs it; the sweeper names it once itself."""
    import warnings

    from bench.study import suggest
    from hydra_plugins.bench_optuna_sweeper.study_loop import off_grid

    spec = {"type": "int", "low": 64, "high": 512, "step": 32}
    study = optuna.create_study()
    study.enqueue_trial({"layers": 100})
    with pytest.warns(UserWarning, match="Fixed parameter layers with value 100 is out of range"):
        assert study.ask().suggest_int("layers", 64, 512, step=32) == 100
    study.enqueue_trial({"layers": 100})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert suggest(study.ask(), "layers", spec) == 100
    assert off_grid(100, spec) and not off_grid(96, spec)
    assert not off_grid(0.05, {"type": "float", "low": 0.01, "high": 0.5, "log": True})
    assert off_grid(0.15, {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1})
