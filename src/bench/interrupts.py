"""A stop asked for by SIGTERM or Ctrl+C while a loop of jobs runs (the study sweeper).

A scheduler's preemption, `timeout` or `kill` sends SIGTERM; a user presses Ctrl+C. Inside
`stop_on_signals()` either one is noted instead of killing the process: a job that is
training stops after its batch in progress (Lightning's SIGTERM handling, which calls
the handler installed here too; Ctrl+C is turned into SIGTERM to reach it), a job that has
not started training does not start (`requested()`, checked by bench.lit), and the loop
starts no further job. A second Ctrl+C stops at once. Outside such a loop nothing is
installed and a single run keeps its own handling (bench.lit.EpochCheckpoint).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_requested: str | None = None  # the name of the first signal received, while installed


def requested() -> str | None:
    """SIGTERM or SIGINT once a stop was asked for inside `stop_on_signals`, else None."""
    return _requested


def _note(signum, frame) -> None:
    global _requested
    if signum == signal.SIGINT and _requested is not None:
        raise KeyboardInterrupt
    first = _requested is None
    _requested = _requested or signal.Signals(signum).name
    if signum == signal.SIGINT and first:
        os.kill(os.getpid(), signal.SIGTERM)  # reaches Lightning's handler during training


@contextmanager
def stop_on_signals() -> Iterator[None]:
    global _requested
    old = {s: signal.signal(s, _note) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        _requested = None


def outside_training(out_dir: Path) -> str:
    """The one line for a Ctrl+C that Python, not the training loop, received (a single
    run loading data or in its final evaluation): nothing is recorded, and a checkpoint
    already written (every epoch, once training has ended) is still where to continue."""
    ckpt = out_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        return f"interrupted: no result recorded; checkpoint {ckpt}; continue with resume={out_dir}"
    return "interrupted: no result recorded and no checkpoint written"
