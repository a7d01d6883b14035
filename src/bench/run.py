"""`python -m bench.run`: train a method on a dataset, evaluate it, write a result record.

A Hydra app; `-m` runs grids (e.g. `-m loss=top1,bpr,ce`). One path for every method
(bench.methods): check the knobs, load the data, train, score with the shared evaluator,
write the record. Bad input ends with one line on stderr naming the file/field/option,
and exit status 2.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError, TrainingInterrupted
from bench.evaluation import Evaluator, check_eval_config
from bench.paths import (
    PROJECT_ROOT,
    conf_dir,
    default_data_dir,
    portable_dataset,
    portable_path,
    portable_storage,
    portable_text,
)
from bench.records import RunRecord, git_commit, save_array_atomic, versions

if not OmegaConf.has_resolver("bench_data_dir"):
    OmegaConf.register_new_resolver("bench_data_dir", default_data_dir)


def pick_device(accelerator: str) -> str:
    if accelerator == "cpu":
        return "cpu"
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise BenchError(
            "trainer.accelerator: 'gpu' requested but no CUDA device is available; use cpu or auto"
        )
    if accelerator not in ("auto", "gpu", "cuda"):
        raise BenchError(f"trainer.accelerator: unknown '{accelerator}'; expected auto, cpu or gpu")
    return "cuda" if torch.cuda.is_available() else "cpu"


def metrics_table(metrics: dict, cutoffs, title: str, caption: str):
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for col in ("cutoff", "Recall (=HR)", "MRR", "nDCG"):
        table.add_column(col, justify="right")
    for k in cutoffs:
        table.add_row(
            f"@{k}",
            f"{metrics[f'recall@{k}']:.4f}",
            f"{metrics[f'mrr@{k}']:.4f}",
            f"{metrics[f'ndcg@{k}']:.4f}",
        )
    return table


def _quiet_lightning() -> None:
    """Lightning's banner lines and tips would bury the metrics table; warnings still show."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  (it sets its loggers to INFO when first imported)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
        for child in list(logging.root.manager.loggerDict):
            if child.startswith(name + "."):
                logging.getLogger(child).setLevel(logging.NOTSET)  # inherit WARNING
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def open_study_trial(cfg: DictConfig, method, cpu_start: float, device_name: str):
    """(trial, per-epoch reporter) when this job is a study's trial, else (None, None);
    the trial keeps the device it runs on (pruned ones too: a study's cost is read per
    device)."""
    if cfg.study.trial is None:
        return None, None
    from bench.study import DEVICE_ATTR, EpochReporter, make_pruner, open_trial, rung_epochs

    s = cfg.study
    n_epochs = int(cfg.n_epochs or 0)
    pruner = make_pruner(
        s.pruner,
        int(s.pruner_startup_trials),
        int(s.pruner_warmup_epochs),
        int(s.pruner_min_epochs),
        int(s.pruner_reduction),
        n_epochs,
    )
    trial = open_trial(s.name, s.storage, int(s.trial), pruner)
    trial.set_user_attr(DEVICE_ATTR, device_name)
    if not method.evaluates_per_epoch:
        return trial, None
    rungs = rung_epochs(s.pruner, int(s.pruner_min_epochs), int(s.pruner_reduction), n_epochs)
    reporter = EpochReporter(trial, cfg.eval.primary_metric, rungs, n_epochs, cpu_start)
    return trial, reporter


def run_job(cfg: DictConfig, out_dir: Path) -> tuple[RunRecord, object]:
    """The whole job; returns the record (also written to out_dir/result.json) and the
    trained method."""
    from bench import terminal
    from bench.methods import build_method

    cpu_start = time.process_time()
    console = terminal.console()
    if cfg.print_config:
        console.print(OmegaConf.to_yaml(cfg, resolve=True))
    check_eval_config(cfg.eval)
    method = build_method(cfg)
    saving = checkpoint_dir(cfg, method, out_dir), resume_path(cfg, method)  # before any data
    _quiet_lightning()  # after the option checks: a bad option is reported without its import
    from bench.loggers import RunLoggers

    loggers = RunLoggers(cfg, out_dir)
    status = "failed"
    try:
        record = _fit_and_record(cfg, out_dir, method, loggers, console, cpu_start, saving)
        status = "success"
        return record, method
    finally:
        loggers.close(status)


def _fit_and_record(
    cfg,
    out_dir: Path,
    method,
    loggers,
    console,
    cpu_start: float,
    saving: tuple[Path | None, Path | None],
) -> RunRecord:
    """`saving`: where checkpoints go and the one to resume from (None: none)."""
    from bench.methods import FitContext

    device = pick_device(cfg.trainer.accelerator)
    t0 = time.perf_counter()
    data = method.load_data(cfg)
    t_load = time.perf_counter() - t0
    st = data.stats()
    scope = "valid" if cfg.split == "tune" else "test"  # what an evaluation here measures
    console.print(
        f"[bold]dataset[/] {data.name} [{data.label}]: {st['train_sessions']} train sessions, "
        f"{st['train_events']} events, {st['n_items']} items; {st['test_predictions']} "
        f"{'validation' if scope == 'valid' else 'test'} predictions"
    )
    evaluator = Evaluator(cfg, data, device)
    device_name = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    trial, reporter = open_study_trial(cfg, method, cpu_start, device_name)
    loggers.hyperparameters(
        {
            "method": method.name,
            "dataset": data.name,
            "split": cfg.split,
            "seed": int(cfg.seed),
            **method.settings(),
        }
    )
    epoch_evals = {}  # epoch index -> EvalResult, for the epochs evaluated on the way
    every_epoch = bool(cfg.eval.per_epoch) or method.monitors

    def on_epoch(stats) -> dict | None:
        """Log the epoch; evaluate it where learning curves, early stopping or the pruner
        need it (under a pruner that judges only at its rungs, the other epochs go
        unevaluated); return the metrics evaluated."""
        values = {
            "train/loss": stats.loss,
            "train/events_per_s": stats.events_per_s,
            "train/seconds": stats.seconds,
        }
        if every_epoch or (reporter is not None and reporter.needs_eval(stats.epoch)):
            epoch_evals[stats.epoch] = evaluator(method.scorer)
            stats.eval = epoch_evals[
                stats.epoch
            ].metrics  # kept in checkpoints: a resumed run has it
            values |= {f"{scope}/{k}": v for k, v in epoch_evals[stats.epoch].metrics.items()}
        loggers.metrics(values, stats.epoch + 1)
        if reporter is not None and stats.epoch in epoch_evals:
            reporter(stats, epoch_evals[stats.epoch])
        return epoch_evals[stats.epoch].metrics if stats.epoch in epoch_evals else None

    # What a checkpoint must match to be resumed by this run (n_epochs may grow: train on).
    settings = {k: v for k, v in method.settings().items() if k != "n_epochs"}
    identity = {
        "method": method.name,
        "settings": settings,
        "dataset": data.name,
        "split": cfg.split,
        "train_events": st["train_events"],
        "seed": int(cfg.seed),
    }
    ctx = FitContext(
        device, int(cfg.seed), console, evaluator.filter_seen, on_epoch, *saving, identity
    )
    t1 = time.perf_counter()
    epochs = method.fit(data, ctx)
    if not method.evaluates_per_epoch:  # e.g. BPTT: its epochs are logged once it is done
        for i, e in enumerate(epochs):
            loggers.metrics(
                {f"train/{k}": v for k, v in e.items() if k != "valid"}
                | {f"valid/{k}": v for k, v in (e.get("valid") or {}).items()},
                i + 1,
            )
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    # When the epoch whose weights the model holds (the last, or the best one early
    # stopping restored) was evaluated on the same data (and logged), reuse it.
    result = epoch_evals.get(
        method.best_epoch if method.best_epoch is not None else len(epochs) - 1
    )
    if result is None:
        result = evaluator(method.scorer)
        loggers.metrics({f"{scope}/{k}": v for k, v in result.metrics.items()}, max(1, len(epochs)))
    by_tie_mode = {cfg.eval.tie_mode: result.metrics} | result.also  # e.g. standard too
    study = OmegaConf.to_container(cfg.study)
    study["storage"] = portable_storage(study["storage"])
    record = RunRecord(
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
        metrics_by_tie_mode=by_tie_mode,
        study=study,
        epochs=epochs,
        timings={"load_s": t_load, "train_s": t_train, "eval_s": time.perf_counter() - t2},
        device=device_name,
        harness=cfg.trainer.harness if method.training == "session_parallel" else None,
        training_step=method.training_step(),
        best_epoch=method.best_epoch,
        resumed_from=portable_path(str(ctx.resume)) if ctx.resume is not None else None,
        overrides=[portable_text(o, cfg.data_dir) for o in HydraConfig.get().overrides.task]
        if HydraConfig.initialized()
        else [],
        versions=versions(),
        git_commit=git_commit(PROJECT_ROOT),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Per-event ranks (test-file order) first, so a record never points at a missing file.
    save_array_atomic(out_dir / "ranks.npy", result.ranks.numpy().astype(np.float32))
    record.write(out_dir / "result.json")
    if cfg.save_model:
        method.save(out_dir / "model.pt", data)
    if trial is not None:
        from bench.study import record_to_trial

        record_to_trial(
            trial,
            record,
            portable_path(str(out_dir / "result.json")),
            time.process_time() - cpu_start,
        )
    caption = f"{data.label}; {result.n_events} events, full ranking, {cfg.eval.tie_mode} ties"
    console.print(
        metrics_table(result.metrics, cfg.eval.cutoffs, f"{data.name}: {method.title()}", caption)
    )
    console.print(f"result record: {out_dir / 'result.json'}")
    return record


def checkpoint_dir(cfg: DictConfig, method, out_dir: Path) -> Path | None:
    """`trainer.checkpoint`: auto = on for single runs, off for study trials (short, pruned)."""
    setting = cfg.trainer.checkpoint
    if setting not in ("auto", True, False):
        raise BenchError(f"trainer.checkpoint: got {setting!r}, expected auto, true or false")
    on = cfg.study.trial is None if setting == "auto" else setting
    return out_dir / "checkpoints" if on and method.checkpoints else None


def resume_path(cfg: DictConfig, method) -> Path | None:
    """`resume=`: a checkpoint file, or a run directory holding checkpoints/last.ckpt."""
    if cfg.resume is None:
        return None
    if not method.checkpoints:
        raise BenchError(
            "resume: checkpoints are the Lightning harness's, kept by GRU4Rec runs with "
            f"trainer.harness=lightning; {method.name} here keeps none"
        )
    path = Path(str(cfg.resume))
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise BenchError(
            f"resume: no checkpoint at {path} (expected a .ckpt file or a run directory "
            "holding checkpoints/last.ckpt)"
        )
    return path


def discard_unfinished(out_dir: Path) -> None:
    """A run that failed before it wrote a record or a checkpoint leaves no folder behind
    (Hydra creates it before the job starts): only its config and log were in it."""
    if not (out_dir / "result.json").exists() and not (out_dir / "checkpoints").exists():
        shutil.rmtree(out_dir, ignore_errors=True)


def _under_study_sweeper() -> bool:
    try:
        return "bench_optuna" in str(HydraConfig.get().sweeper.get("_target_", ""))
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="run")
def main(cfg: DictConfig) -> float:
    """Exit status 2 on bad input, 3 on a diverged (NaN) training, each with one line;
    143 when SIGTERM stopped training (resume from the checkpoint it wrote).

    In a grid (`-m`) a failed job prints its line and the grid goes on; under the study
    sweeper the error propagates so that the trial is recorded as failed with its reason.
    """
    from bench.core.train import NaNLossError

    try:
        record, _ = run_job(cfg, Path(HydraConfig.get().runtime.output_dir))
    except TrainingInterrupted as e:
        if _under_study_sweeper():
            raise
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except (BenchError, NaNLossError) as e:
        if _under_study_sweeper():
            raise
        print(f"error: {e}", file=sys.stderr)
        discard_unfinished(Path(HydraConfig.get().runtime.output_dir))
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return float("nan")
        sys.exit(2 if isinstance(e, BenchError) else 3)
    return float(record.metrics.get(cfg.eval.primary_metric, float("nan")))


if __name__ == "__main__":
    main()
