"""The bench_optuna sweeper's final retraining: the best trial's parameters trained on the
final split (train -> test) once per seed, `n_jobs` seeds at a time. Each batch of records
is kept on the study (user attribute `final`, mean/std per tie mode) as it ends, so a
stopped retraining loses no finished seed and the committed storage alone regenerates the
tables; seeds already retrained for the same best trial and evaluation are not run again."""

import logging
import statistics
from pathlib import Path

import numpy as np
import optuna
from hydra.core.utils import JobStatus
from omegaconf import DictConfig, OmegaConf

from bench import interrupts
from bench.errors import BenchError, TrainingInterrupted
from bench.paths import portable_path
from bench.records import RANKS_KEY, RunRecord, encode_ranks
from bench.study import FINISHED, best_within_budget, param_override
from hydra_plugins.bench_optuna_sweeper.study_loop import count, search_space, study_ref

log = logging.getLogger(__name__)


class FinalRetraining:
    def __init__(self, cfg: DictConfig, config: DictConfig, launcher, study: optuna.Study):
        self.cfg, self.config, self.launcher, self.study = cfg, config, launcher, study
        self.seeds_done = 0  # retrained and kept, this run's and earlier ones

    def run(self, fixed: list[str]) -> dict:
        """Retrain the best parameters on the final split, one job per seed not yet done.

        The best among the first `n_trials` finished trials: a study that ran past the
        common budget is retrained as it stood at the budget, like every other study."""
        study = self.study
        n_finished = min(count(study, FINISHED), int(self.cfg.n_trials))
        best = best_within_budget(study, int(self.cfg.n_trials))
        if best is None:
            name, first = self.cfg.study_name, n_finished
            raise BenchError(f"study {name}: no complete trial among its first {first} to retrain")
        params = search_space(self.cfg)
        values = [param_override(name, spec, best.params[name]) for name, spec in params.items()]
        seeds = list(range(self.cfg.final_seeds))
        kept = self._kept_seeds(best.number, seeds)
        todo = [seed for seed in seeds if seed not in kept]
        if kept:
            log.info("final: seeds %s already retrained for trial %d", sorted(kept), best.number)
        records = dict(kept)
        final = None
        # n_jobs seeds at a time (the launcher's width), each batch stored as it ends.
        width = max(1, self.cfg.n_jobs)
        stop = self.cfg.get("stop_file")
        for start in range(0, len(todo), width):
            if interrupts.requested():  # SIGTERM/Ctrl+C: the finished seeds are kept
                break
            if stop and Path(stop).exists():
                log.info(
                    "final: stop file %s: no further seed (%d of %d done)",
                    stop,
                    len(records),
                    len(seeds),
                )
                break
            batch = todo[start : start + width]
            jobs = [
                [*fixed, *values, *self._seed_job(seed, best.number, n_finished)] for seed in batch
            ]
            returns = self.launcher.launch(jobs, initial_job_idx=10_000 + batch[0])
            for seed, ret in zip(batch, returns):
                path = Path(ret.hydra_cfg.hydra.runtime.output_dir) / "result.json"
                if isinstance(ret._return_value, TrainingInterrupted):
                    continue  # retrained again by the next run
                if ret.status != JobStatus.COMPLETED or not path.is_file():
                    raise BenchError(f"final retraining failed: {ret._return_value}")
                records[seed] = RunRecord.read(path).to_dict() | {
                    "record_path": portable_path(str(path.resolve())),
                    RANKS_KEY: encode_ranks(np.load(path.parent / "ranks.npy")),
                }
            if any(seed in records for seed in batch):
                final = self._store(study, best.number, n_finished, records)
        self.seeds_done = len(records)
        if final is None and records:  # every seed was kept: store them against today's trial count
            final = self._store(study, best.number, n_finished, records)
        return (final or {}) | {
            "params": best.params,
            "split": "final",
            "records": [records[s]["record_path"] for s in seeds if s in records],
        }

    def _kept_seeds(self, best: int, seeds: list[int]) -> dict[int, dict]:
        """The seeds a previous retraining of the same trial, scored the same way, finished."""
        previous = self.study.user_attrs.get("final") or {}
        eval_now = OmegaConf.to_container(self.config.eval, resolve=True)
        kept = {}
        for raw in previous.get("records", []):
            r = RunRecord.from_dict(raw)
            same = previous.get("best_trial") == best and r.eval == eval_now
            # a seed stored without its per-event ranks (from before they were kept) is
            # retrained: the headline's paired test needs them
            if same and r.seed in seeds and raw.get(RANKS_KEY):
                kept[r.seed] = r.to_dict() | {k: raw.get(k) for k in ("record_path", RANKS_KEY)}
        return kept

    def _seed_job(self, seed: int, best: int, n_finished: int) -> list[str]:
        """The overrides that make a job the retraining of trial `best` with `seed`."""
        return [
            "split=final",
            f"seed={seed}",
            *study_ref(self.cfg),
            "study.trial=null",
            f"hydra.sweep.subdir=final_seed{seed}",
            "study.phase=final",
            f"study.best_trial={best}",
            f"study.n_trials={n_finished}",
        ]

    def _store(self, study: optuna.Study, best: int, n_finished: int, records: dict) -> dict:
        """Kept after every batch of seeds, so that a stopped retraining loses no finished seed."""
        done = [records[s] for s in sorted(records)]
        metrics = {}
        for mode in done[0]["metrics_by_tie_mode"]:
            values = {
                m: [r["metrics_by_tie_mode"][mode][m] for r in done]
                for m in done[0]["metrics_by_tie_mode"][mode]
            }
            metrics[mode] = {
                m: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}
                for m, v in values.items()
            }
        final = {
            "best_trial": best,
            "n_trials": n_finished,
            "seeds": sorted(records),
            "metrics": metrics,
            "records": [{k: v for k, v in r.items() if k != "epochs"} for r in done],
        }
        study.set_user_attr("final", final)
        return final
