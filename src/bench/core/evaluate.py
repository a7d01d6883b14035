"""Next-item evaluation with full ranking, as the official batch_eval.

Every position of every test session is predicted, the hidden state starting from
zero for each session; test events with items unknown to training were already
dropped (and the session re-chained) by `to_sessions`. Scores cover all training
items and are computed on the device in session-parallel batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench.core.metrics import (
    check_tie_mode,
    metrics_from_ranks,
    ranks_from_counts,
    ranks_from_scores_,
    tie_counts_,
)
from bench.core.model import GRU4RecModel
from bench.core.schedule import DeviceSchedule, build_schedule
from bench.data.sessions import Sessions


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ranks: torch.Tensor  # per evaluated event (host, float64), in test-file event order
    n_events: int
    tie_mode: str
    also: dict[str, dict[str, float]] = field(default_factory=dict)  # other tie modes' metrics


@torch.no_grad()
def rank_targets(
    model: GRU4RecModel,
    test: Sessions,
    tie_mode: str,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    seed: int = 0,
    filter_seen: bool = False,
    sampled: SampledCandidates | None = None,
    also_tie_modes: tuple[str, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """Rank of every target among all items, and (with `sampled`) among the target plus
    `sampled.n` negatives drawn per event. With `filter_seen`, items already in the session
    (the user's history) are removed from both rankings (a target among them is a miss).
    `also_tie_modes`: the full-ranking ranks under other tie modes too, from the same
    scores (each mode's own run would score every prefix again), each with a generator of
    its own, so that each equals its own run's ranks."""
    check_tie_mode(tie_mode)
    also = [m for m in dict.fromkeys(also_tie_modes) if m != tie_mode]
    for mode in also:
        check_tie_mode(mode)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    plan = build_schedule(test.offsets, test.items, batch_size)
    sched = DeviceSchedule(plan, device)
    ranks = _StepRanks(tie_mode, also, sampled, seed, device)
    event_times = _event_times(model, test, batch_size)
    H = model.init_hidden(sched.initial_width, device)
    table = model.output_table()
    # One score buffer for every step, where the model can fill it (see GRU4RecModel.step_all)
    buffer = {}
    if getattr(model, "fills_score_buffer", False):
        buffer["out"] = torch.empty(table.shape[0] * sched.initial_width, device=device)
    seen = None  # items of each row's session so far (filter_seen), sized at the first step
    for s in range(sched.n_steps):
        x, y, carry, keep = sched.step(s)
        if keep is not None:
            H = [h[keep] for h in H]
            seen = seen[keep] if seen is not None else None
        if carry is not None:
            H = [h * carry for h in H]
            if seen is not None:
                seen &= carry.bool()
        if event_times is None:
            scores = model.step_all(x, H, table, **buffer)
        else:
            b0, b1 = sched.bounds[s], sched.bounds[s + 1]
            scores = model.step_all(x, H, table, now=event_times[b0:b1])
        if filter_seen:
            if seen is None:  # in the scores' memory layout, so that masking runs in order
                seen = torch.zeros_like(scores, dtype=torch.bool)
            seen[torch.arange(len(x), device=device), x] = True
            scores.masked_fill_(seen, float("-inf"))
        ranks.add(scores, y, seen)
    model.train(was_training)
    return ranks.arranged(plan, test)


def _event_times(model, test: Sessions, batch_size: int) -> np.ndarray | None:
    """A method whose scores depend on the time of the current event (STAN with neighbour
    age in days) gets it: the same plan over event indices yields each step's events."""
    if not getattr(model, "uses_event_times", False):
        return None
    if test.times is None:
        raise ValueError("this method needs event timestamps, and the test data has none")
    events = build_schedule(test.offsets, np.arange(test.n_events), batch_size).inputs
    return test.times[events]


class _StepRanks:
    """The targets' ranks, step by step: under the run's tie mode, under `also` modes (from
    one count of the ties, each mode with a generator of its own, so that each equals its
    own run's ranks) and, with `sampled`, among sampled negatives."""

    def __init__(self, tie_mode: str, also: list[str], sampled, seed: int, device):
        self.tie_mode, self.also, self.sampled = tie_mode, also, sampled
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.also_gens = {m: torch.Generator(device=device).manual_seed(seed) for m in also}
        self.counts_buffer = None  # tie counting's mask (also modes), sized at the first step
        self.out, self.out_sampled, self.out_also = [], [], {m: [] for m in also}

    def add(self, scores: torch.Tensor, y: torch.Tensor, seen: torch.Tensor | None) -> None:
        target = scores.gather(1, y[:, None])
        if self.sampled is not None:
            ranks = self.sampled.ranks(scores, y, target, seen, self.tie_mode, self.gen)
            self.out_sampled.append(ranks)
        if not self.also:
            self.out.append(ranks_from_scores_(scores, target, self.tie_mode, self.gen))
            return
        if self.counts_buffer is None:  # one for every step, as for the scores
            self.counts_buffer = torch.empty_like(scores)
        gt, eq = tie_counts_(scores, target, self.counts_buffer[: len(y)])
        for m in self.also:  # every mode, the run's own too, from one count of the ties
            self.out_also[m].append(ranks_from_counts(gt, eq, m, self.also_gens[m]))
        self.out.append(ranks_from_counts(gt, eq, self.tie_mode, self.gen))

    def arranged(self, plan, test: Sessions):
        """Back from schedule order to (session, position) order, whatever the batch size:
        per-event ranks of different runs then line up for paired significance tests."""
        if not self.out:
            empty = torch.zeros(0, dtype=torch.float64)
            return empty, None, {m: torch.zeros(0, dtype=torch.float64) for m in self.also}
        order = torch.as_tensor(np.argsort(plan.session_of_event, kind="stable"))
        keep = None
        if test.evaluate_mask is not None:  # (prefix, label) pairs: only the labels count
            keep = torch.as_tensor(test.evaluate_mask[test.target_events()])

        def arrange(parts):
            r = torch.cat(parts).cpu()[order]
            return r[keep] if keep is not None else r

        return (
            arrange(self.out),
            arrange(self.out_sampled) if self.sampled is not None else None,
            {m: arrange(parts) for m, parts in self.out_also.items()},
        )


def evaluate(
    model: GRU4RecModel,
    test: Sessions,
    cutoffs: list[int] = (1, 5, 10, 20),
    tie_mode: str = "conservative",
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    seed: int = 0,
    filter_seen: bool = False,
    sampled: SampledCandidates | None = None,
    extra_misses: int = 0,
    also_tie_modes: tuple[str, ...] = (),
) -> EvalResult:
    """Metrics over full ranking; with `sampled`, also the sampled-candidate metrics, keyed
    `sampled<n>_<by>_<metric>@K` so that they are never mistaken for full-ranking ones.
    `extra_misses` predictions that could not be scored (their item is unknown to training)
    are counted as misses (rank infinity), as protocols that keep them in the denominator do.
    `also_tie_modes`: the full-ranking metrics under other tie modes, from the same pass."""
    ranks, sampled_ranks, also = rank_targets(
        model, test, tie_mode, batch_size, device, seed, filter_seen, sampled, also_tie_modes
    )
    if extra_misses:
        miss = torch.full((extra_misses,), float("inf"), dtype=ranks.dtype)
        ranks = torch.cat([ranks, miss])
        if sampled_ranks is not None:
            sampled_ranks = torch.cat([sampled_ranks, miss])
        also = {m: torch.cat([r, miss]) for m, r in also.items()}
    metrics = metrics_from_ranks(ranks, list(cutoffs))
    if sampled_ranks is not None:
        extra = metrics_from_ranks(sampled_ranks, list(cutoffs))
        metrics |= {f"{sampled.label}_{k}": v for k, v in extra.items()}
    also_metrics = {m: metrics_from_ranks(r, list(cutoffs)) for m, r in also.items()}
    return EvalResult(metrics, ranks, int(ranks.numel()), tie_mode, also_metrics)


@dataclass
class SampledCandidates:
    """The target ranked against `n` negatives per event, drawn uniformly ("uniform") or by
    training popularity ("popularity") among the items that are neither the target nor
    (with filter_seen) already seen. A common but biased protocol: reported only on request,
    under its own metric names."""

    n: int
    by: str
    weights: torch.Tensor  # per item, on the evaluation device

    @property
    def label(self) -> str:
        return f"sampled{self.n}_{self.by}"

    @classmethod
    def make(cls, n: int, by: str, support: np.ndarray, device) -> SampledCandidates:
        if by not in ("uniform", "popularity") or n < 1:
            raise ValueError(
                f"eval.sampled: got n={n}, by={by!r}; expected n >= 1 and by uniform or popularity"
            )
        w = np.ones_like(support) if by == "uniform" else np.asarray(support, dtype=np.float64)
        return cls(n, by, torch.as_tensor(w, dtype=torch.float32, device=device))

    def ranks(self, scores, y, target, seen, tie_mode, gen) -> torch.Tensor:
        w = self.weights.expand(len(y), -1).clone()
        w[torch.arange(len(y), device=y.device), y] = 0
        if seen is not None:
            w.masked_fill_(seen, 0)
        negatives = torch.multinomial(w, self.n, replacement=False, generator=gen)
        # The target plus its negatives: ranked exactly like the full ranking, n + 1 columns.
        candidates = torch.cat([target, scores.gather(1, negatives)], dim=1)
        return ranks_from_scores_(candidates, target, tie_mode, gen)
