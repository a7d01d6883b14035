"""Optuna on both sides of a study: storages, search spaces, and the job's trial hooks.

The sweeper (hydra_plugins.bench_optuna_sweeper) asks trials and launches jobs; each job
finds its trial by number in the shared storage, reports the validation metric after
every epoch (so pruners can stop it) and stores every metric and timing as user
attributes, which optuna-dashboard shows. This works from any process or machine that
reaches the storage, so Hydra launchers (local processes, SLURM) need no special path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from bench.errors import BenchError, first_line
from bench.optuna_adapter import experimental_features, off_grid_values_run_as_they_are

JOURNAL_SUFFIXES = (".journal", ".log")
# User attribute of a trial the sweeper enqueued with the configured values (never pruned).
ENQUEUED = "enqueued"
# Study user attribute: the params choice (default | official) the study started with.
PARAMS_ATTR = "params"
# Trial user attribute: CPU seconds of the job (all its threads), for a study's cost.
CPU_ATTR = "cpu_seconds"
# Study user attribute: [[first trial number, pruner], ...], one entry per change.
PRUNERS_ATTR = "pruners"
# Trial user attribute: the device the job ran on, as its record names it.
DEVICE_ATTR = "device"
# `study.*` carries the sweeper's settings to each job it launches; not a user's knob.
# What a user sets instead (hydra.sweeper.*), where there is anything to set.
SWEEPER_SETTING = {
    "name": "study_name",
    "storage": "storage",
    "pruner": "pruner",
    "pruner_startup_trials": "pruner_startup_trials",
    "pruner_warmup_epochs": "pruner_warmup_epochs",
    "pruner_min_epochs": "pruner_min_epochs",
    "pruner_reduction": "pruner_reduction",
}
# The trials a budget counts: complete or pruned (failed and running ones do not).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def ran_on_gpu(device: str | None) -> bool:
    """A record's or trial's device name: "cpu (N threads)", else a GPU's name; runs from
    before the device was recorded (no name) ran on CPU."""
    return bool(device) and not str(device).startswith("cpu")


def unreadable_storage(url: str) -> str | None:
    """Why a reader (report, headline, migrate) cannot read `url` as a study storage, or
    None. Optuna opens any database by creating its tables there, so a misspelt SQLite path
    or the wrong database would become an empty storage and the reader report nothing."""
    import sqlalchemy

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return "no such file"
    try:
        engine = sqlalchemy.create_engine(url)
        try:
            tables = sqlalchemy.inspect(engine).get_table_names()
        finally:
            engine.dispose()
    except Exception as e:  # sqlalchemy/driver errors: bad URL, server down, not a database
        first = first_line(e)
        return f"cannot open ({first})"
    return None if "studies" in tables else "not a study storage (no Optuna tables in it)"


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
        with experimental_features():
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
            with experimental_features():
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # sqlalchemy/driver errors: bad URL, server down, schema race
            if "UniqueViolation" in str(e) or "already exists" in str(e):
                # Workers creating a fresh schema at the same moment: the other one won.
                time.sleep(0.5 * (attempt + 1))
                continue
            first = first_line(e)
            raise BenchError(f"hydra.sweeper.storage: cannot open '{url}' ({first})") from None
    raise BenchError(
        f"hydra.sweeper.storage: cannot create the schema in '{url}' (concurrent creation kept "
        "failing)"
    )


PRUNERS = ("median", "successive_halving", "hyperband", "none")


def make_pruner(
    name: str,
    startup_trials: int = 3,
    warmup_epochs: int = 0,
    min_epochs: int = 2,
    reduction: int = 3,
    n_epochs: int | None = None,
) -> optuna.pruners.BasePruner:
    """The pruner is not kept in the storage: sweeper and jobs both build it from config.

    Epochs are the resource; a trial reports after epoch e (1-based) at step e - 1, as the
    studies always have. `min_epochs` is when successive halving and Hyperband first judge
    a trial: 2 means after its second epoch (Optuna's min_resource 1), so a slow starter
    is never cut after one (benchmarks/pruner_replay.py measures which settings keep the
    best trials)."""
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name in ("successive_halving", "hyperband") and (min_epochs < 2 or reduction < 2):
        raise BenchError(
            f"hydra.sweeper.pruner_min_epochs/pruner_reduction: got {min_epochs}/{reduction}; "
            "expected at least 2 epochs before the first judgement and a reduction of at least 2"
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_epochs - 1, reduction_factor=reduction
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_epochs - 1,
            max_resource=max(min_epochs - 1, (n_epochs or 10) - 1),
            reduction_factor=reduction,
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise BenchError(
        f"hydra.sweeper.pruner: unknown '{name}'; expected one of {', '.join(PRUNERS)}"
    )


def rung_epochs(name: str, min_epochs: int, reduction: int, n_epochs: int) -> set[int] | None:
    """The 1-based epochs after which pruner `name` can decide anything (None: after any
    epoch). Successive halving judges a trial only at its rungs: a trial is evaluated on
    validation there and after its last epoch, nowhere else."""
    if name == "none":
        return set()
    if name != "successive_halving":
        return None
    rungs, step = set(), min_epochs - 1  # steps are 0-based epoch indices
    while step + 1 < n_epochs:
        rungs.add(step + 1)
        step *= reduction
    return rungs


def first_finished(study: optuna.Study, budget: int) -> list[optuna.trial.FrozenTrial]:
    """The first `budget` finished (complete or pruned) trials, by trial number: what a
    study had spent when it reached a common budget, whatever ran after."""
    done = study.get_trials(deepcopy=False, states=FINISHED)
    return sorted(done, key=lambda t: t.number)[:budget]


def best_within_budget(study: optuna.Study, budget: int) -> optuna.trial.FrozenTrial | None:
    """The best complete trial among the first `budget` finished ones (None if none is)."""
    from optuna.trial import TrialState

    complete = [t for t in first_finished(study, budget) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(complete, key=lambda t: (sign * t.value, -t.number))


def suggest(trial: optuna.Trial, name: str, spec: dict):
    """One hyperparameter from a search-space entry (the official paramspace fields:
    type int/float/categorical, low/high, step, log, choices)."""
    kind = spec.get("type")
    if kind not in ("int", "float", "categorical"):
        raise BenchError(
            f"hparams_search.params.{name}.type: got {kind!r}; expected int, float or categorical"
        )
    with off_grid_values_run_as_they_are():  # a queued configured value, e.g. layers=100
        if kind == "int":
            return trial.suggest_int(
                name,
                int(spec["low"]),
                int(spec["high"]),
                step=int(spec.get("step", 1)),
                log=bool(spec.get("log", False)),
            )
        if kind == "float":
            step = spec.get("step")
            return trial.suggest_float(
                name,
                float(spec["low"]),
                float(spec["high"]),
                step=float(step) if step else None,
                log=bool(spec.get("log", False)),
            )
        return trial.suggest_categorical(name, list(spec["choices"]))


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
    """After an epoch: the validation metric -> trial.report, then prune if the pruner says so.

    An enqueued trial (the configured, e.g. official, parameters) always trains to the end:
    slow starters are what pruners cut, and the study's best must never fall below the
    published parameters because they were judged early. The CPU time of the job so far is
    kept on the trial, so that a study's cost is known whether a trial ends or is pruned."""

    def __init__(
        self,
        trial: optuna.trial.Trial,
        metric: str,
        rungs: set[int] | None,
        n_epochs: int,
        cpu_start: float,
    ):
        self.trial = trial
        self.metric = metric
        self.prunable = ENQUEUED not in trial.user_attrs
        self.rungs, self.n_epochs = rungs, n_epochs
        self.cpu_start = cpu_start  # time.process_time() when the job began

    def needs_eval(self, epoch: int) -> bool:
        """Whether the validation metric after epoch `epoch` (0-based) is of any use."""
        done = epoch + 1
        return self.rungs is None or done in self.rungs or done >= self.n_epochs

    def record_cpu(self) -> None:
        self.trial.set_user_attr(CPU_ATTR, time.process_time() - self.cpu_start)

    def __call__(self, stats, result) -> None:
        """`result`: the EvalResult of this epoch on the validation split."""
        value = result.metrics[self.metric]
        self.trial.report(value, stats.epoch)
        self.trial.set_user_attr(
            f"epoch{stats.epoch + 1}",
            {self.metric: value, "seconds": stats.seconds, "events_per_s": stats.events_per_s},
        )
        self.record_cpu()
        # Never after the last epoch: a trial that ran to the end is a complete trial.
        last = stats.epoch + 1 >= self.n_epochs
        if self.prunable and not last and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {stats.epoch + 1}: {self.metric}={value:.4f}"
            )


def record_to_trial(
    trial: optuna.trial.Trial, record, record_path: str, cpu_seconds: float
) -> None:
    """Every metric and timing of a RunRecord as user attributes (what optuna-dashboard
    displays); `record_path` relative to the project."""
    trial.set_user_attr(CPU_ATTR, cpu_seconds)
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


def open_job_trial(cfg, evaluates_per_epoch: bool, cpu_start: float, device_name: str):
    """(trial, per-epoch reporter) when this job is a study's trial (`cfg.study.trial` set by
    the sweeper), else (None, None). The trial keeps the device it runs on (pruned ones too:
    a study's cost is read per device); the reporter exists where the method has epochs."""
    s = cfg.study
    if s.trial is None:
        return None, None
    n_epochs = int(cfg.n_epochs or 0)
    min_epochs, reduction = int(s.pruner_min_epochs), int(s.pruner_reduction)
    pruner = make_pruner(
        s.pruner,
        int(s.pruner_startup_trials),
        int(s.pruner_warmup_epochs),
        min_epochs,
        reduction,
        n_epochs,
    )
    trial = open_trial(s.name, s.storage, int(s.trial), pruner)
    trial.set_user_attr(DEVICE_ATTR, device_name)
    if not evaluates_per_epoch:
        return trial, None
    rungs = rung_epochs(s.pruner, min_epochs, reduction, n_epochs)
    return trial, EpochReporter(trial, cfg.eval.primary_metric, rungs, n_epochs, cpu_start)


def trial_cpu_seconds(trial) -> tuple[float, bool]:
    """The job's measured CPU seconds, or (older trials) wall time x 2 threads."""
    if CPU_ATTR in trial.user_attrs:
        return float(trial.user_attrs[CPU_ATTR]), False
    if trial.datetime_start and trial.datetime_complete:
        return 2.0 * (trial.datetime_complete - trial.datetime_start).total_seconds(), True
    return 0.0, True


@dataclass
class Cost:
    """Of the first `budget` finished trials of a study: what they cost."""

    finished: int
    pruned: int
    cpu_seconds: float
    cpu_estimated: bool  # some CPU seconds are estimated from wall time
    complete_cpu: float | None  # mean CPU seconds of a complete (unpruned) trial, on CPU
    per_trial_cpu: float | None  # mean CPU seconds of a finished trial run on CPU


def study_cost(study, budget: int) -> Cost:
    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    counted = first_finished(study, budget)
    cpu = [
        (t.state, *trial_cpu_seconds(t), not ran_on_gpu(t.user_attrs.get(DEVICE_ATTR)))
        for t in counted
    ]
    complete = [c for state, c, _, on_cpu in cpu if state == TrialState.COMPLETE and on_cpu]
    complete_any = [c for state, c, _, _ in cpu if state == TrialState.COMPLETE]
    return Cost(
        finished=len(counted),
        pruned=sum(state == TrialState.PRUNED for state, *_ in cpu),
        cpu_seconds=sum(c for _, c, _, _ in cpu),
        cpu_estimated=any(e for _, _, e, _ in cpu),
        complete_cpu=mean(complete) or mean(complete_any),
        per_trial_cpu=mean([c for _, c, _, on_cpu in cpu if on_cpu]),
    )


def study_knob_error(key: str) -> str:
    """The one line for a `study.*` override given by hand (the sweeper would overwrite it)."""
    setting = SWEEPER_SETTING.get(key.removeprefix("study."))
    instead = (
        f"set hydra.sweeper.{setting} instead (with hparams_search=...)"
        if setting
        else "nothing to set by hand"
    )
    return f"{key}: set by the study sweeper for each of its jobs, not a knob; {instead}"
