"""Next-item evaluation with full ranking, as the official batch_eval.

Every position of every test session is predicted, the hidden state starting from
zero for each session; test events with items unknown to training were already
dropped (and the session re-chained) by `to_sessions`. Scores cover all training
items and are computed on the device in session-parallel batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.core.metrics import TIE_MODES, metrics_from_ranks, ranks_from_scores_
from bench.core.model import GRU4RecModel
from bench.core.schedule import DeviceSchedule, build_schedule
from bench.data.sessions import Sessions


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ranks: torch.Tensor  # per evaluated event (host, float64), in test-file event order
    n_events: int
    tie_mode: str


@torch.no_grad()
def rank_targets(
    model: GRU4RecModel,
    test: Sessions,
    tie_mode: str,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    seed: int = 0,
    filter_seen: bool = False,
) -> torch.Tensor:
    """Rank of every target; with `filter_seen`, items already in the session (the user's
    history) are removed from the ranking (a target among them counts as a miss)."""
    if tie_mode not in TIE_MODES:
        raise ValueError(
            f"eval.tie_mode: unknown '{tie_mode}'; expected one of {', '.join(TIE_MODES)}"
        )
    device = torch.device(device)
    was_training = model.training
    model.eval()
    plan = build_schedule(test.offsets, test.items, batch_size)
    sched = DeviceSchedule(plan, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    H = model.init_hidden(sched.initial_width, device)
    table = model.output_table()
    seen = None  # items of each row's session so far (filter_seen), sized at the first step
    out = []
    for s in range(sched.n_steps):
        x, y, carry, keep = sched.step(s)
        if keep is not None:
            H = [h[keep] for h in H]
            seen = seen[keep] if seen is not None else None
        if carry is not None:
            H = [h * carry for h in H]
            if seen is not None:
                seen &= carry.bool()
        scores = model.step_all(x, H, table)
        if filter_seen:
            if seen is None:
                seen = torch.zeros(scores.shape, dtype=torch.bool, device=device)
            seen[torch.arange(len(x), device=device), x] = True
            scores.masked_fill_(seen, float("-inf"))
        out.append(ranks_from_scores_(scores, scores.gather(1, y[:, None]), tie_mode, gen))
    model.train(was_training)
    if not out:
        return torch.zeros(0, dtype=torch.float64)
    # Back from schedule order to (session, position) order, whatever the batch size:
    # per-event ranks of different runs then line up for paired significance tests.
    order = torch.as_tensor(np.argsort(plan.session_of_event, kind="stable"))
    ranks = torch.cat(out).cpu()[order]
    if test.evaluate_mask is not None:  # (prefix, label) pairs: only the labels count
        ranks = ranks[torch.as_tensor(test.evaluate_mask[test.target_events()])]
    return ranks


def evaluate(
    model: GRU4RecModel,
    test: Sessions,
    cutoffs: list[int] = (1, 5, 10, 20),
    tie_mode: str = "conservative",
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    seed: int = 0,
    filter_seen: bool = False,
) -> EvalResult:
    ranks = rank_targets(model, test, tie_mode, batch_size, device, seed, filter_seen)
    return EvalResult(metrics_from_ranks(ranks, list(cutoffs)), ranks, int(ranks.numel()), tie_mode)
