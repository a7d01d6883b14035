"""One training step on fixed buffers, replayed from a CUDA graph.

The official PyTorch port tops out at a few hundred mini-batches per second on a GPU
whatever the batch size: every step launches dozens of small kernels from Python. A CUDA
graph records the launches of one whole step (hand-derived forward/backward, loss,
optimizer update with sync-free row deduplication) once and replays them with a single
call. `GraphedStep` wraps any step function whose shapes depend only on the batch width:
it owns fixed buffers for the step's inputs, targets, reset mask, negative samples and
the hidden state between steps, copies each step's tensors into them (device to device,
no host sync) and replays. Which steps go through it (the full-width ones) is the
trainer's decision (train.py); the runner knows nothing of schedules or samplers.

With `capture=False` the same buffers and body run eagerly: that is how the logic is
tested on machines without a GPU (tests/test_graphs.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Step signature: (inputs, targets, negatives or None, hidden state list) -> None; trains on
# them and replaces the entries of the hidden state list with the new states.
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, list], None]


class GraphedStep:
    """A step on fixed buffers, captured as a CUDA graph after `warmup` eager runs."""

    def __init__(
        self,
        step: Step,
        width: int,
        hidden_sizes: list[int],
        n_sample: int,
        device: torch.device,
        capture: bool,
        warmup: int = 3,
    ):
        self.step = step
        self.width = width
        self.capture = capture
        self.warmup = warmup
        self.x = torch.zeros(width, dtype=torch.int64, device=device)
        self.y = torch.zeros(width, dtype=torch.int64, device=device)
        self.carry = torch.ones(width, 1, device=device)
        self.ones = torch.ones(width, 1, device=device)
        self.negatives = (
            torch.zeros(n_sample, dtype=torch.int64, device=device) if n_sample else None
        )
        self.H = [torch.zeros(width, size, device=device) for size in hidden_sizes]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_runs = 0  # runs without replay (warm-up, or capture=False)
        self.replays = 0

    def reset_hidden(self) -> None:
        for h in self.H:
            h.zero_()

    def hidden(self) -> list[torch.Tensor]:
        """A copy of the hidden state, for steps that continue outside the buffers."""
        return [h.clone() for h in self.H]

    def _body(self) -> None:
        H = [h * self.carry for h in self.H]
        self.step(self.x, self.y, self.negatives, H)
        for buf, h in zip(self.H, H):
            buf.copy_(h)

    def _side_stream_run(self) -> None:
        """A real step on a side stream: CUDA graphs want their warm-up off the default one."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._body()
        torch.cuda.current_stream().wait_stream(stream)

    def __call__(self, x, y, carry, negatives) -> None:
        """One step on full-width inputs; `carry` None means no session started."""
        self.x.copy_(x)
        self.y.copy_(y)
        self.carry.copy_(carry if carry is not None else self.ones)
        if self.negatives is not None:
            self.negatives.copy_(negatives)
        if not self.capture:
            self._body()
            self.eager_runs += 1
        elif self.graph is not None:
            self.graph.replay()
            self.replays += 1
        elif self.eager_runs < self.warmup:
            self._side_stream_run()
            self.eager_runs += 1
        else:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # capture runs nothing: replay it once
                self._body()
            self.graph.replay()
            self.replays += 1
