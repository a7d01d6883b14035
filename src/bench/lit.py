"""Lightning wrapper around the core engine.

Lightning sees one "batch" per chunk of session-parallel steps (manual optimisation),
so its per-batch machinery runs once per chunk rather than once per mini-batch and
the harness stays within a few percent of the bare core loop (see
benchmarks/throughput.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from bench.core.train import EpochStats, SessionParallelTrainer


class StepChunks(torch.utils.data.Dataset):
    """(start, stop) step ranges covering one epoch of the engine's schedule."""

    def __init__(self, n_steps: int, chunk: int):
        self.ranges = [(a, min(a + chunk, n_steps)) for a in range(0, n_steps, chunk)]

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, i: int) -> tuple[int, int]:
        return self.ranges[i]


def _identity(batch):
    return batch


class GRU4RecModule(pl.LightningModule):
    def __init__(
        self,
        engine: SessionParallelTrainer,
        chunk_steps: int = 500,
        epoch_hook: Callable[[EpochStats], None] | None = None,
    ):
        """`epoch_hook` runs after each epoch (validation, reporting to a study trial)."""
        super().__init__()
        self.automatic_optimization = False
        self.engine = engine
        self.model = engine.model  # registered so Lightning sees (and checkpoints) it
        self.chunk_steps = chunk_steps
        self.epoch_hook = epoch_hook
        self.history: list[EpochStats] = []
        self._t0 = 0.0
        self._core_s = 0.0

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            StepChunks(self.engine.n_steps, self.chunk_steps),
            batch_size=None,
            shuffle=False,
            collate_fn=_identity,
        )

    def configure_optimizers(self):
        return self.engine.optimizer

    def on_train_epoch_start(self) -> None:
        self.engine.start_epoch()
        self._core_s = 0.0
        self._t0 = time.perf_counter()

    def training_step(self, batch, batch_idx):
        a, b = (int(v) for v in batch)
        t0 = time.perf_counter()
        self.engine.run_steps(a, b)
        self.engine.check_finite(f"step {b}")
        self._core_s += time.perf_counter() - t0

    def on_train_epoch_end(self) -> None:
        if self.engine.device.type == "cuda":
            torch.cuda.synchronize(self.engine.device)
        stats = self.engine.end_epoch(time.perf_counter() - self._t0)
        # Share of the epoch spent in Lightning rather than in the core loop, measured in
        # the same run (immune to the machine-wide noise that skews separate runs).
        stats.harness_overhead = 1.0 - self._core_s / stats.seconds if stats.seconds > 0 else 0.0
        self.history.append(stats)
        self.print(stats.line())
        if self.epoch_hook is not None:
            self.epoch_hook(stats)


def want_progress_bar(setting) -> bool:
    """`trainer.progress_bar`: true | false | auto (on at a terminal, off under a sweep,
    in CI and when the output goes to a file, where the one-line epoch summary stays)."""
    import os
    import sys

    if setting != "auto":
        return bool(setting)
    if os.environ.get("CI") or not sys.stdout.isatty():
        return False
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode != RunMode.MULTIRUN
    except ValueError:  # not under Hydra
        return True


def make_trainer(
    n_epochs: int, accelerator: str, progress_bar: bool = True, logger=False
) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=n_epochs,
        accelerator=accelerator,
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=False,
    )
