"""Output for people: rich's console at a terminal; unwrapped lines when the output goes to
a file or a pipe, so that paths stay whole and a printed Markdown table can be pasted."""

from __future__ import annotations

import sys

from rich.console import Console


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    # No terminal width to honour: lines as long as they are (tables fit their content).
    return Console(stderr=stderr, width=10_000, soft_wrap=True)


def metrics_table(metrics: dict, cutoffs, title: str, caption: str):
    """A run's metrics per cutoff, as the console shows them at its end."""
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for col in ("cutoff", "Recall (=HR)", "MRR", "nDCG"):
        table.add_column(col, justify="right")
    for k in cutoffs:
        table.add_row(
            f"@{k}",
            f"{metrics[f'recall@{k}']:.4f}",
            f"{metrics[f'mrr@{k}']:.4f}",
            f"{metrics[f'ndcg@{k}']:.4f}",
        )
    return table
