"""The Method interface: what the entry point needs from anything it trains and scores.

Each method owns its configuration (the knobs it reads, checked before any data is
loaded), builds itself, trains, and hands the shared evaluator a scorer; so `bench.run`
is one path for every method and the record states the settings that were really used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from bench.core.config import BPTTConfig, ConfigError, GRU4RecConfig
from bench.core.metrics import metric_names
from bench.errors import BenchError

# Every top-level knob of every method (null in conf/run.yaml unless the method sets it).
ALL_KNOBS = tuple(dict.fromkeys(GRU4RecConfig.knobs() + BPTTConfig.knobs()))


@dataclass
class FitContext:
    """What a method's training may call back into: per-epoch evaluation (validation split
    under a study, learning curves) and the console."""

    device: str
    seed: int
    console: object  # rich Console
    filter_seen: bool = False  # the evaluation's seen-item filtering, for a method's own validation
    # After each epoch: its stats -> the metrics evaluated there (pruning, learning
    # curves, early stopping), or None where the epoch was not evaluated (bench.epochs).
    epoch_hook: Callable | None = None
    checkpoint_dir: Path | None = None  # where last.ckpt goes (None: no checkpoints)
    resume: Path | None = None  # a checkpoint to continue from
    identity: dict | None = None  # what a checkpoint must match to be resumed here
    progress_bar: bool = False  # the epoch's progress bar (trainer.progress_bar, resolved)


class Method(ABC):
    name: str
    kind: str = "gru4rec"  # gru4rec | baseline
    training: str | None = None  # session_parallel | bptt | None
    knobs: tuple[str, ...] = ()  # the top-level knobs it reads
    evaluates_per_epoch = False  # whether `FitContext.epoch_hook` is called
    checkpoints = False  # whether it writes checkpoints and can resume from one
    reads_model = False  # whether it reads the `model` node (model.target, model.params)

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.scorer: torch.nn.Module | None = None
        self.best_epoch: int | None = None  # set when early stopping restored an epoch

    @property
    def monitors(self) -> bool:
        """Whether training stops early on the metric `FitContext.epoch_hook` returns (the
        hook must then evaluate every epoch)."""
        return False

    @classmethod
    def check_knobs(cls, cfg: DictConfig) -> None:
        """A knob set for a method that does not read it is an error, never ignored."""
        if cfg.get("model") is not None and not cls.reads_model:
            raise BenchError(
                f"model: not used by method {cls.describe_name()} (got {_show(cfg.model)}); "
                "model.target and model.params belong to model=external"
            )
        for knob in ALL_KNOBS:
            value = cfg.get(knob)
            if knob not in cls.knobs and value is not None:
                raise BenchError(
                    f"{knob}: not used by method {cls.describe_name()} (got {_show(value)}); "
                    f"{cls.knob_hint()}"
                )

    @classmethod
    def describe_name(cls) -> str:
        return cls.name

    @classmethod
    def knob_hint(cls) -> str:
        return f"its knobs are {', '.join(cls.knobs)}"

    def config_from(self, config_cls, cfg: DictConfig):
        try:
            return config_cls.from_settings({k: _plain(cfg.get(k)) for k in self.knobs})
        except ConfigError as e:
            raise BenchError(f"{self.name}: {e}") from None

    def load_data(self, cfg: DictConfig):
        from bench.datasets import load_dataset

        return load_dataset(OmegaConf.to_object(cfg.dataset), cfg.data_dir, cfg.split)

    @abstractmethod
    def fit(self, data, ctx: FitContext) -> list[dict]:
        """Train; build `self.scorer`; return one dict per epoch (empty if none)."""

    @abstractmethod
    def settings(self) -> dict:
        """The hyperparameters this run used, under the names a user sets them by."""

    @abstractmethod
    def title(self) -> str: ...

    def save(self, path: Path, data) -> None:
        """Write the trained model (methods without a saved form write nothing)."""
        return None

    def training_step(self) -> dict | None:
        return None


def _plain(value):
    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value


def _show(value) -> str:
    return repr(_plain(value))


def check_early_stopping(cfg: DictConfig, stop_metric: str) -> None:
    """Early stopping watches the evaluated split after each epoch: with split=final that
    is the test set, which would then choose the epoch reported on it."""
    if cfg.split != "tune":
        raise BenchError(
            "patience: early stopping watches the evaluated split, which with split=final is "
            "the test set; use split=tune (validation on train_valid), then train split=final "
            "for the best epoch's n_epochs"
        )
    if cfg.trainer.harness != "lightning":
        raise BenchError("patience: early stopping is Lightning's; use trainer.harness=lightning")
    if stop_metric not in metric_names(cfg.eval.cutoffs):
        raise BenchError(
            f"stop_metric: '{stop_metric}' is not computed at eval.cutoffs {list(cfg.eval.cutoffs)}"
        )
