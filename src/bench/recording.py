"""The run's outputs, written in an order that never leaves a record pointing at nothing:
the per-event ranks, then the record (`result.json`), then the model, then the study trial
that points at the record. A run that wrote none of them leaves no folder."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bench.atomic import write_with
from bench.paths import (
    PROJECT_ROOT,
    portable_dataset,
    portable_path,
    portable_storage,
    portable_text,
)
from bench.records import RunRecord, counted_from_1, git_commit, versions


def make_record(cfg: DictConfig, method, data, evaluator, result, epochs, timings, device, resume):
    """The typed record of a finished run (`result`: the evaluation it reports)."""
    study = OmegaConf.to_container(cfg.study)
    study["storage"] = portable_storage(study["storage"])
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return RunRecord(
        method=method.name,
        kind=method.kind,
        training=method.training,
        settings=method.settings(),
        params=cfg.params,
        paramfile=cfg.get("paramfile"),
        dataset=portable_dataset(data.stats(), cfg.data_dir),
        protocol=evaluator.protocol(result),
        eval=OmegaConf.to_container(cfg.eval, resolve=True),
        seed=int(cfg.seed),
        metrics=result.metrics,
        metrics_by_tie_mode={cfg.eval.tie_mode: result.metrics} | result.also,
        study=study,
        epochs=counted_from_1(epochs),
        timings=timings,
        device=device,
        harness=cfg.trainer.harness if method.training == "session_parallel" else None,
        training_step=method.training_step(),
        best_epoch=method.best_epoch + 1 if method.best_epoch is not None else None,
        resumed_from=portable_path(str(resume)) if resume is not None else None,
        overrides=[portable_text(o, cfg.data_dir) for o in overrides],
        versions=versions(),
        git_commit=git_commit(PROJECT_ROOT),
    )


def write_outputs(out_dir: Path, record: RunRecord, result, save_model, trial, cpu_start: float):
    """Ranks (test-file order), record, model (`save_model`: a callable or None), trial."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ranks = result.ranks.numpy().astype(np.float32)
    write_with(out_dir / "ranks.npy", lambda f: np.save(f, ranks), binary=True)
    record.write(out_dir / "result.json")
    if save_model is not None:
        save_model(out_dir / "model.pt")
    if trial is not None:
        from bench.study import record_to_trial

        record_to_trial(
            trial,
            record,
            portable_path(str(out_dir / "result.json")),
            time.process_time() - cpu_start,
        )


def discard_unfinished(out_dir: Path) -> None:
    """A run that failed before it wrote a record or a checkpoint leaves no folder behind
    (Hydra creates it before the job starts): only its config and log were in it."""
    if not (out_dir / "result.json").exists() and not (out_dir / "checkpoints").exists():
        shutil.rmtree(out_dir, ignore_errors=True)
