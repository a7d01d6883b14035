"""The bare GRU4Rec training engine: session-parallel steps, sampled loss, sparse updates.

`Engine.run_steps(a, b)` is the unit both the bare loop (`fit`) and the Lightning
module drive, so the harness adds no per-step work of its own. The loss is summed on
the device and only read (synchronising the device) once per chunk of steps, where a
NaN stops training with a clear error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bench.core.config import GRU4RecConfig
from bench.core.fused import FusedStep, fused_supported
from bench.core.graphs import GRAPH_OPTIMIZERS, StaticSteps
from bench.core.losses import compute_loss
from bench.core.model import GRU4RecModel
from bench.core.negatives import NegativeSampler
from bench.core.optim import make_optimizer
from bench.core.schedule import DeviceSchedule, build_schedule
from bench.data.sessions import Sessions

# fused: hand-derived backward where supported (fused.py); autograd: the reference path.
STEPS = ("fused", "autograd")


class NaNLossError(RuntimeError):
    """Training diverged; the message says where and what to try."""


class TrainingSetupError(ValueError):
    """A training option (step, cuda_graphs) that cannot run here; names the option."""


@dataclass
class EpochStats:
    epoch: int
    loss: float
    seconds: float
    steps: int
    events: int
    harness_overhead: float | None = None  # set by a harness that wraps the core loop

    @property
    def minibatches_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        return (
            f"Epoch {self.epoch + 1} --> loss: {self.loss:.6f} ({self.seconds:.2f}s) "
            f"[{self.minibatches_per_s:.2f} mb/s | {self.events_per_s:.0f} e/s]"
        )

    def as_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "seconds": self.seconds,
            "steps": self.steps,
            "events": self.events,
            "minibatches_per_s": self.minibatches_per_s,
            "events_per_s": self.events_per_s,
            "harness_overhead": self.harness_overhead,
        }


class Engine:
    """Model, optimizer, device-resident schedule and negative sampler for one training run."""

    def __init__(
        self,
        cfg: GRU4RecConfig,
        train: Sessions,
        n_items: int,
        device: str | torch.device = "cpu",
        seed: int = 42,
        step: str = "fused",
        cuda_graphs: bool | None = None,
    ):
        if step not in STEPS:
            raise TrainingSetupError(f"step: unknown '{step}'; expected one of {', '.join(STEPS)}")
        self.cfg = cfg
        self.device = torch.device(device)
        self.n_items = n_items
        torch.manual_seed(seed)  # dropout masks draw from the global generator
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        init_gen = torch.Generator().manual_seed(seed)
        self.model = GRU4RecModel(n_items, cfg)
        self.model.reset_parameters(init_gen)
        self.model.to(self.device)
        sparse_ids = {id(p) for p in self.model.sparse_tables()}
        self.dense_params = [p for p in self.model.parameters() if id(p) not in sparse_ids]
        self.optimizer = make_optimizer(
            cfg.optimizer, self.model.parameters(), cfg.learning_rate, cfg.momentum
        )
        support = train.support(n_items)
        self.schedule = DeviceSchedule(
            build_schedule(
                train.offsets, train.items, cfg.batch_size, min_active=1 if cfg.n_sample > 0 else 2
            ),
            self.device,
        )
        self.sampler = (
            NegativeSampler(
                support,
                cfg.n_sample,
                cfg.sample_alpha,
                cfg.sample_store_size,
                self.device,
                self.generator,
            )
            if cfg.n_sample > 0
            else None
        )
        self.log_p = None
        if cfg.loss == "ce" and cfg.logq > 0:
            # logQ correction: raw support for in-batch targets, support^alpha for samples.
            self.log_p = torch.log(
                torch.as_tensor(np.maximum(support, 1.0), dtype=torch.float32, device=self.device)
            )
        # The hand-derived step where the loss and input mode allow it (see fused.py).
        self.fused = (
            FusedStep(self.model, cfg.loss, cfg.bpreg, cfg.elu_param)
            if step == "fused" and fused_supported(self.model, cfg.loss)
            else None
        )
        self.H: list[torch.Tensor] = []
        self.loss_sum = torch.zeros((), device=self.device)
        self.epoch = 0
        self.graphs = self._make_graphs(cuda_graphs)

    def _make_graphs(self, cuda_graphs: bool | None) -> StaticSteps | None:
        """Replay full-width steps from a CUDA graph: by default wherever it is possible."""
        possible = (
            self.device.type == "cuda"
            and self.fused is not None
            and self.cfg.optimizer in GRAPH_OPTIMIZERS
        )
        if cuda_graphs and not possible:
            raise TrainingSetupError(
                "cuda_graphs: needs a CUDA device, loss ce or bpr-max with an embedding, and "
                f"optimizer {' or '.join(GRAPH_OPTIMIZERS)}; set it to false or auto"
            )
        if cuda_graphs is False or not possible:
            return None
        return StaticSteps(self, capture=True)

    @property
    def n_steps(self) -> int:
        return self.schedule.n_steps

    @property
    def n_events(self) -> int:
        return self.schedule.schedule.n_events

    def start_epoch(self) -> None:
        self.model.train()
        self.H = self.model.init_hidden(self.schedule.initial_width, self.device)
        self.loss_sum.zero_()  # in place: a captured graph adds to this very tensor
        if self.graphs is not None:
            self.graphs.start_epoch()

    def _log_q(self, y_target: torch.Tensor, negatives: torch.Tensor | None) -> torch.Tensor:
        lp = self.log_p.index_select(0, y_target)
        if negatives is not None:
            lp = torch.cat([lp, self.cfg.sample_alpha * self.log_p.index_select(0, negatives)])
        return self.cfg.logq * lp

    def run_steps(self, a: int, b: int) -> None:
        """Train steps [a, b) of the current epoch; the loss accumulates on the device."""
        if self.graphs is not None:
            self.graphs.run(a, b, self._step)
            return
        for s in range(a, b):
            self._step(s)

    def _step(self, s: int) -> None:
        x, y, carry, keep = self.schedule.step(s)
        H = self.H
        if keep is not None:
            H = [h.index_select(0, keep) for h in H]
        if carry is not None:
            H = [h * carry for h in H]
        H = [h.detach() for h in H]
        negatives = self.sampler.next() if self.sampler is not None else None
        self.train_on(x, y, negatives, H)
        self.H = H

    def train_on(
        self, x: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor | None, H: list
    ) -> None:
        """One update on inputs x, targets y and shared negatives from the detached states
        H, which are replaced in place by the new ones; the loss is added to loss_sum.
        The eager steps and the CUDA-graph steps (graphs.py) both train through here."""
        cfg = self.cfg
        cols = torch.cat([y, negatives]) if negatives is not None else y
        sparse: list = []
        log_q = self._log_q(y, negatives) if self.log_p is not None else None
        if self.fused is not None:
            L = self.fused(x, cols, H, sparse, cfg.batch_size, log_q)
        else:
            O = self.model.step_sampled(x, cols, H, sparse, training=True)
            L = (
                compute_loss(cfg.loss, O, bpreg=cfg.bpreg, elu_param=cfg.elu_param, log_q=log_q)
                / cfg.batch_size
            )
            for p in self.dense_params:
                p.grad = None
            L.backward()
            sparse = [(t, i, r.grad) for t, i, r in sparse if r.grad is not None]
        self.optimizer.update(sparse)
        self.loss_sum.add_(L.detach())

    def check_finite(self, where: str) -> float:
        """Read the accumulated loss (one device sync) and stop on NaN/inf."""
        value = float(self.loss_sum)
        if not np.isfinite(value):
            raise NaNLossError(
                f"training diverged: loss became {value} in epoch {self.epoch + 1} ({where}); "
                "lower learning_rate/momentum or use loss=ce"
            )
        return value

    def end_epoch(self, seconds: float) -> EpochStats:
        total = self.check_finite("end of epoch")
        stats = EpochStats(
            self.epoch, total / max(1, self.n_steps), seconds, self.n_steps, self.n_events
        )
        self.epoch += 1
        return stats


def fit(
    engine: Engine,
    n_epochs: int | None = None,
    chunk: int = 500,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """The bare core loop (no Lightning): the reference point for harness overhead."""
    history = []
    for _ in range(n_epochs if n_epochs is not None else engine.cfg.n_epochs):
        engine.start_epoch()
        t0 = time.perf_counter()
        for a in range(0, engine.n_steps, chunk):
            engine.run_steps(a, min(a + chunk, engine.n_steps))
            engine.check_finite(f"step {a + chunk}")
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        stats = engine.end_epoch(time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history
