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
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from bench import interrupts
from bench.errors import BenchError
from bench.job_options import refuse_bad_overrides
from bench.study import FINISHED

# No `from __future__ import annotations` here: Hydra imports plugins outside
# sys.modules, where dataclasses cannot resolve string annotations.
from hydra_plugins.bench_optuna_sweeper.final import FinalRetraining
from hydra_plugins.bench_optuna_sweeper.study_loop import StudyLoop, count

log = logging.getLogger(__name__)


class SweepError(CompactHydraException):
    """Printed by Hydra as its message alone."""


@dataclass
class BenchOptunaSweeperConf:
    _target_: str = "hydra_plugins.bench_optuna_sweeper.bench_optuna_sweeper.BenchOptunaSweeper"
    study_name: str = "study"
    storage: str = "sqlite:///sweeps/study.db"
    direction: str = "maximize"
    n_trials: int = (
        20  # finished (complete or pruned) trials the study stops at, all workers together
    )
    # The study's budget (user attr n_trials_target, which the reports count against);
    # null: the largest n_trials any run of the study asked for, so that a run stopping
    # early (final_now, a probe) does not shrink it. Set it to fix (or lower) the budget.
    budget: int | None = None
    n_jobs: int = 1  # trials launched together (use a parallel launcher, e.g. joblib)
    sampler: str = "tpe"  # tpe | random
    seed: int | None = 0
    n_startup_trials: int = 10
    pruner: str = "median"  # median | successive_halving | hyperband | none
    pruner_warmup_epochs: int = 0  # median: epochs never judged
    pruner_startup_trials: int = 3  # median: trials never judged
    # successive_halving / hyperband: epochs before the first judgement (>= 2), and the
    # reduction factor (keep the best 1/reduction at each rung).
    pruner_min_epochs: int = 2
    pruner_reduction: int = 3
    heartbeat_interval: int = 10  # seconds; RDB storages only
    grace_period: int = 30
    max_retry: int = 2
    max_failures: int = 20  # failed trials (not re-queued ones) that stop the study with an error
    final_seeds: int = 0  # > 0: retrain the best parameters on the final split per seed
    # While this file exists no new trial starts: a worker ends after its trial in
    # progress, without retraining, and the same command continues the study later
    # (`python -m bench.studies --stop` writes the one the headline studies use).
    stop_file: str | None = None
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

    def sweep(self, arguments: list[str]) -> Any:
        """The study loop, then the final retraining; a bad option or storage ends with
        its one line (Hydra prints a compact error without a stack trace)."""
        try:
            return self._sweep(arguments)
        except BenchError as e:
            raise SweepError(f"error: {e}") from None

    def _sweep(self, arguments: list[str]) -> Any:
        fixed = fixed_overrides(arguments, self.config)
        check_options(self.cfg, self.config)
        loop = StudyLoop(self.cfg, self.config, self.launcher)
        loop.prepare(fixed)
        log.info(
            "study %s in %s: target %d finished trials",
            self.cfg.study_name,
            self.cfg.storage,
            self.cfg.n_trials,
        )
        with interrupts.stop_on_signals():
            if not self.cfg.final_now:
                loop.run(fixed)
            summary = loop.summary() | ({"stopped_by": self.cfg.stop_file} if loop.stopped else {})
            if self.cfg.final_now and not summary.get("best"):
                raise BenchError(
                    f"hydra.sweeper.final_now: study {self.cfg.study_name} has no complete trial "
                    "to retrain"
                )
            final = None
            if self.cfg.final_seeds > 0 and not loop.stopped and loop.interrupted is None:
                final = FinalRetraining(self.cfg, self.config, self.launcher, loop.study)
                summary["final"] = final.run(fixed)
            stopped = interrupts.requested()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "final.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        log.info("study summary written to %s", sweep_dir / "final.json")
        print(closing_summary(summary, self.config.eval.primary_metric), flush=True)
        if stopped is not None:
            self._interrupted(loop, final, stopped)
        return summary

    def _interrupted(self, loop: StudyLoop, final, signal_name: str) -> None:
        """One line and exit status 143 (128 + SIGTERM), as a single run stopped so."""
        done = count(loop.study, FINISHED)
        where = (
            f"trial {loop.interrupted} was stopped and queued again"
            if loop.interrupted not in (None, -1)
            else "no trial was in flight"
        )
        if final is not None:
            kept = f"{final.seeds_done} of {self.cfg.final_seeds} seeds kept"
            where = f"the final retraining stopped ({kept})"
        print(
            f"interrupted ({signal_name}): study {self.cfg.study_name}, {done} of "
            f"{self.cfg.n_trials} trials finished; {where}; the same command continues it",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGTERM)


def closing_summary(summary: dict, metric: str) -> str:
    """What a study ended with, where its work ends: trials, the best trial with its
    parameters and validation value, and its final seeds' test mean ± std."""
    trials = summary["trials"]
    lines = [
        f"study {summary['study']}: {trials['complete']} complete, {trials['pruned']} pruned, "
        f"{trials['fail']} failed trials"
    ]
    best = summary.get("best")
    if best:
        params = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["params"].items()
        )
        lines.append(
            f"best: trial {best['number']}, validation {metric} {best['value']:.4f}; {params}"
        )
    final = summary.get("final") or {}
    stats = (final.get("metrics") or {}).get("conservative", {}).get(metric)
    if stats:
        lines.append(
            f"final: {len(final['seeds'])} seed(s) on the test split, {metric} "
            f"{stats['mean']:.4f} ± {stats['std']:.4f} (conservative ties)"
        )
    return "\n".join(lines)


# The sweeper's counts and the least value each takes.
LEAST = {
    "n_trials": 1,
    "budget": 1,
    "n_jobs": 1,
    "n_startup_trials": 0,
    "pruner_warmup_epochs": 0,
    "pruner_startup_trials": 0,
    "heartbeat_interval": 0,
    "grace_period": 0,
    "max_retry": 0,
    "max_failures": 1,
    "final_seeds": 0,
}
ABSENT = object()


def check_options(cfg: DictConfig, job: DictConfig) -> None:
    """The sweeper's own options, before its storage is opened: each one line naming it
    (a direction Optuna does not know, a count below its least, a searched parameter the
    job config does not hold, which Hydra would refuse only when the first trial starts)."""
    if cfg.direction not in ("maximize", "minimize"):
        raise BenchError(
            f"hydra.sweeper.direction: unknown '{cfg.direction}'; expected maximize or minimize"
        )
    for name, least in LEAST.items():
        value = cfg.get(name)
        if value is not None and value < least:
            raise BenchError(f"hydra.sweeper.{name}: got {value}; expected an integer >= {least}")
    for name in cfg.params:
        if OmegaConf.select(job, name, default=ABSENT) is ABSENT:
            raise BenchError(
                f"hydra.sweeper.params.{name}: not a setting of the job's config "
                "(misspelt? `python -m bench.run --cfg job` lists them)"
            )


def fixed_overrides(arguments: list[str], job: DictConfig) -> list[str]:
    """The command line's overrides, each a single value (a study takes no grid), none
    of them one a run refuses."""
    refuse_bad_overrides(arguments, job, job.hydra.job.config_name)
    for o in OverridesParser.create().parse_overrides(arguments):
        if o.is_sweep_override():
            raise BenchError(
                f"hparams_search: '{o.input_line}' is a sweep; an Optuna study takes fixed values "
                "(run one study per value)"
            )
    return list(arguments)
