"""`hydra/sweeper=bench_optuna`: Optuna studies from `python -m bench.run -m hparams_search=...`.

Why our own: the released hydra-optuna-sweeper pins optuna<3 (incompatible with
optuna-dashboard), hides the trial from the job (no pruning) and restarts its trial
count on resume. Here the study lives in a real storage; every worker process runs the
same command and the study stops at `n_trials` finished (complete or pruned) trials in
total, whoever ran them. Each job finds its trial by number (`study.trial=N`), reports
per-epoch validation metrics for pruning and stores all metrics as user attributes.
Worker death is caught by Optuna's heartbeat (RDB storages): the dead trial is failed
and re-queued. With `final_seeds > 0` the best parameters are then retrained on the
final split (train -> test) once per seed, and a summary is written to final.json.
The final records are also kept in the study (user attribute `final`), so the committed
storage alone regenerates the tables; seeds already retrained for the same best trial are
not run again, so an interrupted retraining resumes too.
"""

import json
import logging
import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf
from optuna.storages._heartbeat import fail_stale_trials, get_heartbeat_thread
from optuna.trial import TrialState

from bench.errors import BenchError
from bench.paths import portable_path, portable_storage, portable_text
from bench.records import RunRecord

# No `from __future__ import annotations` here: Hydra imports plugins outside
# sys.modules, where dataclasses cannot resolve string annotations.
from bench.study import ENQUEUED, make_pruner, make_storage, param_override, suggest

log = logging.getLogger(__name__)
# We run the heartbeat thread around each launched batch ourselves, as Study.optimize does.
warnings.filterwarnings(
    "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class SweepError(CompactHydraException):
    """Printed by Hydra as its message alone."""


PARAMS_ATTR = "params"  # study user attribute: the params choice the study started with
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Only running trials are someone else's: a waiting one (enqueued, or a dead worker's
# trial re-queued) is handed out by the next `study.ask()`, whoever calls it.
ACTIVE = (TrialState.RUNNING,)


@dataclass
class BenchOptunaSweeperConf:
    _target_: str = "hydra_plugins.bench_optuna_sweeper.bench_optuna_sweeper.BenchOptunaSweeper"
    study_name: str = "study"
    storage: str = "sqlite:///sweeps/study.db"
    direction: str = "maximize"
    n_trials: int = (
        20  # finished (complete or pruned) trials the study stops at, all workers together
    )
    n_jobs: int = 1  # trials launched together (use a parallel launcher, e.g. joblib)
    sampler: str = "tpe"  # tpe | random
    seed: int | None = 0
    n_startup_trials: int = 10
    pruner: str = "median"  # median | hyperband | none
    pruner_warmup_epochs: int = 0
    pruner_startup_trials: int = 3
    heartbeat_interval: int = 10  # seconds; RDB storages only
    grace_period: int = 30
    max_retry: int = 2
    max_failures: int = 20  # stop the study (with an error) after this many failed trials
    final_seeds: int = 0  # > 0: retrain the best parameters on the final split per seed
    # Retrain the best trial so far now, without running the remaining trials.
    final_now: bool = False
    # Enqueue the job config's own values of the searched parameters (e.g. the official
    # paramfile of conf/dataset_loss) as a trial, unless the study already holds them.
    enqueue_config: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    # Tune only these entries of `params` (empty: all); the others keep their config values.
    search: list[str] = field(default_factory=list)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="bench_optuna",
    node=BenchOptunaSweeperConf,
    provider="gru4rec-bench",
)


class BenchOptunaSweeper(Sweeper):
    def __init__(self, **cfg: Any):
        self.cfg = OmegaConf.create(cfg)
        self.launcher = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- study ----------------------------------------------------------------------
    def _sampler(self, trial_number: int | None = None) -> optuna.samplers.BaseSampler:
        """Seeded per trial number: workers sharing a study never draw the same values."""
        c = self.cfg
        seed = None if c.seed is None else c.seed + (trial_number or 0)
        if c.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=c.n_startup_trials)
        if c.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        raise BenchError(f"hydra.sweeper.sampler: unknown '{c.sampler}'; expected tpe or random")

    def _study(self) -> optuna.Study:
        c = self.cfg
        storage = make_storage(c.storage, c.heartbeat_interval, c.grace_period, c.max_retry)
        return optuna.create_study(
            study_name=c.study_name, storage=storage, sampler=self._sampler(), pruner=self._pruner(),
            direction=c.direction, load_if_exists=True,
        )  # fmt: skip

    def _pruner(self) -> optuna.pruners.BasePruner:
        c = self.cfg
        return make_pruner(c.pruner, c.pruner_startup_trials, c.pruner_warmup_epochs)

    @staticmethod
    def _count(study: optuna.Study, states) -> int:
        return len(study.get_trials(deepcopy=False, states=states))

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
            fail_stale_trials(study)

    # -- sweep ----------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        """The study loop, then the final retraining; a bad option or storage ends with
        its one line (Hydra prints a compact error without a stack trace)."""
        try:
            return self._sweep(arguments)
        except BenchError as e:
            raise SweepError(f"error: {e}") from None

    def _sweep(self, arguments: list[str]) -> Any:
        fixed = self._fixed_overrides(arguments)
        study = self._study()
        self._check_params_source(study)
        study.set_user_attr("search_space", self._space())
        # The budget is the largest target any run asked for: a run stopping early at a
        # smaller `n_trials` (to retrain now, say) does not shrink it.
        target = max(int(self.cfg.n_trials), int(study.user_attrs.get("n_trials_target", 0)))
        study.set_user_attr("n_trials_target", target)
        study.set_user_attr("overrides", [portable_text(o) for o in fixed])
        if self.cfg.enqueue_config and not self.cfg.final_now:
            self._enqueue_config(study)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        log.info(
            "study %s in %s: target %d finished trials",
            self.cfg.study_name,
            self.cfg.storage,
            self.cfg.n_trials,
        )
        while not self.cfg.final_now:
            self._fail_stale(study)
            failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                      if not t.user_attrs.get("fail_reason", "").startswith("surplus")]  # fmt: skip
            if len(failed) >= self.cfg.max_failures:
                raise BenchError(
                    f"study {self.cfg.study_name}: {len(failed)} failed trials (hydra.sweeper.max_failures="
                    f"{self.cfg.max_failures}); last: {failed[-1].user_attrs.get('fail_reason', 'worker died')}"
                )
            finished = self._count(study, FINISHED)
            if finished >= self.cfg.n_trials:
                break
            active = self._count(study, ACTIVE)
            if finished + active >= self.cfg.n_trials:
                # Others are running the rest (or a dead worker's trial awaits its heartbeat timeout).
                time.sleep(max(1, self.cfg.heartbeat_interval))
                continue
            batch = []
            for _ in range(min(self.cfg.n_jobs, self.cfg.n_trials - finished - active)):
                trial = study.ask()
                study.sampler = self._sampler(trial.number)
                if not self._in_budget(study, trial):
                    trial.set_user_attr("fail_reason", "surplus: target reached by other workers")
                    study.tell(trial, state=TrialState.FAIL)
                    break
                batch.append(trial)
            if batch:
                self._run_batch(study, batch, fixed)
        summary = self._summary(study)
        if self.cfg.final_now and not summary.get("best"):
            raise BenchError(
                f"hydra.sweeper.final_now: study {self.cfg.study_name} has no complete trial to retrain"
            )
        if self.cfg.final_seeds > 0:
            summary["final"] = self._final(study, fixed)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "final.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        log.info("study summary written to %s", sweep_dir / "final.json")
        return summary

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

    def _fixed_overrides(self, arguments: list[str]) -> list[str]:
        parsed = OverridesParser.create().parse_overrides(arguments)
        for o in parsed:
            if o.is_sweep_override():
                raise BenchError(
                    f"hparams_search: '{o.input_line}' is a sweep; an Optuna study takes fixed values "
                    "(run one study per value)"
                )
        return list(arguments)

    def _space(self) -> dict:
        params = OmegaConf.to_container(self.cfg.params)
        unknown = [n for n in self.cfg.search if n not in params]
        if unknown:
            raise BenchError(
                f"hydra.sweeper.search: {unknown} not in the search space {sorted(params)}"
            )
        return {
            n: spec for n, spec in params.items() if not self.cfg.search or n in self.cfg.search
        }

    def _enqueue_config(self, study: optuna.Study) -> None:
        """The configured values are where a study should start: with a small budget the
        tuned result is then never below the published parameters on validation."""
        values = {}
        for name, spec in self._space().items():
            value = OmegaConf.select(self.config, name)
            if OmegaConf.is_list(value):
                if len(value) != 1 or not spec.get("as_list"):
                    return
                value = value[0]
            if not on_grid(value, spec):
                log.info(
                    "config value %s=%r is outside the search space: not enqueued", name, value
                )
                return
            values[name] = value
        done = [t.params for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL]
        if any(all(p.get(k) == v for k, v in values.items()) for p in done):
            return
        study.enqueue_trial(values, user_attrs={ENQUEUED: "the configured values"})
        log.info("enqueued the configured values as a trial: %s", values)

    def _study_ref(self) -> list[str]:
        """Quoted, so that names like `nan` or `1e3` stay strings in the job's config."""
        name = self.cfg.study_name.replace("'", "\\'")
        storage = self.cfg.storage.replace("'", "\\'")
        return [f"study.name='{name}'", f"study.storage='{storage}'"]

    def _job_overrides(self, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        params = self._space()
        values = [
            param_override(name, spec, suggest(trial, name, spec)) for name, spec in params.items()
        ]
        return [
            *fixed, *values, "split=tune",
            *self._study_ref(), f"study.trial={trial.number}",
            f"study.pruner={self.cfg.pruner}", f"study.pruner_startup_trials={self.cfg.pruner_startup_trials}",
            f"study.pruner_warmup_epochs={self.cfg.pruner_warmup_epochs}", f"hydra.sweep.subdir=trial_{trial.number}",
        ]  # fmt: skip

    def _run_batch(self, study: optuna.Study, batch: list[optuna.Trial], fixed: list[str]) -> None:
        overrides = [self._job_overrides(t, fixed) for t in batch]
        heartbeats = [get_heartbeat_thread(t._trial_id, study._storage) for t in batch]
        for hb in heartbeats:
            hb.start()
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=batch[0].number)
        finally:
            for hb in heartbeats:
                hb.join()
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
        if isinstance(err, optuna.TrialPruned):
            trial.set_user_attr("prune_reason", str(err))
            study.tell(trial, state=TrialState.PRUNED)
            return
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        log.warning("trial %d failed: %s", trial.number, reason)
        trial.set_user_attr("fail_reason", reason)
        study.tell(trial, state=TrialState.FAIL)

    # -- results --------------------------------------------------------------------
    def _summary(self, study: optuna.Study) -> dict:
        counts = {s.name.lower(): self._count(study, (s,)) for s in TrialState}
        out = {
            "study": self.cfg.study_name,
            "storage": portable_storage(self.cfg.storage),
            "trials": counts,
        }
        if counts["complete"]:
            best = study.best_trial
            out["best"] = {"number": best.number, "value": best.value, "params": best.params}
        return out

    def _final(self, study: optuna.Study, fixed: list[str]) -> dict:
        """Retrain the best parameters on the final split, one job per seed not yet done."""
        best = study.best_trial
        params = self._space()
        values = [param_override(name, spec, best.params[name]) for name, spec in params.items()]
        n_finished = self._count(study, FINISHED)
        seeds = list(range(self.cfg.final_seeds))
        previous = study.user_attrs.get("final") or {}
        eval_now = OmegaConf.to_container(self.config.eval, resolve=True)
        kept = {}
        for raw in previous.get("records", []):
            r = RunRecord.from_dict(raw)
            if previous.get("best_trial") == best.number and r.seed in seeds and r.eval == eval_now:
                kept[r.seed] = r.to_dict() | {"record_path": raw.get("record_path")}
        todo = [seed for seed in seeds if seed not in kept]
        if kept:
            log.info("final: seeds %s already retrained for trial %d", sorted(kept), best.number)
        records = dict(kept)
        final = None
        # n_jobs seeds at a time (the launcher's width), each batch stored as it ends.
        width = max(1, self.cfg.n_jobs)
        for start in range(0, len(todo), width):
            batch = todo[start : start + width]
            jobs = [
                [*fixed, *values, "split=final", f"seed={seed}", *self._study_ref(),
                 "study.trial=null", f"hydra.sweep.subdir=final_seed{seed}",
                 "study.phase=final", f"study.best_trial={best.number}", f"study.n_trials={n_finished}"]
                for seed in batch
            ]  # fmt: skip
            returns = self.launcher.launch(jobs, initial_job_idx=10_000 + batch[0])
            for seed, ret in zip(batch, returns):
                path = Path(ret.hydra_cfg.hydra.runtime.output_dir) / "result.json"
                if ret.status != JobStatus.COMPLETED or not path.is_file():
                    raise BenchError(f"final retraining failed: {ret._return_value}")
                records[seed] = RunRecord.read(path).to_dict() | {
                    "record_path": portable_path(str(path.resolve()))
                }
            final = self._store_final(study, best.number, n_finished, records)
        if final is None:  # every seed was kept: store them against today's trial count
            final = self._store_final(study, best.number, n_finished, records)
        return final | {
            "params": best.params, "split": "final",
            "records": [records[s]["record_path"] for s in seeds],
        }  # fmt: skip

    def _store_final(self, study: optuna.Study, best: int, n_finished: int, records: dict) -> dict:
        """Kept after every batch of seeds, so that a stopped retraining loses no finished seed."""
        done = [records[s] for s in sorted(records)]
        metrics = {}
        for mode in done[0]["metrics_by_tie_mode"]:
            values = {m: [r["metrics_by_tie_mode"][mode][m] for r in done]
                      for m in done[0]["metrics_by_tie_mode"][mode]}  # fmt: skip
            metrics[mode] = {
                m: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}
                for m, v in values.items()
            }
        final = {
            "best_trial": best, "n_trials": n_finished, "seeds": sorted(records),
            "metrics": metrics, "records": [{k: v for k, v in r.items() if k != "epochs"} for r in done],
        }  # fmt: skip
        study.set_user_attr("final", final)
        return final


def on_grid(value, spec: dict) -> bool:
    """Whether a search space could have drawn this value."""
    if spec.get("type") == "categorical":
        return value in list(spec["choices"])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    low, high = float(spec["low"]), float(spec["high"])
    if not low - 1e-9 <= value <= high + 1e-9:
        return False
    step = spec.get("step")
    if spec.get("type") == "int":
        step = step or 1
    return not step or abs((value - low) / step - round((value - low) / step)) < 1e-6
