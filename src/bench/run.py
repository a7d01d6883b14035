"""`python -m bench.run`: train GRU4Rec on a dataset, evaluate, write a result record.

A Hydra app; `-m` runs grids (e.g. `-m loss=top1,bpr,ce`). Bad input ends with one
line on stderr naming the file/field/option, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench.datasets import PROJECT_ROOT, default_data_dir, load_dataset
from bench.errors import BenchError
from bench.records import git_commit, save_array_atomic, versions, write_json_atomic


def _conf_dir() -> str:
    """Configs ship inside the wheel (bench/conf); an editable install reads the repo's conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else PROJECT_ROOT / "conf")


if not OmegaConf.has_resolver("bench_data_dir"):
    OmegaConf.register_new_resolver("bench_data_dir", default_data_dir)

HP_FIELDS = (
    "layers", "loss", "batch_size", "dropout_p_embed", "dropout_p_hidden", "learning_rate",
    "momentum", "sample_alpha", "n_sample", "embedding", "constrained_embedding", "n_epochs",
    "bpreg", "elu_param", "logq", "sample_store_size", "optimizer",
)  # fmt: skip


def gru4rec_config(cfg: DictConfig):
    from bench.core.model import GRU4RecConfig

    try:
        return GRU4RecConfig(**{k: OmegaConf.to_object(cfg)[k] for k in HP_FIELDS})
    except (ValueError, TypeError) as e:
        raise BenchError(f"config: {e}") from None


def computed_metrics(cutoffs) -> set[str]:
    """The metric names every evaluation records (see core.metrics.metrics_from_ranks)."""
    return {f"{m}@{k}" for m in ("recall", "hr", "mrr", "ndcg") for k in cutoffs}


def check_eval_config(ev: DictConfig) -> None:
    """Fail before training, not after it, on a bad evaluation option."""
    from bench.core.metrics import TIE_MODES

    if ev.tie_mode not in TIE_MODES:
        raise BenchError(
            f"eval.tie_mode: unknown '{ev.tie_mode}'; expected one of {', '.join(TIE_MODES)}"
        )
    for mode in ev.get("also_tie_modes") or []:
        if mode not in TIE_MODES:
            raise BenchError(
                f"eval.also_tie_modes: unknown '{mode}'; expected any of {', '.join(TIE_MODES)}"
            )
    cutoffs = list(ev.cutoffs)
    if not cutoffs or not all(isinstance(k, int) and k >= 1 for k in cutoffs):
        raise BenchError(
            f"eval.cutoffs: got {cutoffs}; expected a non-empty list of positive integers"
        )
    metrics = computed_metrics(cutoffs)
    if ev.primary_metric not in metrics:
        raise BenchError(
            f"eval.primary_metric: '{ev.primary_metric}' is not computed; expected one of {sorted(metrics)}"
        )


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


def load_job_data(cfg: DictConfig):
    """(data, training histories, validation sessions); the last two only for training=bptt."""
    if cfg.training not in ("session_parallel", "bptt"):
        raise BenchError(f"training: unknown '{cfg.training}'; expected session_parallel or bptt")
    ds = OmegaConf.to_object(cfg.dataset)
    if cfg.training == "bptt":
        from bench.datasets import load_user_histories

        if cfg.split != "final":
            raise BenchError(
                "split: training=bptt tunes by early stopping on each user's validation item; "
                "use split=final"
            )
        return load_user_histories(ds, cfg.data_dir)
    return load_dataset(ds, cfg.data_dir, cfg.split), None, None


def make_model(cfg: DictConfig, hp, data, device: str):
    """(method name, scorer, training engine or None) for GRU4Rec, BPTT GRU4Rec or a baseline."""
    baseline = cfg.get("baseline")
    if baseline is not None:
        from bench.baselines import make_baseline

        params = OmegaConf.to_container(baseline, resolve=True).get("params") or {}
        return baseline.name, make_baseline(baseline.name, params), None
    if cfg.training == "bptt":
        from bench.core.model import GRU4RecModel

        model = GRU4RecModel(len(data.item_map), hp)
        model.reset_parameters(torch.Generator().manual_seed(int(cfg.seed)))
        return "gru4rec_seq", model.to(device), None
    from bench.core.train import Engine

    graphs = cfg.trainer.cuda_graphs
    if graphs not in ("auto", True, False):
        raise BenchError(f"trainer.cuda_graphs: got {graphs!r}, expected auto, true or false")
    try:
        engine = Engine(
            hp, data.train, len(data.item_map), device=device, seed=int(cfg.seed),
            step=str(cfg.trainer.step), cuda_graphs=None if graphs == "auto" else graphs,
        )  # fmt: skip
    except ValueError as e:
        if str(e).startswith(("step:", "cuda_graphs:")):
            raise BenchError(f"trainer.{e}") from None
        raise
    return "gru4rec", engine.model, engine


def evaluation_options(cfg: DictConfig, data, device: str):
    """(filter_seen, sampled candidates or None, predictions counted as misses): the
    dataset's default for filter_seen unless eval overrides it."""
    filter_seen = cfg.eval.get("filter_seen")
    if filter_seen is None:
        filter_seen = bool(cfg.dataset.get("filter_seen", False))
    sampled = None
    if cfg.eval.get("sampled"):
        from bench.core.evaluate import SampledCandidates

        try:
            sampled = SampledCandidates.make(
                int(cfg.eval.sampled.n), str(cfg.eval.sampled.by),
                data.train.support(len(data.item_map)), device,
            )  # fmt: skip
        except ValueError as e:
            raise BenchError(str(e)) from None
    unknown = cfg.eval.get("unknown_test_items", "drop")
    if unknown not in ("drop", "miss"):
        raise BenchError(f"eval.unknown_test_items: got '{unknown}'; expected drop or miss")
    misses = data.unscorable_predictions if unknown == "miss" else 0
    return bool(filter_seen), sampled, misses


def fit_user_histories(cfg, model, seq_train, seq_valid, filter_seen, device, console):
    """BPTT training with early stopping on the validation item (training=bptt)."""
    from bench.core.bptt import SequenceConfig, fit_sequences
    from bench.core.evaluate import evaluate

    seq = OmegaConf.to_container(cfg.seq, resolve=True)
    metric = seq.pop("metric")
    try:
        seq_cfg = SequenceConfig(**seq)
    except (TypeError, ValueError) as e:
        raise BenchError(f"seq: {e}") from None
    if metric not in computed_metrics(cfg.eval.cutoffs):
        raise BenchError(
            f"seq.metric: '{metric}' is not computed at eval.cutoffs {list(cfg.eval.cutoffs)}"
        )

    def validate_histories():
        return evaluate(
            model, seq_valid, list(cfg.eval.cutoffs), cfg.eval.tie_mode,
            int(cfg.eval.batch_size), device, filter_seen=filter_seen,
        ).metrics  # fmt: skip

    def show(stats):
        console.print(
            f"Epoch {stats.epoch + 1} --> loss: {stats.loss:.4f} ({stats.seconds:.1f}s), "
            f"validation {metric} {stats.valid[metric]:.4f}"
        )

    return fit_sequences(model, seq_train, seq_cfg, validate_histories, metric, int(cfg.seed), show)


def fit_session_parallel(cfg, hp, engine, device, epoch_hook, console):
    """The official training loop, bare or inside Lightning (trainer.harness)."""
    from bench.core.train import fit
    from bench.lit import GRU4RecModule, make_trainer

    if cfg.trainer.harness == "bare":

        def on_epoch(stats):
            console.print(stats.line())
            if epoch_hook is not None:
                epoch_hook(stats)

        return fit(engine, on_epoch=on_epoch)
    if cfg.trainer.harness == "lightning":
        module = GRU4RecModule(
            engine, chunk_steps=int(cfg.trainer.chunk_steps), epoch_hook=epoch_hook
        )
        trainer = make_trainer(
            hp.n_epochs, "gpu" if device == "cuda" else "cpu", bool(cfg.trainer.progress_bar)
        )
        trainer.fit(module)
        return module.history
    raise BenchError(
        f"trainer.harness: unknown '{cfg.trainer.harness}'; expected lightning or bare"
    )


def build_record(
    cfg,
    hp,
    method,
    data,
    result,
    history,
    epoch_evals,
    filter_seen,
    sampled,
    misses,
    timings,
    device,
):
    baseline = cfg.get("baseline")
    return {
        "kind": "baseline" if baseline is not None else "gru4rec",
        "training": None if baseline is not None else cfg.training,
        "seq": OmegaConf.to_container(cfg.seq, resolve=True) if method == "gru4rec_seq" else None,
        "method": method,
        "dataset": data.stats(),
        "protocol": {
            "task": "next-item prediction at every position of each test session"
            if data.test.evaluate_mask is None
            else "the held-out item given its prefix / the user's history",
            "candidates": "all training items (full ranking)",
            "tie_mode": cfg.eval.tie_mode,
            "cutoffs": list(cfg.eval.cutoffs),
            "unknown_test_items": "dropped, session re-chained"
            + (f"; {misses} predictions lost that way counted as misses" if misses else ""),
            "seen_item_filtering": filter_seen,
            "sampled_metrics": None
            if sampled is None
            else f"also {sampled.label}_* : target vs {sampled.n} {sampled.by} negatives (not full ranking)",
            "evaluated_events": result.n_events,
            "test_fingerprint": data.test_fingerprint(),
        },
        "ranks_file": "ranks.npy",
        "gru4rec": dataclasses.asdict(hp) if baseline is None else None,
        "baseline": OmegaConf.to_container(baseline, resolve=True)
        if baseline is not None
        else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "seed": int(cfg.seed),
        "study": OmegaConf.to_container(cfg.study),
        "metrics": result.metrics,
        "epochs": [
            s.as_dict() | ({"eval": epoch_evals[i].metrics} if i < len(epoch_evals) else {})
            for i, s in enumerate(history)
        ],
        "timings": timings,
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "harness": cfg.trainer.harness,
        "versions": versions(),
        "git_commit": git_commit(PROJECT_ROOT),
    }


def train_and_evaluate(cfg: DictConfig, out_dir: Path) -> dict:
    """The whole job; returns the result record (also written to out_dir/result.json)."""
    from rich.console import Console

    from bench.core.checkpoint import save_model
    from bench.core.evaluate import evaluate

    _quiet_lightning()
    console = Console()
    if cfg.print_config:
        console.print(OmegaConf.to_yaml(cfg, resolve=True))
    hp = gru4rec_config(cfg)
    check_eval_config(cfg.eval)
    device = pick_device(cfg.trainer.accelerator)
    t0 = time.perf_counter()
    data, seq_train, seq_valid = load_job_data(cfg)
    t_load = time.perf_counter() - t0
    st = data.stats()
    console.print(
        f"[bold]dataset[/] {data.name} [{data.label}]: {st['train_sessions']} train sessions, "
        f"{st['train_events']} events, {st['n_items']} items; {st['test_predictions']} test predictions"
    )
    method, model, engine = make_model(cfg, hp, data, device)
    baseline = cfg.get("baseline")
    filter_seen, sampled, misses = evaluation_options(cfg, data, device)

    def validate():
        return evaluate(
            model, data.test, list(cfg.eval.cutoffs), cfg.eval.tie_mode,
            int(cfg.eval.batch_size), device, filter_seen=filter_seen, sampled=sampled,
            extra_misses=misses,
        )  # fmt: skip

    trial = reporter = None
    if cfg.study.trial is not None:
        from bench.study import EpochReporter, make_pruner, open_trial

        pruner = make_pruner(
            cfg.study.pruner,
            int(cfg.study.pruner_startup_trials),
            int(cfg.study.pruner_warmup_epochs),
        )
        trial = open_trial(cfg.study.name, cfg.study.storage, int(cfg.study.trial), pruner)
        if engine is not None:
            reporter = EpochReporter(trial, cfg.eval.primary_metric)
    epoch_evals = []  # EvalResult per epoch, when evaluated per epoch

    def evaluate_epoch(stats):
        epoch_evals.append(validate())
        if reporter is not None:
            reporter(stats, epoch_evals[-1])

    epoch_hook = evaluate_epoch if reporter is not None or cfg.eval.per_epoch else None
    t1 = time.perf_counter()
    if baseline is not None:
        model.fit(data.train, len(data.item_map)).to(device)
        history = []
    elif engine is None:
        history = fit_user_histories(cfg, model, seq_train, seq_valid, filter_seen, device, console)
    else:
        history = fit_session_parallel(cfg, hp, engine, device, epoch_hook, console)
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    # When evaluated per epoch, the last epoch was just evaluated on the same data: reuse it.
    result = epoch_evals[-1] if epoch_evals else validate()
    by_tie_mode = {cfg.eval.tie_mode: result.metrics}
    for mode in cfg.eval.get("also_tie_modes") or []:  # e.g. standard next to conservative
        if mode not in by_tie_mode:
            by_tie_mode[mode] = evaluate(
                model, data.test, list(cfg.eval.cutoffs), mode, int(cfg.eval.batch_size), device,
                filter_seen=filter_seen, extra_misses=misses,
            ).metrics  # fmt: skip
    timings = {"load_s": t_load, "train_s": t_train, "eval_s": time.perf_counter() - t2}
    record = build_record(
        cfg, hp, method, data, result, history, epoch_evals, filter_seen, sampled, misses, timings,
        device,
    )  # fmt: skip
    record["metrics_by_tie_mode"] = by_tie_mode
    if engine is not None:  # which training step actually ran (fused.py, graphs.py)
        record["training_step"] = {
            "step": "fused" if engine.fused is not None else "autograd",
            "cuda_graphs": engine.graphs is not None,
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    # Per-event ranks (test-file order) first, so a record never points at a missing file.
    save_array_atomic(out_dir / "ranks.npy", result.ranks.numpy().astype(np.float32))
    write_json_atomic(out_dir / "result.json", record)
    if cfg.save_model and baseline is None:
        save_model(out_dir / "model.pt", model, hp, data.item_map)
    if trial is not None:
        from bench.study import record_to_trial

        record_to_trial(trial, record, str(out_dir / "result.json"))
    what = {"gru4rec": f"GRU4Rec loss={hp.loss} layers={hp.layers}",
            "gru4rec_seq": f"GRU4Rec BPTT over user histories layers={hp.layers}"}  # fmt: skip
    title = f"{data.name}: {what.get(method, f'baseline {method}')}"
    caption = f"{data.label}; {result.n_events} events, full ranking, {cfg.eval.tie_mode} ties"
    console.print(metrics_table(result.metrics, cfg.eval.cutoffs, title, caption))
    console.print(f"result record: {out_dir / 'result.json'}")
    return record


def _under_study_sweeper() -> bool:
    try:
        return "bench_optuna" in str(HydraConfig.get().sweeper.get("_target_", ""))
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path=_conf_dir(), config_name="run")
def main(cfg: DictConfig) -> float:
    """Exit status 2 on bad input, 3 on a diverged (NaN) training, each with one line.

    In a grid (`-m`) a failed job prints its line and the grid goes on; under the study
    sweeper the error propagates so that the trial is recorded as failed with its reason.
    """
    from bench.core.train import NaNLossError

    try:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        record = train_and_evaluate(cfg, out_dir)
    except (BenchError, NaNLossError) as e:
        if _under_study_sweeper():
            raise
        print(f"error: {e}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return float("nan")
        sys.exit(2 if isinstance(e, BenchError) else 3)
    return float(record["metrics"].get(cfg.eval.primary_metric, float("nan")))


if __name__ == "__main__":
    main()
