"""User-facing errors: one line naming the file/field/option and what was expected."""


class BenchError(ValueError):
    """Raised for bad input; entry points print it as a single line and exit non-zero."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or Ctrl+C stopped training after a batch (with a checkpoint if enabled)."""
