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
