"""The harness's work after each training epoch, handed to the method as one object
(`FitContext.epoch_hook`): log the epoch, evaluate it where learning curves, early stopping
or a study's pruner need it, and report it to the trial."""

from __future__ import annotations


class EpochWork:
    """Called with each epoch's `EpochStats`; returns the metrics evaluated there, or None
    where the epoch went unevaluated (under a pruner that judges only at its rungs, the
    other epochs are not evaluated). `evals` keeps each evaluated epoch's `EvalResult`, so
    the evaluation after training reuses the epoch whose weights the model holds."""

    def __init__(self, evaluator, method, loggers, reporter, scope: str, every_epoch: bool):
        self.evaluator = evaluator
        self.method = method  # its `scorer` is the model as trained so far
        self.loggers = loggers
        self.reporter = reporter  # the study trial's EpochReporter, or None
        self.scope = scope  # "valid" or "test": what an evaluation here measures
        self.every_epoch = every_epoch
        self.evals: dict = {}  # epoch index -> EvalResult

    def wants_eval(self, epoch: int) -> bool:
        return self.every_epoch or (self.reporter is not None and self.reporter.needs_eval(epoch))

    def __call__(self, stats) -> dict | None:
        values = {
            "train/loss": stats.loss,
            "train/events_per_s": stats.events_per_s,
            "train/seconds": stats.seconds,
        }
        if self.wants_eval(stats.epoch):
            result = self.evaluator(self.method.scorer)
            self.evals[stats.epoch] = result
            stats.eval = result.metrics  # kept in checkpoints: a resumed run has it
            values |= {f"{self.scope}/{k}": v for k, v in result.metrics.items()}
        self.loggers.metrics(values, stats.epoch + 1)
        result = self.evals.get(stats.epoch)
        if result is None:
            return None
        if self.reporter is not None:
            self.reporter(stats, result)
        return result.metrics
