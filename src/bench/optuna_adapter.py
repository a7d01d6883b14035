"""The few things we need from Optuna that its public API does not offer, in one place.

- A job reports to a trial that another process (the sweeper) asked for: Optuna has no
  public "trial by number" for a study loaded elsewhere, so the trial is rebuilt from the
  storage's public id look-ups and `optuna.trial.Trial(study, trial_id)`.
- The sweeper launches trials through Hydra, not `Study.optimize`, yet wants Optuna's
  heartbeat (a dead worker's trial is failed and re-queued): the heartbeat thread lives in
  the private `optuna.storages._heartbeat`.
- Asking for a trial outside `Study.optimize` on a storage with a heartbeat warns that the
  heartbeat is meant for `optimize`; ours is started by `heartbeats`, so `ask` asks
  without that warning. Reading a retried trial's origin is marked experimental (since
  2.8): `retried_number` reads it without the warning.
- The heartbeat's retry callback and interval (since 2.8) and `Study.set_metric_names`
  (since 3.2) are marked experimental; the harness uses them on purpose, so
  `experimental_features` keeps the three warnings out of every study's output.
- A queued trial's fixed value between the steps of its search grid (the official
  `layers=100` on 64..512 step 32) is run as it is, and Optuna warns that it is "out of
  range", which it is not (the sweeper checks the range before queueing, and says once
  which values are off the grid): `off_grid_values_run_as_they_are` keeps that warning out.
- A trial queued with `enqueue_trial` and not yet run keeps its values in a system
  attribute until it is asked for (`queued_params`).
- Migrating committed storages rewrites a finished trial's user attribute, which Optuna
  refuses: the row of its RDB schema is written directly.

tests/test_optuna_adapter.py pins each behaviour, so an Optuna upgrade that changes one
fails there, not in a study.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread


def trial_id(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def trial_by_number(study: optuna.Study, storage, number: int) -> optuna.trial.Trial:
    """Trial `number` of `study` (loaded on `storage`), to report to and prune from."""
    return optuna.trial.Trial(study, trial_id(storage, study.study_name, number))


def queued_params(trial: optuna.trial.FrozenTrial) -> dict:
    """The values a trial runs with: its params once running, the values it was enqueued
    with while it waits (Optuna keeps them in the system attribute "fixed_params")."""
    return trial.params or dict(trial.system_attrs.get("fixed_params", {}))


@contextmanager
def heartbeats(
    storage: optuna.storages.BaseStorage, study_name: str, numbers: list[int]
) -> Iterator[None]:
    """Keep the heartbeat of these running trials beating while the block runs (RDB
    storages with a heartbeat interval; a no-op elsewhere)."""
    threads = [get_heartbeat_thread(trial_id(storage, study_name, n), storage) for n in numbers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for t in threads:
            t.join()


def set_finished_trial_attr(
    storage: optuna.storages.RDBStorage, trial_id_: int, key: str, value
) -> None:
    """Rewrite an existing user attribute of a finished trial (table trial_user_attributes,
    JSON values), which `set_trial_user_attr` refuses."""
    from sqlalchemy import text

    with storage.engine.begin() as conn:
        updated = conn.execute(
            text(
                "UPDATE trial_user_attributes SET value_json = :v WHERE trial_id = :t AND key = :k"
            ),
            {"v": json.dumps(value), "t": trial_id_, "k": key},
        ).rowcount
    if updated != 1:
        raise RuntimeError(f"trial {trial_id_}: user attribute {key!r} not found to rewrite")


def ask(study: optuna.Study) -> optuna.trial.Trial:
    """`study.ask()`, whose heartbeat warning does not apply (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


@contextmanager
def experimental_features() -> Iterator[None]:
    """Optuna's experimental features that the harness uses on purpose, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@contextmanager
def off_grid_values_run_as_they_are() -> Iterator[None]:
    """A queued in-range value between the grid's steps, without Optuna's range warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Fixed parameter .* is out of range")
        yield


def retried_number(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the trial this one retries (after a dead worker), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
