"""User-facing errors: one line naming the file/field/option and what was expected."""


class BenchError(ValueError):
    """Raised for bad input; entry points print it as a single line and exit non-zero."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or Ctrl+C stopped training after a batch (with a checkpoint if enabled)."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name where it has none): what
    a one-line error quotes from a driver or library."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
