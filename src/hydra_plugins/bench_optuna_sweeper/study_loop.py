"""The study loop of the bench_optuna sweeper: ask trials until the study holds its budget
of finished trials, launch one job per trial through Hydra's launcher (with Optuna's
heartbeat, so that a dead worker's trial is failed and re-queued), tell the results. Any
number of workers run the same loop on one storage; trial numbers decide the budget."""

import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
from hydra.core.utils import JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from bench import interrupts
from bench.errors import BenchError, TrainingInterrupted
from bench.optuna_adapter import (
    ask,
    experimental_features,
    heartbeats,
    queued_params,
    retried_number,
)
from bench.paths import portable_storage, portable_text
from bench.study import (
    ENQUEUED,
    FINISHED,
    PARAMS_ATTR,
    PRUNERS_ATTR,
    make_pruner,
    make_storage,
    param_override,
    suggest,
)

log = logging.getLogger(__name__)
# We run the heartbeat thread around each launched batch ourselves, as Study.optimize does.
warnings.filterwarnings(
    "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# A trial stopped by SIGTERM/Ctrl+C: failed with this reason, its parameters queued again
# (the new trial's RETRY_OF names it); it does not count against max_failures.
INTERRUPTED = "interrupted"
RETRY_OF = "retry_of"
# Only running trials are someone else's: a waiting one (enqueued, or a dead worker's
# trial re-queued) is handed out by the next `study.ask()`, whoever calls it.
ACTIVE = (TrialState.RUNNING,)


def count(study: optuna.Study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def search_space(cfg: DictConfig) -> dict:
    """The sweeper's `params`, less those left out by `search`."""
    params = OmegaConf.to_container(cfg.params)
    unknown = [n for n in cfg.search if n not in params]
    if unknown:
        raise BenchError(
            f"hydra.sweeper.search: {unknown} not in the search space {sorted(params)}"
        )
    return {n: spec for n, spec in params.items() if not cfg.search or n in cfg.search}


def study_ref(cfg: DictConfig) -> list[str]:
    """Quoted, so that names like `nan` or `1e3` stay strings in the job's config."""
    name = cfg.study_name.replace("'", "\\'")
    storage = cfg.storage.replace("'", "\\'")
    return [f"study.name='{name}'", f"study.storage='{storage}'"]


class StudyLoop:
    """One worker's share of a study: `prepare` (once), then `run` until the budget."""

    def __init__(self, cfg: DictConfig, config: DictConfig, launcher):
        self.cfg, self.config, self.launcher = cfg, config, launcher
        self.stopped = False  # ended by the stop file, not at the budget
        self.interrupted: int | None = None  # SIGTERM/Ctrl+C: the trial re-queued (-1: none)
        c = cfg
        self.storage = make_storage(c.storage, c.heartbeat_interval, c.grace_period, c.max_retry)
        self.study = optuna.create_study(
            study_name=c.study_name,
            storage=self.storage,
            sampler=self._sampler(),
            pruner=make_pruner(
                c.pruner,
                c.pruner_startup_trials,
                c.pruner_warmup_epochs,
                c.pruner_min_epochs,
                c.pruner_reduction,
                config.get("n_epochs"),
            ),
            direction=c.direction,
            load_if_exists=True,
        )

    def prepare(self, fixed: list[str]) -> None:
        study = self.study
        self._check_params_source(study)
        study.set_user_attr("search_space", search_space(self.cfg))
        # The budget: as set, else the largest target any run asked for (a run stopping
        # early at a smaller `n_trials`, to retrain now say, does not shrink it).
        target = self.cfg.get("budget")
        if target is None:
            target = max(int(self.cfg.n_trials), int(study.user_attrs.get("n_trials_target", 0)))
        study.set_user_attr("n_trials_target", int(target))
        self._check_same_evaluation(study, fixed)
        study.set_user_attr("overrides", [portable_text(o) for o in fixed])
        # optuna-dashboard names the objective by this, not "Objective 0".
        with experimental_features():
            study.set_metric_names([f"validation {self.config.eval.primary_metric}"])
        if self.cfg.enqueue_config and not self.cfg.final_now:
            self._enqueue_config(study)
        if not self.cfg.final_now:
            self._note_pruner(study)

    def run(self, fixed: list[str]) -> None:
        study = self.study
        while True:
            self._fail_stale(study)
            failed = self._failures(study)
            if len(failed) >= self.cfg.max_failures:
                raise BenchError(
                    f"study {self.cfg.study_name}: {len(failed)} failed trials "
                    "(hydra.sweeper.max_failures="
                    f"{self.cfg.max_failures}); last: "
                    f"{failed[-1].user_attrs.get('fail_reason', 'worker died')}"
                )
            finished = count(study, FINISHED)
            if interrupts.requested() and self.interrupted is None:
                self.interrupted = -1  # between trials: none was in flight
            if self.interrupted is not None:
                break
            if finished >= self.cfg.n_trials:
                break
            stop = self.cfg.get("stop_file")
            if stop and Path(stop).exists():
                log.info(
                    "stop file %s: no new trial (%d of %d finished); the same command "
                    "continues the study",
                    stop,
                    finished,
                    self.cfg.n_trials,
                )
                self.stopped = True
                break
            active = count(study, ACTIVE)
            if finished + active >= self.cfg.n_trials:
                # Others are running the rest (or a dead worker's trial awaits its heartbeat
                # timeout).
                time.sleep(max(1, self.cfg.heartbeat_interval))
                continue
            batch = []
            for _ in range(min(self.cfg.n_jobs, self.cfg.n_trials - finished - active)):
                trial = ask(study)
                study.sampler = self._sampler(trial.number)
                if not self._in_budget(study, trial):
                    trial.set_user_attr("fail_reason", "surplus: target reached by other workers")
                    study.tell(trial, state=TrialState.FAIL)
                    break
                batch.append(trial)
            if batch:
                self._run_batch(study, batch, fixed)

    @staticmethod
    def _failures(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """Failed trials that count against max_failures: not a surplus trial, and not a
        trial whose worker died (a stop, a preemption) and whose parameters were re-queued;
        a trial that kills its worker every time is retried max_retry times, then counts."""
        trials = study.get_trials(deepcopy=False)
        requeued = {retried_number(t) for t in trials} - {None}
        return [
            t
            for t in trials
            if t.state == TrialState.FAIL
            and t.number not in requeued
            and not t.user_attrs.get("fail_reason", "").startswith(("surplus", INTERRUPTED))
        ]

    def _sampler(self, trial_number: int | None = None) -> optuna.samplers.BaseSampler:
        """Seeded per trial number: workers sharing a study never draw the same values.
        The seed is mixed with the number (consecutive integer seeds gave the first two
        trials of a study nearly the same values)."""
        c = self.cfg
        seed = None
        if c.seed is not None:
            seed = int(
                np.random.SeedSequence([int(c.seed), trial_number or 0]).generate_state(1)[0]
            )
        if c.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=c.n_startup_trials)
        if c.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        raise BenchError(f"hydra.sweeper.sampler: unknown '{c.sampler}'; expected tpe or random")

    def _in_budget(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Trial numbers are assigned atomically: a trial is surplus when enough earlier
        ones (finished or still going) already fill the target."""
        earlier = [
            t
            for t in study.get_trials(deepcopy=False, states=FINISHED + ACTIVE)
            if t.number < trial.number
        ]
        return len(earlier) < self.cfg.n_trials

    def _fail_stale(self, study: optuna.Study) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)

    def _check_params_source(self, study: optuna.Study) -> None:
        """A study continues with the parameters it started from (params=default|official):
        they decide the enqueued first trial and every value not searched."""
        params = str(self.config.get("params", "default"))
        started = study.user_attrs.get(PARAMS_ATTR)
        if started is None:
            study.set_user_attr(PARAMS_ATTR, params)
        elif started != params:
            raise BenchError(
                f"params: study {self.cfg.study_name} was started with params={started}; "
                f"continue it with params={started} (or give a new hydra.sweeper.study_name)"
            )

    def _check_same_evaluation(self, study: optuna.Study, fixed: list[str]) -> None:
        """Trials of one study must share their objective: a run that would score them
        differently (another eval.* or split option) is refused."""

        def scoring(overrides):
            return sorted(o for o in overrides if o.startswith(("eval.", "split=", "dataset")))

        before = study.user_attrs.get("overrides")
        if before is not None and scoring(before) != scoring(portable_text(o) for o in fixed):
            raise BenchError(
                f"study {self.cfg.study_name} was run with "
                f"{scoring(before) or 'no eval/dataset options'}; "
                f"this run has {scoring(fixed) or 'none'}: its trials would be scored differently "
                "(continue it with the same options, or give a new hydra.sweeper.study_name)"
            )

    def _enqueue_config(self, study: optuna.Study) -> None:
        """The configured values are where a study should start: with a small budget the
        tuned result is then never below the published parameters on validation."""
        values, outside = configured_trial(search_space(self.cfg), self.config)
        if values is None:
            log.warning(
                "config value %s is outside the search space's range or choices: not enqueued",
                outside,
            )
            return
        done = [
            queued_params(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL
        ]
        if any(all(p.get(k) == v for k, v in values.items()) for p in done):
            return
        study.enqueue_trial(values, user_attrs={ENQUEUED: "the configured values"})
        space = search_space(self.cfg)
        off = [f"{k}={v}" for k, v in values.items() if off_grid(v, space[k])]
        log.info(
            "enqueued the configured values as a trial: %s%s",
            values,
            f" ({', '.join(off)} between the search grid's steps: run as configured)"
            if off
            else "",
        )

    def _job_overrides(self, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        params = search_space(self.cfg)
        values = [
            param_override(name, spec, suggest(trial, name, spec)) for name, spec in params.items()
        ]
        return [
            *fixed,
            *values,
            "split=tune",
            *study_ref(self.cfg),
            f"study.trial={trial.number}",
            f"study.pruner={self.cfg.pruner}",
            f"study.pruner_startup_trials={self.cfg.pruner_startup_trials}",
            f"study.pruner_warmup_epochs={self.cfg.pruner_warmup_epochs}",
            f"study.pruner_min_epochs={self.cfg.pruner_min_epochs}",
            f"study.pruner_reduction={self.cfg.pruner_reduction}",
            f"hydra.sweep.subdir=trial_{trial.number}",
        ]

    def pruner_label(self) -> str:
        """The pruner a trial ran under (pruners are not stored): kept on each trial."""
        c = self.cfg
        if c.pruner == "median":
            return (
                f"median (warm-up {c.pruner_warmup_epochs} epochs, "
                f"{c.pruner_startup_trials} startup trials)"
            )
        if c.pruner in ("successive_halving", "hyperband"):
            return (
                f"{c.pruner} (first judged after epoch {c.pruner_min_epochs}, "
                f"reduction {c.pruner_reduction})"
            )
        return str(c.pruner)

    def _note_pruner(self, study: optuna.Study) -> None:
        """Pruners are not stored: the study keeps [first trial number, pruner] each time
        a run starts with another one, so that a report can say which trials ran under it.
        The first pruner is the study's from trial 0 (the enqueued first trial exists, still
        waiting, before this is noted)."""
        history = study.user_attrs.get(PRUNERS_ATTR, [])
        label = self.pruner_label()
        if not history or history[-1][1] != label:
            start = len(study.trials) if history else 0
            study.set_user_attr(PRUNERS_ATTR, [*history, [start, label]])

    def _run_batch(self, study: optuna.Study, batch: list[optuna.Trial], fixed: list[str]) -> None:
        overrides = [self._job_overrides(t, fixed) for t in batch]
        with heartbeats(self.storage, self.cfg.study_name, [t.number for t in batch]):
            returns = self.launcher.launch(overrides, initial_job_idx=batch[0].number)
        for trial, ret in zip(batch, returns):
            self._tell(study, trial, ret)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret) -> None:
        if ret.status == JobStatus.COMPLETED:
            value = ret.return_value
            if isinstance(value, float) and math.isfinite(value):
                study.tell(trial, value)
                return
            trial.set_user_attr("fail_reason", f"objective returned {value!r}")
            study.tell(trial, state=TrialState.FAIL)
            return
        err = ret._return_value
        if isinstance(err, TrainingInterrupted):
            self._requeue(study, trial, str(err))
            return
        if isinstance(err, optuna.TrialPruned):
            trial.set_user_attr("prune_reason", str(err))
            study.tell(trial, state=TrialState.PRUNED)
            return
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        log.warning("trial %d failed: %s", trial.number, reason)
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=TrialState.FAIL)

    def _requeue(self, study: optuna.Study, trial: optuna.Trial, why: str) -> None:
        """A trial stopped by SIGTERM/Ctrl+C is failed and its parameters queued again, as
        Optuna's heartbeat does for a dead worker's trial: the next run retries it, and it
        does not count against max_failures."""
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        keep = {k: v for k, v in frozen.user_attrs.items() if k == ENQUEUED}
        # enqueue_trial, not Optuna's retry callback: an enqueued configured value between a
        # search space's steps (layers=[100]) is not "contained" in its distribution.
        study.enqueue_trial(frozen.params, user_attrs={**keep, RETRY_OF: trial.number})
        trial.set_user_attr("fail_reason", f"{INTERRUPTED}: {why}")
        study.tell(trial, state=TrialState.FAIL)
        self.interrupted = trial.number

    def summary(self) -> dict:
        counts = {s.name.lower(): count(self.study, (s,)) for s in TrialState}
        out = {
            "study": self.cfg.study_name,
            "storage": portable_storage(self.cfg.storage),
            "trials": counts,
        }
        if counts["complete"]:
            best = self.study.best_trial
            out["best"] = {"number": best.number, "value": best.value, "params": best.params}
        return out


def configured_trial(space: dict, config) -> tuple[dict | None, str | None]:
    """The configured values of the searched parameters, as the trial to enqueue first; or
    (None, "name=value") for the first value outside the space's range or choices (a space
    narrowed on purpose). A value inside the range but between its steps is kept: Optuna
    trains an enqueued value as given, and the official RSC15 paramfiles' layers=[100] lie
    between the official search space's steps of 32."""
    values = {}
    for name, spec in space.items():
        value = OmegaConf.select(config, name)
        if OmegaConf.is_list(value):
            if len(value) != 1 or not spec.get("as_list"):
                return None, f"{name}={list(value)!r}"
            value = value[0]
        if not in_space(value, spec):
            return None, f"{name}={value!r}"
        values[name] = value
    return values, None


def in_space(value, spec: dict) -> bool:
    """Whether a value lies in a search space's range (or among its choices)."""
    if spec.get("type") == "categorical":
        return value in list(spec["choices"])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return float(spec["low"]) - 1e-9 <= value <= float(spec["high"]) + 1e-9


def off_grid(value, spec: dict) -> bool:
    """An in-range value that the search grid (low + k * step) never suggests."""
    step = spec.get("step")
    if not step or spec.get("type") not in ("int", "float") or spec.get("log"):
        return False
    k = (float(value) - float(spec["low"])) / float(step)
    return abs(k - round(k)) > 1e-9
