"""gru4rec-bench: a faithful, fast GRU4Rec and the harness to benchmark it."""

__version__ = "0.1.0"
