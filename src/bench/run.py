"""`python -m bench.run`: train a method on a dataset, evaluate it, write a result record.

A Hydra app; `-m` runs grids (e.g. `-m loss=top1,bpr,ce`). One path for every method
(bench.methods): check the knobs, load the data, train, score with the shared evaluator,
write the record. Bad input ends with one line on stderr naming the file/field/option,
and exit status 2.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import allocator, interrupts, protocol, recording
from bench.errors import BenchError, TrainingInterrupted
from bench.evaluation import Evaluator, check_eval_config
from bench.job_options import (
    check_harness_knobs,
    checkpoint_dir,
    device_name,
    pick_device,
    refuse_bad_overrides,
    resume_path,
    want_progress_bar,
)
from bench.paths import conf_dir, default_data_dir
from bench.records import RunRecord

if not OmegaConf.has_resolver("bench_data_dir"):
    OmegaConf.register_new_resolver("bench_data_dir", default_data_dir)
if not OmegaConf.has_resolver("bench_budget"):  # the conf/hparams_search files' n_trials
    OmegaConf.register_new_resolver("bench_budget", lambda: protocol.BUDGET)


def run_job(cfg: DictConfig, out_dir: Path) -> tuple[RunRecord, object]:
    """The whole job; returns the record (also written to out_dir/result.json) and the
    trained method."""
    from bench import terminal

    allocator.keep_freed_memory()
    cpu_start = time.process_time()
    console = terminal.console()
    if cfg.print_config:
        console.print(OmegaConf.to_yaml(cfg, resolve=True))
    method, ctx = settle(cfg, out_dir, console)
    from bench.lit import quiet_lightning  # after the option checks: they fail without it
    from bench.loggers import RunLoggers

    quiet_lightning()
    loggers = RunLoggers(cfg, out_dir)
    status = "failed"
    try:
        record = _fit_and_record(cfg, out_dir, method, loggers, ctx, cpu_start)
        status = "success"
        return record, method
    finally:
        loggers.close(status)


def settle(cfg: DictConfig, out_dir: Path, console=None):
    """Every knob checked and every option settled, before any data is read: (the method
    built from its knobs, its FitContext). A bad value raises BenchError naming it."""
    from bench.methods import FitContext, build_method

    check_harness_knobs(cfg)
    check_eval_config(cfg.eval)
    method = build_method(cfg)
    ctx = FitContext(
        pick_device(cfg.trainer.accelerator),
        int(cfg.seed),
        console,
        checkpoint_dir=checkpoint_dir(cfg, method, out_dir),
        resume=resume_path(cfg, method),
        progress_bar=want_progress_bar(cfg.trainer.progress_bar),
    )
    return method, ctx


def _fit_and_record(cfg, out_dir: Path, method, loggers, ctx, cpu_start: float) -> RunRecord:
    """Load, train (the harness's per-epoch work in `ctx.epoch_hook`), evaluate, record."""
    from bench.epochs import EpochWork
    from bench.study import open_job_trial
    from bench.terminal import metrics_table

    t0 = time.perf_counter()
    data = method.load_data(cfg)
    t_load = time.perf_counter() - t0
    scope = "valid" if cfg.split == "tune" else "test"  # what an evaluation here measures
    st = data.stats()
    ctx.console.print(
        f"[bold]dataset[/] {data.name} [{data.label}]: {st['train_sessions']} train sessions, "
        f"{st['train_events']} events, {st['n_items']} items; {st['test_predictions']} "
        f"{'validation' if scope == 'valid' else 'test'} predictions"
    )
    evaluator = Evaluator(cfg, data, ctx.device)
    device = device_name(ctx.device)
    trial, reporter = open_job_trial(cfg, method.evaluates_per_epoch, cpu_start, device)
    settings = method.settings()
    run = {"method": method.name, "dataset": data.name, "split": cfg.split, "seed": ctx.seed}
    loggers.hyperparameters(run | settings)
    every_epoch = bool(cfg.eval.per_epoch) or method.monitors
    ctx.epoch_hook = EpochWork(evaluator, method, loggers, reporter, scope, every_epoch)
    ctx.filter_seen = evaluator.filter_seen
    # What a checkpoint must match to be resumed by this run (n_epochs may grow: train on).
    settings = {k: v for k, v in settings.items() if k != "n_epochs"}
    ctx.identity = run | {"settings": settings, "train_events": st["train_events"]}
    t1 = time.perf_counter()
    epochs = method.fit(data, ctx)
    if not method.evaluates_per_epoch:  # e.g. BPTT: its epochs are logged once it is done
        for i, e in enumerate(epochs):
            values = {f"train/{k}": v for k, v in e.items() if k != "valid"}
            loggers.metrics(
                values | {f"valid/{k}": v for k, v in (e.get("valid") or {}).items()}, i + 1
            )
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    # The epoch whose weights the model holds (the last, or the best one early stopping
    # restored), where it was evaluated on the same data (and logged) on the way.
    held = method.best_epoch if method.best_epoch is not None else len(epochs) - 1
    result = ctx.epoch_hook.evals.get(held)
    if result is None:
        result = evaluator(method.scorer)
        loggers.metrics({f"{scope}/{k}": v for k, v in result.metrics.items()}, max(1, len(epochs)))
    timings = {"load_s": t_load, "train_s": t_train, "eval_s": time.perf_counter() - t2}
    record = recording.make_record(
        cfg, method, data, evaluator, result, epochs, timings, device, ctx.resume
    )
    save = (lambda path: method.save(path, data)) if cfg.save_model else None
    recording.write_outputs(out_dir, record, result, save, trial, cpu_start)
    caption = f"{data.label}; {result.n_events} events, full ranking, {cfg.eval.tie_mode} ties"
    title = f"{data.name}: {method.title()}"
    ctx.console.print(metrics_table(result.metrics, cfg.eval.cutoffs, title, caption))
    ctx.console.print(f"result record: {out_dir / 'result.json'}")
    return record


def _under_study_sweeper() -> bool:
    try:
        return "bench_optuna" in str(HydraConfig.get().sweeper.get("_target_", ""))
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="run")
def main(cfg: DictConfig) -> float:
    """Exit status 2 on bad input, 3 on a diverged (NaN) training, each with one line;
    143 when SIGTERM stopped training (resume from the checkpoint it wrote); 130 when
    Ctrl+C came outside training (loading data, the final evaluation) or twice.

    In a grid (`-m`) a failed job prints its line and the grid goes on; under the study
    sweeper the error propagates so that the trial is recorded as failed with its reason.
    """
    from bench.core.train import NaNLossError

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if not _under_study_sweeper():
            hydra_cfg = HydraConfig.get()
            refuse_bad_overrides(hydra_cfg.overrides.task, cfg, hydra_cfg.job.config_name)
        record, _ = run_job(cfg, out_dir)
    except TrainingInterrupted as e:
        if _under_study_sweeper():
            raise
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        if _under_study_sweeper():
            raise
        print(interrupts.outside_training(out_dir), file=sys.stderr)
        recording.discard_unfinished(out_dir)
        sys.exit(128 + signal.SIGINT)
    except (BenchError, NaNLossError) as e:
        if _under_study_sweeper():
            raise
        print(f"error: {e}", file=sys.stderr)
        recording.discard_unfinished(out_dir)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return float("nan")
        sys.exit(2 if isinstance(e, BenchError) else 3)
    return float(record.metrics.get(cfg.eval.primary_metric, float("nan")))


if __name__ == "__main__":
    main()
