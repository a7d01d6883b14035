"""The shape the code keeps (README "How the code is laid out"): short functions, an entry
point that only wires the layers, and layout left to the formatter."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
MAX_FUNCTION_LINES = 60
MAX_RUN_LINES = 200
MAX_FMT_SKIPS = 15  # only where a table's alignment carries meaning


def test_no_function_in_src_is_longer_than_60_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


def test_the_entry_point_stays_short():
    assert len((SRC / "bench" / "run.py").read_text().splitlines()) <= MAX_RUN_LINES


def test_the_formatter_lays_out_src():
    skips = sum(p.read_text().count("# fmt: skip") for p in SRC.rglob("*.py"))
    assert skips <= MAX_FMT_SKIPS
