"""The run's evaluation options applied to the shared evaluator (core.evaluate).

Every method is scored here with the same candidates, tie handling, seen-item filtering
and unknown-item treatment, and the record's protocol block is written from the same
options, so what a record says about its evaluation is what was done.
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from bench.errors import BenchError
from bench.knob_types import fits


def check_eval_config(ev: DictConfig) -> None:
    """Fail before training, not after it, on a bad evaluation option."""
    from bench.core.metrics import check_tie_mode, metric_names

    also = ev.get("also_tie_modes") or []
    if not isinstance(also, ListConfig | list):
        raise BenchError(f"eval.also_tie_modes: got {also!r}; expected a list, e.g. [standard]")
    for option, modes in (("tie_mode", [ev.tie_mode]), ("also_tie_modes", also)):
        for mode in modes:
            try:
                check_tie_mode(mode, f"eval.{option}")
            except ValueError as e:
                raise BenchError(str(e)) from None
    batch = ev.get("batch_size")
    if not (fits(batch, int) and batch >= 1):
        raise BenchError(f"eval.batch_size: got {batch!r}; expected a positive integer")
    cutoffs = list(ev.cutoffs)
    if not cutoffs or not all(isinstance(k, int) and k >= 1 for k in cutoffs):
        raise BenchError(
            f"eval.cutoffs: got {cutoffs}; expected a non-empty list of positive integers"
        )
    if ev.primary_metric not in metric_names(cutoffs):
        raise BenchError(
            f"eval.primary_metric: '{ev.primary_metric}' is not computed; expected one of "
            f"{sorted(metric_names(cutoffs))}"
        )
    if ev.get("filter_seen") not in (None, True, False):
        raise BenchError(
            f"eval.filter_seen: got {ev.filter_seen!r}; expected true, false or null "
            "(the dataset's setting)"
        )
    check_sampled(ev.get("sampled"))
    if ev.get("unknown_test_items", "drop") not in ("drop", "miss"):
        raise BenchError(
            f"eval.unknown_test_items: got '{ev.unknown_test_items}'; expected drop or miss"
        )


def check_sampled(sampled) -> None:
    """eval.sampled: null, or {n: a positive integer, by: uniform | popularity}."""
    if sampled is None:
        return
    valid = (
        isinstance(sampled, DictConfig | dict)
        and set(sampled) == {"n", "by"}
        and fits(sampled["n"], int)
        and sampled["n"] >= 1
        and sampled["by"] in ("uniform", "popularity")
    )
    if not valid:
        raise BenchError(
            f"eval.sampled: got {_plain(sampled)!r}; "
            "expected null or {n: N >= 1, by: uniform|popularity}"
        )


def _plain(value):
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


class Evaluator:
    """The shared evaluator with this run's options: every method is scored by it."""

    def __init__(self, cfg: DictConfig, data, device: str):
        ev = cfg.eval
        filter_seen = ev.get("filter_seen")
        self.filter_seen = bool(
            cfg.dataset.get("filter_seen", False) if filter_seen is None else filter_seen
        )
        self.sampled = None
        if ev.get("sampled"):
            from bench.core.evaluate import SampledCandidates

            support = data.train.support(len(data.item_map))
            self.sampled = SampledCandidates.make(ev.sampled.n, ev.sampled.by, support, device)
        # Predictions lost to items unknown to training, counted as misses
        # (eval.unknown_test_items=miss).
        self.misses = data.unscorable_predictions if ev.unknown_test_items == "miss" else 0
        self.cfg, self.data, self.device = ev, data, device

    def __call__(self, scorer):
        """Metrics under the run's tie mode, and under `eval.also_tie_modes` from the same
        scores (`result.also`)."""
        from bench.core.evaluate import evaluate

        return evaluate(
            scorer,
            self.data.test,
            list(self.cfg.cutoffs),
            self.cfg.tie_mode,
            int(self.cfg.batch_size),
            self.device,
            filter_seen=self.filter_seen,
            sampled=self.sampled,
            extra_misses=self.misses,
            also_tie_modes=tuple(self.cfg.get("also_tie_modes") or ()),
        )

    def protocol(self, result) -> dict:
        test = self.data.test
        return {
            "task": "next-item prediction at every position of each test session"
            if test.evaluate_mask is None
            else "the held-out item given its prefix / the user's history",
            "candidates": "all training items (full ranking)",
            "tie_mode": self.cfg.tie_mode,
            "cutoffs": list(self.cfg.cutoffs),
            "unknown_test_items": "dropped, session re-chained"
            + (
                f"; {self.misses} predictions lost that way counted as misses"
                if self.misses
                else ""
            ),
            "seen_item_filtering": self.filter_seen,
            "sampled_metrics": None
            if self.sampled is None
            else (
                f"also {self.sampled.label}_* : target vs {self.sampled.n} {self.sampled.by} "
                "negatives (not full ranking)"
            ),
            "evaluated_events": result.n_events,
            "test_fingerprint": self.data.test_fingerprint(),
        }
