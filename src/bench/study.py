"""Optuna on both sides of a study: storages, search spaces, and the job's trial hooks.

The sweeper (hydra_plugins.bench_optuna_sweeper) asks trials and launches jobs; each job
finds its trial by number in the shared storage, reports the validation metric after
every epoch (so pruners can stop it) and stores every metric and timing as user
attributes, which optuna-dashboard shows. This works from any process or machine that
reaches the storage, so Hydra launchers (local processes, SLURM) need no special path.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from bench.errors import BenchError

JOURNAL_SUFFIXES = (".journal", ".log")
# User attribute of a trial the sweeper enqueued with the configured values (never pruned).
ENQUEUED = "enqueued"
# Study user attribute: the params choice (default | official) the study started with.
PARAMS_ATTR = "params"


def make_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 0,
) -> optuna.storages.BaseStorage:
    """An RDB URL (sqlite:///..., postgresql://...) or a journal file path.

    With a heartbeat (RDB storages only), a trial whose worker died is failed after
    `grace_period` seconds and re-queued up to `max_retry` times.
    """
    if not url:
        raise BenchError("hydra.sweeper.storage: empty; expected an RDB URL or a journal file path")
    if url.endswith(JOURNAL_SUFFIXES) and "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if heartbeat_interval:
        retry = (
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
            if max_retry > 0
            else None
        )
        kwargs = dict(
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=retry,
        )
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # sqlalchemy/driver errors: bad URL, server down, schema race
            if "UniqueViolation" in str(e) or "already exists" in str(e):
                # Workers creating a fresh schema at the same moment: the other one won.
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BenchError(f"hydra.sweeper.storage: cannot open '{url}' ({first})") from None
    raise BenchError(
        f"hydra.sweeper.storage: cannot create the schema in '{url}' (concurrent creation kept failing)"
    )


def make_pruner(
    name: str, startup_trials: int = 3, warmup_epochs: int = 0
) -> optuna.pruners.BasePruner:
    """The pruner is not kept in the storage: sweeper and jobs both build it from config."""
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise BenchError(f"hydra.sweeper.pruner: unknown '{name}'; expected median, hyperband or none")


def suggest(trial: optuna.Trial, name: str, spec: dict):
    """One hyperparameter from a search-space entry (the official paramspace fields:
    type int/float/categorical, low/high, step, log, choices)."""
    kind = spec.get("type")
    if kind == "int":
        value = trial.suggest_int(
            name,
            int(spec["low"]),
            int(spec["high"]),
            step=int(spec.get("step", 1)),
            log=bool(spec.get("log", False)),
        )
    elif kind == "float":
        step = spec.get("step")
        value = trial.suggest_float(
            name,
            float(spec["low"]),
            float(spec["high"]),
            step=float(step) if step else None,
            log=bool(spec.get("log", False)),
        )
    elif kind == "categorical":
        value = trial.suggest_categorical(name, list(spec["choices"]))
    else:
        raise BenchError(
            f"hparams_search.params.{name}.type: got {kind!r}; expected int, float or categorical"
        )
    return value


def param_override(name: str, spec: dict, value) -> str:
    """`name=value` for a job; `as_list` in the spec wraps the value, as `layers` needs."""
    return f"{name}={override_value([value] if spec.get('as_list') else value)}"


def override_value(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def open_trial(
    name: str, storage: str, number: int, pruner: optuna.pruners.BasePruner
) -> optuna.trial.Trial:
    """The running trial `number` of study `name`, as seen from a job."""
    from bench.optuna_adapter import trial_by_number

    storage_ = make_storage(storage)
    study = optuna.load_study(study_name=name, storage=storage_, pruner=pruner)
    return trial_by_number(study, storage_, number)


class EpochReporter:
    """After each epoch: the validation metric -> trial.report, then prune if the pruner says so.

    An enqueued trial (the configured, e.g. official, parameters) always trains to the end:
    slow starters are what the median pruner cuts, and the study's best must never fall
    below the published parameters because they were judged after one epoch."""

    def __init__(self, trial: optuna.trial.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.prunable = ENQUEUED not in trial.user_attrs

    def __call__(self, stats, result) -> None:
        """`result`: the EvalResult of this epoch on the validation split."""
        value = result.metrics[self.metric]
        self.trial.report(value, stats.epoch)
        self.trial.set_user_attr(
            f"epoch{stats.epoch + 1}",
            {self.metric: value, "seconds": stats.seconds, "events_per_s": stats.events_per_s},
        )
        if self.prunable and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {stats.epoch + 1}: {self.metric}={value:.4f}"
            )


def record_to_trial(trial: optuna.trial.Trial, record, record_path: str) -> None:
    """Every metric and timing of a RunRecord as user attributes (what optuna-dashboard
    displays); `record_path` relative to the project."""
    for key, value in record.metrics.items():
        trial.set_user_attr(key, value)
    epochs = record.epochs
    trial.set_user_attr("epoch_seconds", [e["seconds"] for e in epochs])
    trial.set_user_attr(
        "events_per_s", sum(e.get("events_per_s", 0.0) for e in epochs) / max(1, len(epochs))
    )
    trial.set_user_attr("eval_seconds", record.timings["eval_s"])
    trial.set_user_attr("split", record.dataset["split"])
    trial.set_user_attr("dataset", record.dataset["dataset"])
    trial.set_user_attr("objective_metric", record.eval["primary_metric"])
    trial.set_user_attr("record", record_path)
