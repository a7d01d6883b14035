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
