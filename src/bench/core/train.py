"""The bare GRU4Rec training engine: session-parallel steps, sampled loss, sparse updates.

`SessionParallelTrainer.run_steps(a, b)` is the unit both the bare loop (`fit`) and the Lightning
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
from bench.core.graphs import GraphedStep
from bench.core.hand_derived import HandDerivedStep, hand_derived_supported
from bench.core.losses import compute_loss, log_q_shift
from bench.core.model import GRU4RecModel
from bench.core.negatives import NegativeSampler
from bench.core.optim import make_optimizer
from bench.core.schedule import DeviceSchedule, build_schedule
from bench.data.sessions import Sessions

# fused: hand-derived backward where supported (hand_derived.py); autograd: the reference path.
STEPS = ("fused", "autograd")
GRAPH_OPTIMIZERS = ("adagrad_m", "sgd")  # Adam's bias correction depends on a host counter


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
    eval: dict | None = None  # the metrics evaluated after this epoch, where it was evaluated

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
        } | ({"eval": self.eval} if self.eval is not None else {})


class SessionParallelTrainer:
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
        min_active = 1 if cfg.n_sample > 0 else 2
        plan = build_schedule(train.offsets, train.items, cfg.batch_size, min_active=min_active)
        self.schedule = DeviceSchedule(plan, self.device)
        self.sampler = self._sampler(support)
        self.log_p = self._log_p(support)
        self.log_q = self._log_q_tables()
        # The hand-derived step where the loss and input mode allow it (see hand_derived.py).
        self.hand_derived = (
            HandDerivedStep(self.model, cfg.loss, cfg.bpreg, cfg.elu_param, log_q=self.log_q)
            if step == "fused" and hand_derived_supported(self.model, cfg.loss)
            else None
        )
        self.H: list[torch.Tensor] = []
        self.loss_sum = torch.zeros((), device=self.device)
        self.epoch = 0
        self.graphed: GraphedStep | None = None
        self.full_width = False  # this epoch's steps still go through `graphed`
        on_gpu = self.device.type == "cuda"
        if cuda_graphs and not on_gpu:
            raise TrainingSetupError("cuda_graphs: needs a CUDA device; set it to false or auto")
        if cuda_graphs or (cuda_graphs is None and on_gpu and self.graph_safe() is None):
            self.use_graphed_step(capture=True)

    def _sampler(self, support: np.ndarray) -> NegativeSampler | None:
        cfg = self.cfg
        if cfg.n_sample <= 0:
            return None
        return NegativeSampler(
            support,
            cfg.n_sample,
            cfg.sample_alpha,
            cfg.sample_store_size,
            self.device,
            self.generator,
        )

    def _log_p(self, support: np.ndarray) -> torch.Tensor | None:
        """logQ correction: raw support for in-batch targets (support^alpha for samples)."""
        if self.cfg.loss != "ce" or self.cfg.logq <= 0:
            return None
        return torch.log(
            torch.as_tensor(np.maximum(support, 1.0), dtype=torch.float32, device=self.device)
        )

    def graph_safe(self) -> str | None:
        """Why full-width steps cannot run from fixed buffers (None: they can)."""
        if self.hand_derived is None:
            return (
                "needs the hand-derived step (trainer.step=fused, loss ce or bpr-max, an embedding)"
            )
        if self.cfg.optimizer not in GRAPH_OPTIMIZERS:
            return f"needs optimizer {' or '.join(GRAPH_OPTIMIZERS)}"
        return None

    def use_graphed_step(self, capture: bool, warmup: int = 3) -> None:
        """Run full-width steps through fixed buffers, replayed from a CUDA graph when
        `capture` (capture=False runs the same buffers eagerly, as tests do on a CPU)."""
        why = self.graph_safe()
        if why is not None:
            raise TrainingSetupError(f"cuda_graphs: {why}; set it to false or auto")
        self.optimizer.static_rows = True  # deduplicate rows without a host sync
        self.graphed = GraphedStep(
            self.train_on,
            self.schedule.initial_width,
            self.model.layers,
            self.cfg.n_sample,
            self.device,
            capture,
            warmup,
        )

    @property
    def n_steps(self) -> int:
        return self.schedule.n_steps

    @property
    def n_events(self) -> int:
        return self.schedule.schedule.n_events

    def events_before(self, step: int) -> int:
        """Events an epoch has trained on before `step` (for progress bars)."""
        return int(self.schedule.schedule.step_offsets[step])

    def start_epoch(self) -> None:
        self.model.train()
        self.H = self.model.init_hidden(self.schedule.initial_width, self.device)
        self.loss_sum.zero_()  # in place: a captured graph adds to this very tensor
        if self.graphed is not None:
            self.graphed.reset_hidden()
            self.full_width = True

    def _log_q_tables(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The logQ shift per item as a target and as a sample (losses.log_q_shift gathers
        them per step); without sampling (no sample_alpha) only the first is ever read."""
        if self.log_p is None:
            return None
        as_target = self.cfg.logq * self.log_p
        if self.sampler is None:
            return as_target, as_target
        return as_target, self.cfg.logq * (self.cfg.sample_alpha * self.log_p)

    def run_steps(self, a: int, b: int) -> None:
        """Train steps [a, b) of the current epoch; the loss accumulates on the device.
        With a graphed step, steps go through it while the batch is full; when the batch
        first shrinks (end of the epoch) the state is handed back and the rest run eagerly."""
        for s in range(a, b):
            x, y, carry, keep = self.schedule.step(s)
            if self.full_width:
                if keep is None and x.shape[0] == self.graphed.width:
                    negatives = self.sampler.next() if self.sampler is not None else None
                    self.graphed(x, y, carry, negatives)
                    continue
                self.full_width = False
                self.H = self.graphed.hidden()
            self._step(x, y, carry, keep)

    def _step(self, x, y, carry, keep) -> None:
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
        The eager steps and the graphed steps (graphs.py) both train through here."""
        cfg = self.cfg
        sparse: list = []
        if self.hand_derived is not None:
            idx = torch.cat([x, y, negatives] if negatives is not None else [x, y])
            L = self.hand_derived(idx, x.shape[0], H, sparse, cfg.batch_size)
        else:
            cols = torch.cat([y, negatives]) if negatives is not None else y
            log_q = log_q_shift(self.log_q, cols, y.shape[0]) if self.log_q is not None else None
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

    def state_dict(self) -> dict:
        """Everything but the model and optimizer that an interrupted run needs to go on
        exactly as if it had not stopped: the epoch counter, the negative sampler (its
        generator and store position), and the global generator that draws dropout masks."""
        state = {"epoch": self.epoch, "dropout_rng": dropout_rng_state(self.device)}
        if self.sampler is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        set_dropout_rng_state(state["dropout_rng"], self.device)

    def epoch_state(self) -> dict:
        """Mid-epoch: the session-parallel hidden states and the loss summed so far."""
        H = self.graphed.hidden() if self.full_width else self.H
        return {
            "H": [h.detach().cpu() for h in H],
            "loss_sum": self.loss_sum.detach().cpu(),
            "full_width": self.full_width,
        }

    def load_epoch_state(self, state: dict) -> None:
        """Continue an epoch from `epoch_state()` (instead of `start_epoch()`)."""
        self.model.train()
        H = [h.to(self.device) for h in state["H"]]
        self.loss_sum.copy_(state["loss_sum"])
        self.full_width = bool(state["full_width"]) and self.graphed is not None
        if self.full_width:
            for buf, h in zip(self.graphed.H, H):
                buf.copy_(h)
        else:
            self.H = H

    def end_epoch(self, seconds: float) -> EpochStats:
        total = self.check_finite("end of epoch")
        stats = EpochStats(
            self.epoch, total / max(1, self.n_steps), seconds, self.n_steps, self.n_events
        )
        self.epoch += 1
        return stats


def dropout_rng_state(device: torch.device) -> dict:
    """The global generators' state (dropout masks draw from them), for checkpoints."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_dropout_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def run_chunked(engine: SessionParallelTrainer, a: int, b: int, chunk: int = 500) -> None:
    """Steps [a, b) of the current epoch as the bare loop runs them: the loss read back
    (NaN caught) every `chunk` steps, the device synchronised at the end, so that a timer
    around the call measures finished work."""
    for s in range(a, b, chunk):
        engine.run_steps(s, min(s + chunk, b))
        engine.check_finite(f"step {s + chunk}")
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def fit(
    engine: SessionParallelTrainer,
    n_epochs: int | None = None,
    chunk: int = 500,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """The bare core loop (no Lightning): the reference point for harness overhead."""
    history = []
    for _ in range(n_epochs if n_epochs is not None else engine.cfg.n_epochs):
        engine.start_epoch()
        t0 = time.perf_counter()
        run_chunked(engine, 0, engine.n_steps, chunk)
        stats = engine.end_epoch(time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history
