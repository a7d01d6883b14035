"""Lightning around the two training modes: checkpoints that resume, early stopping,
progress bars, interrupts.

Session-parallel GRU4Rec: Lightning sees one "batch" per chunk of session-parallel steps
(manual optimisation), so its per-batch machinery runs once per chunk rather than once
per mini-batch and the harness stays within a few percent of the bare core loop (see
benchmarks/throughput.py). BPTT over user histories: one Adam step per batch of users
(automatic optimisation). Both keep their own batch pointer and random state in the
checkpoint, so a run resumed from the end of an epoch or from the middle of one
(SIGTERM/SIGINT) continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch.utils.data import DataLoader

from bench import interrupts
from bench.api import SessionModel
from bench.atomic import atomic_path
from bench.core.bptt import padded_sequences, sequence_loss
from bench.core.config import BPTTConfig
from bench.core.model import GRU4RecModel
from bench.core.negatives import NegativeSampler
from bench.core.prefixes import TrainingPrefixes
from bench.core.train import (
    EpochStats,
    NaNLossError,
    SessionParallelTrainer,
    dropout_rng_state,
    set_dropout_rng_state,
)
from bench.data.sessions import Sessions
from bench.errors import BenchError, TrainingInterrupted


class ResumableModule(pl.LightningModule):
    """What both training modes share: an epoch of `n_batches()` batches driven by the
    module's own pointer (after a mid-epoch resume Lightning's data loader starts again
    from its first element, but the pointer continues where the run stopped), the
    per-epoch history, the monitored metric logged for EarlyStopping, and the checkpoint
    content (random state, position in the epoch, history, the run's identity)."""

    def __init__(self, identity: dict, monitor: str | None, epoch_hook: Callable | None):
        super().__init__()
        self.identity = identity  # a resumed run must be the same run (method, settings, data)
        self.monitor = monitor
        self.epoch_hook = epoch_hook  # per epoch: stats -> evaluated metrics (or None)
        self.history: list = []
        self.in_epoch = False
        self.resuming = False
        self.next_batch = 0
        self.t0 = 0.0
        self.elapsed_before = 0.0  # seconds of this epoch before a mid-epoch resume

    # Each mode provides: its batches, an epoch's start and end (-> stats with .line() and
    # .as_dict()), and its state between epochs and within one.
    def n_batches(self) -> int:
        raise NotImplementedError

    def start_epoch(self) -> None:
        raise NotImplementedError

    def run_batch(self, i: int):
        raise NotImplementedError

    def finish_epoch(self, seconds: float):
        raise NotImplementedError

    def training_state(self) -> dict:
        raise NotImplementedError

    def load_training_state(self, state: dict) -> None:
        raise NotImplementedError

    def epoch_state(self) -> dict:
        raise NotImplementedError

    def load_epoch_state(self, state: dict) -> None:
        raise NotImplementedError

    def history_from(self, rows: list[dict]) -> list:
        raise NotImplementedError

    def progress(self) -> tuple[int, int, str]:
        """(done, total, unit) of the epoch in progress, for the progress bar."""
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        # Its own generator: a DataLoader draws a seed for its workers each time it starts an
        # epoch, from the global generator otherwise, which also draws the dropout masks;
        # a run resumed mid-epoch would draw that seed a second time.
        return DataLoader(
            range(self.n_batches()), batch_size=None, shuffle=False, generator=torch.Generator()
        )

    def on_train_start(self) -> None:
        self.t0 = time.perf_counter() - self.elapsed_before

    def on_train_epoch_start(self) -> None:
        if not self.resuming:  # a mid-epoch resume continues the restored epoch instead
            self.start_epoch()
            self.next_batch = 0
            self.t0 = time.perf_counter()
        self.in_epoch = True

    def training_step(self, batch, batch_idx):
        if batch_idx != self.next_batch:
            raise RuntimeError(f"batch {batch_idx} out of order: expected {self.next_batch}")
        out = self.run_batch(self.next_batch)
        self.next_batch += 1
        return out

    def on_train_epoch_end(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        stats = self.finish_epoch(time.perf_counter() - self.t0)
        self.in_epoch = self.resuming = False
        self.history.append(stats)
        self.print(stats.line())
        values = self.epoch_hook(stats) if self.epoch_hook is not None else None
        if self.monitor is not None:
            if not values or self.monitor not in values:
                raise RuntimeError(f"early stopping needs {self.monitor} after every epoch")
            self.log(self.monitor, float(values[self.monitor]))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        mid = None
        if self.in_epoch:
            mid = {
                **self.epoch_state(),
                "next_batch": self.next_batch,
                "elapsed": time.perf_counter() - self.t0,
            }
        checkpoint["bench"] = {
            "identity": self.identity,
            "state": self.training_state(),
            "history": [s.as_dict() for s in self.history],
            "mid_epoch": mid,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("bench")
        if saved is None:
            raise BenchError("resume: not a gru4rec-bench checkpoint (no run state in it)")
        differ = sorted(
            k
            for k in set(saved["identity"]) | set(self.identity)
            if saved["identity"].get(k) != self.identity.get(k)
        )
        if differ:
            k = differ[0]
            raise BenchError(
                f"resume: the checkpoint is of another run ({k}: {saved['identity'].get(k)!r} "
                f"there, {self.identity.get(k)!r} here); resume with the same options"
            )
        self.load_training_state(saved["state"])
        self.history = self.history_from(saved["history"])
        mid = saved["mid_epoch"]
        done = len(self.history)
        if mid is not None:
            self.load_epoch_state(mid)
            self.next_batch = int(mid["next_batch"])
            self.elapsed_before = float(mid["elapsed"])
            self.resuming = True
        where = (
            f"in epoch {done + 1} at batch {self.next_batch} of {self.n_batches()}"
            if mid
            else (f"after epoch {done}")
        )
        print(f"resumed from the checkpoint {where}", flush=True)


class GRU4RecModule(ResumableModule):
    """Session-parallel GRU4Rec: the core engine's steps, in chunks."""

    def __init__(
        self,
        engine: SessionParallelTrainer,
        chunk_steps: int = 500,
        epoch_hook: Callable[[EpochStats], dict | None] | None = None,
        identity: dict | None = None,
        monitor: str | None = None,
    ):
        """`epoch_hook` runs after each epoch (validation, reporting to a study trial) and
        returns the metrics it evaluated (the monitored one among them when early stopping)."""
        super().__init__(identity or {}, monitor, epoch_hook)
        self.automatic_optimization = False
        self.engine = engine
        self.model = engine.model  # registered so Lightning sees (and checkpoints) it
        n = engine.n_steps
        self.chunks = [(a, min(a + chunk_steps, n)) for a in range(0, n, chunk_steps)]
        self.core_s = 0.0

    def n_batches(self) -> int:
        return len(self.chunks)

    def configure_optimizers(self):
        return self.engine.optimizer

    def start_epoch(self) -> None:
        self.engine.start_epoch()
        self.core_s = 0.0

    def run_batch(self, i: int) -> None:
        a, b = self.chunks[i]
        t0 = time.perf_counter()
        self.engine.run_steps(a, b)
        self.engine.check_finite(f"step {b}")
        self.core_s += time.perf_counter() - t0

    def finish_epoch(self, seconds: float) -> EpochStats:
        stats = self.engine.end_epoch(seconds)
        # Share of the epoch spent in Lightning rather than in the core loop, measured in
        # the same run (immune to the machine-wide noise that skews separate runs).
        stats.harness_overhead = 1.0 - self.core_s / stats.seconds if stats.seconds > 0 else 0.0
        return stats

    def training_state(self) -> dict:
        return self.engine.state_dict()

    def load_training_state(self, state: dict) -> None:
        self.engine.load_state_dict(state)

    def epoch_state(self) -> dict:
        return {**self.engine.epoch_state(), "core_s": self.core_s}

    def load_epoch_state(self, state: dict) -> None:
        self.engine.load_epoch_state(state)
        self.core_s = float(state["core_s"])

    def history_from(self, rows: list[dict]) -> list[EpochStats]:
        keep = ("epoch", "loss", "seconds", "steps", "events", "harness_overhead")
        return [EpochStats(**{k: r[k] for k in keep}, eval=r.get("eval")) for r in rows]

    def progress(self) -> tuple[int, int, str]:
        step = self.chunks[self.next_batch][0] if self.next_batch < len(self.chunks) else None
        done = self.engine.events_before(step) if step is not None else self.engine.n_events
        return done, self.engine.n_events, "events"


@dataclass
class SeqEpoch:
    epoch: int
    loss: float
    seconds: float
    valid: dict[str, float]
    steps: int = 0  # Adam steps taken
    learning_rate: float = 0.0  # as the optimizer held it
    shown: str = "ndcg@10"  # the metric the epoch line shows (the stopping metric)

    def as_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "seconds": self.seconds,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "eval": self.valid,
        }

    def line(self) -> str:
        return (
            f"Epoch {self.epoch + 1} --> loss: {self.loss:.4f} ({self.seconds:.1f}s), "
            f"validation {self.shown} {self.valid[self.shown]:.4f}"
        )


class SequenceModule(ResumableModule):
    """BPTT over user histories (core.bptt): Adam epochs over the users in a random order
    drawn from the run's generator; `validate` scores each user's validation item."""

    def __init__(
        self,
        model: GRU4RecModel,
        train: Sessions,
        cfg: BPTTConfig,
        validate: Callable[[], dict[str, float]],
        seed: int,
        identity: dict | None = None,
    ):
        super().__init__(identity or {}, cfg.stop_metric, lambda stats: stats.valid)
        self.model = model
        self.cfg = cfg
        self.validate = validate
        self.gen = torch.Generator().manual_seed(seed)
        self.x_all, self.y_all = padded_sequences(train, cfg.max_len)
        self.sampler = None
        if cfg.n_sample > 0:
            support = train.support(model.n_items)
            self.sampler = NegativeSampler(
                support,
                cfg.n_sample,
                cfg.sample_alpha,
                1000 * cfg.n_sample,
                torch.device("cpu"),
                self.gen,
            )
        self.order = torch.arange(len(self.x_all))
        self.total = self.count = self.steps = 0

    def n_batches(self) -> int:
        return math.ceil(len(self.x_all) / self.cfg.batch_size)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.learning_rate)

    def start_epoch(self) -> None:
        self.model.train()
        self.order = torch.randperm(len(self.x_all), generator=self.gen)
        self.total, self.count, self.steps = 0.0, 0, 0

    def run_batch(self, i: int) -> torch.Tensor:
        idx = self.order[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]
        x, y = self.x_all[idx], self.y_all[idx]
        width = int((y >= 0).sum(1).max())
        x, y = x[:, :width].to(self.device), y[:, :width].to(self.device)  # trim common padding
        negatives = self.sampler.next().to(self.device) if self.sampler is not None else None
        loss = sequence_loss(self.model, x, y, negatives)
        self.total += loss.item() * len(idx)
        self.count += len(idx)
        self.steps += 1
        return loss

    def finish_epoch(self, seconds: float) -> SeqEpoch:
        valid = self.validate()
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        return SeqEpoch(
            len(self.history),
            self.total / max(self.count, 1),
            seconds,
            valid,
            self.steps,
            lr,
            self.cfg.stop_metric,
        )

    def training_state(self) -> dict:
        # The generator also shuffles the users, so it is saved with or without a sampler.
        state = {"generator": self.gen.get_state(), "dropout_rng": dropout_rng_state(self.device)}
        if self.sampler is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_training_state(self, state: dict) -> None:
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.gen.set_state(state["generator"])
        set_dropout_rng_state(state["dropout_rng"], self.device)

    def epoch_state(self) -> dict:
        return {"order": self.order, "total": self.total, "count": self.count, "steps": self.steps}

    def progress(self) -> tuple[int, int, str]:
        return self.count, len(self.x_all), "users"

    def load_epoch_state(self, state: dict) -> None:
        self.model.train()
        self.order = state["order"]
        self.total, self.count, self.steps = state["total"], state["count"], state["steps"]

    def history_from(self, rows: list[dict]) -> list[SeqEpoch]:
        return [
            SeqEpoch(
                r["epoch"],
                r["loss"],
                r["seconds"],
                r["eval"],
                r["steps"],
                r["learning_rate"],
                self.cfg.stop_metric,
            )
            for r in rows
        ]


class PrefixModule(ResumableModule):
    """A model of the public interface (bench.api.SessionModel) on every training prefix:
    one step of the optimizers it configures per batch of `batch_size` prefixes, in an
    order drawn each epoch from the run's generator (SR-GNN's own code shuffles its
    augmented pairs each epoch the same way)."""

    def __init__(
        self,
        model: SessionModel,
        prefixes: TrainingPrefixes,
        batch_size: int,
        seed: int,
        identity: dict | None = None,
        monitor: str | None = None,
        epoch_hook: Callable[[EpochStats], dict | None] | None = None,
    ):
        super().__init__(identity or {}, monitor, epoch_hook)
        self.model = model
        self.prefixes = prefixes
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.arange(len(prefixes))
        self.total = torch.zeros((), dtype=torch.float64)  # summed on the device: no sync per step
        self.count = self.steps = 0

    def n_batches(self) -> int:
        return math.ceil(len(self.prefixes) / self.batch_size)

    def configure_optimizers(self):
        return self.model.configure_optimizers()

    def start_epoch(self) -> None:
        self.model.train()
        self.order = torch.randperm(len(self.prefixes), generator=self.gen).to(self.device)
        self.total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.count = self.steps = 0

    def run_batch(self, i: int) -> torch.Tensor:
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        loss = self.model.loss(*self.prefixes.batch(idx))
        self.total += loss.detach() * len(idx)
        self.count += len(idx)
        self.steps += 1
        return loss

    def finish_epoch(self, seconds: float) -> EpochStats:
        mean = float(self.total) / max(self.count, 1)
        if not math.isfinite(mean):
            raise NaNLossError(
                f"training diverged: loss became {mean} in epoch {len(self.history) + 1}; "
                "lower the model's learning rate"
            )
        return EpochStats(len(self.history), mean, seconds, self.steps, self.count)

    def training_state(self) -> dict:
        return {"generator": self.gen.get_state(), "dropout_rng": dropout_rng_state(self.device)}

    def load_training_state(self, state: dict) -> None:
        self.gen.set_state(state["generator"])
        set_dropout_rng_state(state["dropout_rng"], self.device)

    def epoch_state(self) -> dict:
        return {
            "order": self.order.cpu(),
            "total": float(self.total),
            "count": self.count,
            "steps": self.steps,
        }

    def load_epoch_state(self, state: dict) -> None:
        self.model.train()
        self.order = state["order"].to(self.device)
        self.total = torch.tensor(state["total"], dtype=torch.float64, device=self.device)
        self.count, self.steps = state["count"], state["steps"]

    def history_from(self, rows: list[dict]) -> list[EpochStats]:
        keep = ("epoch", "loss", "seconds", "steps", "events")
        return [EpochStats(**{k: r[k] for k in keep}, eval=r.get("eval")) for r in rows]

    def progress(self) -> tuple[int, int, str]:
        return self.count, len(self.prefixes), "prefixes"


class RateColumn(ProgressColumn):
    """Units per second of the epoch's bar (rich's own speed column counts bytes)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {task.fields['unit']}/s" if speed else "", style="cyan")


class WorkProgress(Callback):
    """A bar per epoch that counts what the epoch trains on (events, prefixes or users;
    Lightning's own bar counts batches, which are 500-step chunks here), with its rate and
    the time left in the epoch. The bar is made at the epoch's first batch, after the
    module has started (or restored) the epoch, and removed at its end, where the module
    prints the epoch's line."""

    def __init__(self):
        self.bar: Progress | None = None
        self.task = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            RateColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.task is None:
            done, total, unit = pl_module.progress()
            epoch = f"{trainer.current_epoch + 1}/{trainer.max_epochs}"
            self.task = self.bar.add_task("", total=total, completed=done, unit=unit, epoch=epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.bar.update(self.task, completed=pl_module.progress()[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None

    def teardown(self, trainer, pl_module, stage) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.teardown(trainer, pl_module, "fit")


class EpochCheckpoint(Checkpoint):
    """`<dir>/last.ckpt` at the end of every epoch and when the run is interrupted.

    Lightning's ModelCheckpoint saves only when the global step has moved, which the
    session-parallel module (manual optimisation, the engine updates its own optimizer)
    never advances. SIGTERM (a scheduler's preemption) is Lightning's: it stops after the
    batch in progress, when the loop's own progress is consistent, and the checkpoint is
    written then. Ctrl+C (SIGINT) is turned into the same SIGTERM; a second one stops at
    once, without a checkpoint. Being a `Checkpoint`, it runs after the module's epoch
    end, so an epoch-end checkpoint holds the complete epoch.
    """

    def __init__(self, dirpath: str | Path):
        self.path = Path(dirpath) / "last.ckpt"
        self.interrupted = False
        self._old_sigint = None

    def save(self, trainer: pl.Trainer) -> None:
        with atomic_path(self.path) as tmp:  # a kill never leaves half a checkpoint
            trainer.save_checkpoint(tmp)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        def on_sigint(signum, frame):
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGTERM)

        self._old_sigint = signal.signal(signal.SIGINT, on_sigint)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.save(trainer)
            print(
                f"interrupted: checkpoint {self.path}; continue with "
                f"resume={self.path.parent.parent}"
            )

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._old_sigint is not None:
            signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None


class EarlyStoppingBestEpoch(EarlyStopping):
    """Lightning's EarlyStopping (higher is better, checked at each epoch end) that also
    keeps the best epoch's weights and puts them back when training ends, so the model
    evaluated (and saved) is the one the validation metric chose. The weights travel in
    the checkpoint with the patience counter, so a resumed run stops where it would have."""

    def __init__(self, monitor: str, patience: int):
        super().__init__(
            monitor=monitor, mode="max", patience=patience, check_on_train_epoch_end=True
        )
        self.best_epoch: int | None = None
        self.best_weights: dict | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.wait_count == 0:  # this epoch improved on the best
            self.best_epoch = trainer.current_epoch
            self.best_weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_end(self, trainer, pl_module) -> None:
        if self.best_weights is not None:
            pl_module.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.best_epoch = state_dict.pop("best_epoch", None)
        self.best_weights = state_dict.pop("best_weights", None)
        super().load_state_dict(state_dict)


def quiet_lightning() -> None:
    """Lightning's banner lines and tips would bury the metrics table; warnings still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
        for child in list(logging.root.manager.loggerDict):
            if child.startswith(name + "."):
                logging.getLogger(child).setLevel(logging.NOTSET)  # inherit WARNING
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def make_trainer(
    n_epochs: int,
    accelerator: str,
    progress_bar: bool = True,
    callbacks: list | None = None,
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=n_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,  # the run's loggers (bench.loggers) log the epochs and the results
        # EpochCheckpoint, when the run wants checkpoints (Lightning adds no other then).
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks or []),
        callbacks=[*(callbacks or []), *([WorkProgress()] if progress_bar else [])],
        enable_model_summary=False,
        enable_progress_bar=False,  # WorkProgress counts events, not Lightning's batches
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=False,
    )


def fit_module(module: ResumableModule, n_epochs: int, ctx, patience: int | None):
    """Train `module` with the run's checkpoints (`ctx.checkpoint_dir`), resuming from
    `ctx.resume`, early stopping on `module.monitor` when `patience` is set, and the
    progress bar `ctx.progress_bar`. Returns the epoch whose weights early stopping restored."""
    callbacks = [EpochCheckpoint(ctx.checkpoint_dir)] if ctx.checkpoint_dir is not None else []
    stopper = EarlyStoppingBestEpoch(module.monitor, patience) if patience is not None else None
    callbacks += [stopper] if stopper is not None else []
    trainer = make_trainer(
        n_epochs,
        "gpu" if ctx.device == "cuda" else "cpu",
        ctx.progress_bar,
        callbacks,
    )
    if interrupts.requested():  # a study was told to stop before this job began training
        raise TrainingInterrupted(f"training not started: {interrupts.requested()} received")
    try:
        # Tensors and plain containers only: a checkpoint from elsewhere cannot run code.
        trainer.fit(module, ckpt_path=ctx.resume, weights_only=True)
    except SIGTERMException:  # a SystemExit without a status: it would exit 0
        raise TrainingInterrupted("training stopped by SIGTERM or Ctrl+C") from None
    except pickle.UnpicklingError as e:
        found = str(e).split("Unsupported global: ")[-1].split(" was not")[0].strip()
        raise BenchError(
            f"resume: {ctx.resume} holds an object a checkpoint of this harness never holds "
            f"({found[:120]}); refused, since loading it could run code"
        ) from None
    # Lightning's teardown moves the module to the CPU; the evaluation after training
    # (and any further use) expects the model where it was trained.
    module.to(ctx.device)
    if stopper is not None and stopper.best_epoch is not None:
        print(
            f"early stopping: kept epoch {stopper.best_epoch + 1} ({module.monitor} "
            f"{float(stopper.best_score):.4f}) of the {len(module.history)} trained",
            flush=True,
        )
    return stopper.best_epoch if stopper is not None else None
