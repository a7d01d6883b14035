"""Full-width training steps replayed from one CUDA graph.

The official PyTorch port tops out at a few hundred mini-batches per second on a GPU
whatever the batch size: every step launches dozens of small kernels from Python.
A CUDA graph records the launches of one whole step (fused forward/backward, loss,
optimizer update with sync-free row deduplication) once and replays them with a
single call. Everything a step reads lives in fixed buffers: the step's inputs,
targets, reset mask and negative samples are copied into them (device-to-device, no
host sync) before each replay, and the hidden state is kept in them between steps.
When the batch first shrinks at the end of an epoch, the remaining steps run eagerly.

With `capture=False` the same buffers and step body run eagerly: that is how the
logic is tested on machines without a GPU (tests/test_graphs.py).
"""

from __future__ import annotations

import torch

GRAPH_OPTIMIZERS = ("adagrad_m", "sgd")  # Adam's bias correction depends on a host counter


class StaticSteps:
    """Session-parallel steps through fixed buffers, optionally captured in a CUDA graph."""

    def __init__(self, engine, capture: bool, warmup: int = 3):
        if engine.fused is None:
            raise ValueError("CUDA graphs need the fused step (loss ce or bpr-max, an embedding)")
        if engine.cfg.optimizer not in GRAPH_OPTIMIZERS:
            raise ValueError(f"CUDA graphs: optimizer must be one of {', '.join(GRAPH_OPTIMIZERS)}")
        self.engine = engine
        self.capture = capture
        self.warmup = warmup
        dev = engine.device
        self.width = engine.schedule.initial_width
        self.x = torch.zeros(self.width, dtype=torch.int64, device=dev)
        self.y = torch.zeros(self.width, dtype=torch.int64, device=dev)
        self.carry = torch.ones(self.width, 1, device=dev)
        self.ones = torch.ones(self.width, 1, device=dev)
        n_sample = engine.cfg.n_sample
        self.negatives = torch.zeros(n_sample, dtype=torch.int64, device=dev) if n_sample else None
        self.H = engine.model.init_hidden(self.width, dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0  # full-width steps run without replay (warm-up, capture, no graph)
        self.replays = 0
        self.static = True  # still on the full-width buffers in this epoch
        engine.optimizer.static_rows = True

    def start_epoch(self) -> None:
        for h in self.H:
            h.zero_()
        self.static = True

    def _body(self) -> None:
        """One step on the buffers; the hidden state is written back into them."""
        H = [h * self.carry for h in self.H]
        self.engine.train_on(self.x, self.y, self.negatives, H)
        for buf, h in zip(self.H, H):
            buf.copy_(h)

    def _side_stream_step(self) -> None:
        """A real step on a side stream: CUDA graphs want their warm-up off the default one."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._body()
        torch.cuda.current_stream().wait_stream(stream)

    def _record(self) -> None:
        """Capture one step (capture runs nothing: the caller replays it once)."""
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def _load(self, x, y, carry) -> None:
        self.x.copy_(x)
        self.y.copy_(y)
        self.carry.copy_(carry if carry is not None else self.ones)
        if self.negatives is not None:
            self.negatives.copy_(self.engine.sampler.next())

    def run(self, a: int, b: int, eager_step) -> None:
        """Steps [a, b): replayed while the batch is full, then `eager_step` on a state
        handed back to the engine."""
        sched = self.engine.schedule
        for s in range(a, b):
            x, y, carry, keep = sched.step(s)
            if self.static and (keep is not None or x.shape[0] != self.width):
                self.static = False
                self.engine.H = [h.clone() for h in self.H]
            if not self.static:
                eager_step(s)
                continue
            self._load(x, y, carry)
            if not self.capture:
                self._body()
                self.eager_steps += 1
            elif self.graph is not None:
                self.graph.replay()
                self.replays += 1
            elif self.eager_steps < self.warmup:
                self._side_stream_step()
                self.eager_steps += 1
            else:
                self._record()
                self.graph.replay()
                self.replays += 1
        if self.static:
            self.engine.H = self.H
