"""Hyperparameters of the GRU4Rec methods as plain dataclasses (no torch): the one list
of each method's knobs, which of them a setting switches off, and their checks.

The official GRU4Rec takes every knob whatever the loss (`bpreg` with cross-entropy is
silently ignored there); here a knob that the other settings switch off must be left
unset, so that a configuration, and the record written from it, lists only what acted.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import ClassVar

from bench.knob_types import mismatch

LOSSES = ("ce", "bpr-max", "top1-max", "top1", "bpr")
ALIASES = {"cross-entropy": "ce", "xe": "ce", "bpr_max": "bpr-max", "top1_max": "top1-max"}


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in LOSSES:
        raise ValueError(f"loss: unknown '{name}'; expected one of {', '.join(LOSSES)}")
    return name


class ConfigError(ValueError):
    """A hyperparameter out of range, or set for a method that does not use it."""


@dataclass
class NetworkConfig:
    """The GRU network's own settings, shared by session-parallel and BPTT training."""

    layers: list[int] = field(default_factory=lambda: [100])
    embedding: int | None = None  # used only without a constrained embedding (0: one-hot)
    constrained_embedding: bool = True
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0

    # knob -> default, for knobs that only some settings read (see `unused`).
    conditional: ClassVar[dict] = {"embedding": 0}

    def unused(self) -> dict[str, str]:
        """Knob -> why it is not read, for the knobs the other settings switch off."""
        return {"embedding": "constrained_embedding=true"} if self.constrained_embedding else {}

    def __post_init__(self):
        self.layers = [int(x) for x in self.layers]
        unused = self.unused()
        for name, default in type(self).conditional.items():
            value = getattr(self, name)
            if name in unused and value is not None:
                raise ConfigError(f"{name}: not used with {unused[name]}; remove it")
            if name not in unused and value is None:
                setattr(self, name, default)
        for ok, name, expected in self.checks():
            if not ok:
                raise ConfigError(f"{name}: got {getattr(self, name)!r}, expected {expected}")

    def checks(self) -> list[tuple[bool, str, str]]:
        return [
            (
                len(self.layers) > 0 and min(self.layers) > 0,
                "layers",
                "a non-empty list of positive sizes",
            ),
            (0 <= self.dropout_p_embed < 1, "dropout_p_embed", "in [0, 1)"),
            (0 <= self.dropout_p_hidden < 1, "dropout_p_hidden", "in [0, 1)"),
            (self.embedding is None or self.embedding >= 0, "embedding", ">= 0"),
        ]

    def effective(self) -> dict:
        """Exactly the knobs this configuration reads, under their official names."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        """Every knob the method may read; the single list the harness checks against."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @staticmethod
    def network_knobs() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(NetworkConfig))

    @classmethod
    def from_settings(cls, settings: dict, drop_unused: bool = False):
        """From a dict of knobs. `drop_unused` first drops the knobs these settings do not
        read: older records and checkpoints listed every knob whatever the loss."""
        unknown = sorted(set(settings) - set(cls.knobs()))
        if unknown and not drop_unused:
            raise ConfigError(f"{', '.join(unknown)}: not a knob of {cls.__name__}")
        known = {k: v for k, v in settings.items() if k in cls.knobs()}
        hints = typing.get_type_hints(cls)
        for name, value in known.items():
            problem = mismatch(name, value, hints[name])
            if problem:
                raise ConfigError(problem)
        if drop_unused:
            fixed = {k: v for k, v in known.items() if k not in cls.conditional}
            unused = cls(**fixed).unused()
            known = {k: v for k, v in known.items() if k not in unused}
        return cls(**known)


# Which loss reads which loss-specific knob (the others ignore it).
LOSS_KNOBS = {
    "logq": ("ce",),
    "bpreg": ("bpr-max",),
    "elu_param": ("bpr-max", "top1-max", "top1", "bpr"),
}
OPTIMIZER_NAMES = ("adagrad_m", "adam", "sgd")
MOMENTUM_OPTIMIZERS = ("adagrad_m", "sgd")  # Adam has no momentum knob


@dataclass
class GRU4RecConfig(NetworkConfig):
    """Session-parallel GRU4Rec under the official names (paramfiles map one to one).

    Conditional knobs default to None: filled with the official default where the loss,
    sampling and optimizer read them, and an error where they do not, so that a
    configuration (and the record written from it) never lists a knob that had no effect.
    """

    loss: str = "ce"
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float | None = None
    n_sample: int = 2048
    sample_alpha: float | None = None
    sample_store_size: int | None = None
    n_epochs: int = 10
    bpreg: float | None = None
    elu_param: float | None = None
    logq: float | None = None
    optimizer: str = "adagrad_m"
    # Not in the official code (it trains n_epochs): early stopping when `patience` is set.
    patience: int | None = None  # epochs without a better stop_metric before stopping
    stop_metric: str | None = None  # the validation metric early stopping watches

    conditional: ClassVar[dict] = {
        "embedding": 0,
        "momentum": 0.0,
        "sample_alpha": 0.5,
        "sample_store_size": 10_000_000,
        "bpreg": 1.0,
        "elu_param": 0.5,
        "logq": 0.0,
        "stop_metric": "mrr@20",
    }

    def __post_init__(self):
        try:
            self.loss = canonical(self.loss)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(
                f"optimizer: unknown '{self.optimizer}'; expected one of "
                f"{', '.join(OPTIMIZER_NAMES)}"
            )
        super().__post_init__()

    def unused(self) -> dict[str, str]:
        why = super().unused()
        for knob, losses in LOSS_KNOBS.items():
            if self.loss not in losses:
                why[knob] = f"loss={self.loss}"
        if self.n_sample == 0:
            why["sample_alpha"] = why["sample_store_size"] = "n_sample=0 (in-batch negatives only)"
        if self.optimizer not in MOMENTUM_OPTIMIZERS:
            why["momentum"] = f"optimizer={self.optimizer}"
        if self.patience is None:
            why["stop_metric"] = "patience unset (no early stopping: n_epochs are trained)"
        return why

    def checks(self) -> list[tuple[bool, str, str]]:
        return [
            *super().checks(),
            (self.batch_size >= 1, "batch_size", "a positive integer"),
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.momentum is None or self.momentum >= 0, "momentum", ">= 0"),
            (self.n_sample >= 0, "n_sample", ">= 0"),
            (self.sample_alpha is None or self.sample_alpha >= 0, "sample_alpha", ">= 0"),
            (self.n_epochs >= 1, "n_epochs", ">= 1"),
            (self.elu_param is None or self.elu_param >= 0, "elu_param", ">= 0"),
            (self.logq is None or self.logq >= 0, "logq", ">= 0"),
            (
                self.sample_store_size is None or self.sample_store_size >= 0,
                "sample_store_size",
                ">= 0",
            ),
            (self.patience is None or self.patience >= 1, "patience", "a positive integer or null"),
        ]


@dataclass
class BPTTConfig(NetworkConfig):
    """Sequence-aware GRU4Rec: the network knobs plus the BPTT training knobs. The shared
    names (batch_size, learning_rate, n_epochs, n_sample, sample_alpha) mean what they mean
    for session-parallel GRU4Rec: here users per Adam step, Adam's rate, and so on."""

    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam
    n_epochs: int = 100  # upper bound; early stopping usually ends sooner
    n_sample: int = 0  # 0: full softmax over all items
    sample_alpha: float | None = None  # negatives by support^alpha, when n_sample > 0
    max_len: int = 200  # last items of each history used for training
    patience: int = 10  # epochs without a better validation metric before stopping
    stop_metric: str = "ndcg@10"  # early-stopping metric on the validation item

    conditional: ClassVar[dict] = {"embedding": 0, "sample_alpha": 0.0}

    def unused(self) -> dict[str, str]:
        why = super().unused()
        if self.n_sample == 0:
            why["sample_alpha"] = "n_sample=0 (full softmax)"
        return why

    def checks(self) -> list[tuple[bool, str, str]]:
        return [
            *super().checks(),
            *[
                (getattr(self, k) >= 1, k, "a positive integer")
                for k in ("max_len", "batch_size", "n_epochs", "patience")
            ],
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.n_sample >= 0, "n_sample", ">= 0"),
            (self.sample_alpha is None or self.sample_alpha >= 0, "sample_alpha", ">= 0"),
        ]
