"""`python -m bench.report`: every record and study -> tables (Markdown, LaTeX, CSV) and figures.

Reads the result records under --records (default results/raw) and the Optuna studies of
--storage (default: every sweeps/*.db), writes results/tables and results/figures. Bad
options end with one line and exit status 2; unreadable records are skipped and listed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.datasets import PROJECT_ROOT
from bench.records import replace_block, write_text_atomic


def default_storages() -> list[str]:
    return [f"sqlite:///{p}" for p in sorted((PROJECT_ROOT / "sweeps").glob("*.db"))]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument(
        "--records", type=Path, action="append", help="folder searched for result.json (repeatable)"
    )
    p.add_argument("--storage", action="append", help="Optuna storage URL (repeatable)")
    p.add_argument("--no-studies", action="store_true", help="read no study storage")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results")
    p.add_argument(
        "--metrics", default="recall@20,mrr@20", help="comma-separated, e.g. recall@10,ndcg@20"
    )
    p.add_argument("--tie-mode", default="conservative")
    p.add_argument("--title", default="Next-item prediction, full ranking")
    p.add_argument(
        "--readme",
        type=Path,
        help="file whose <!-- BLOCK:start/end --> block receives the comparison table",
    )
    p.add_argument("--readme-block", default="comparison", help="BLOCK name of the markers")
    p.add_argument(
        "--benchmark", type=Path, default=PROJECT_ROOT / "benchmarks/results/throughput.json"
    )
    return p.parse_args(argv)


def relative(path: str | None) -> str | None:
    """Paths in the written tables relative to the project, so another clone writes the same."""
    if not isinstance(path, str):
        return path
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


def update_readme(path: Path, table_markdown: str, block: str = "comparison") -> bool:
    """Replace the marked block, so the README's table is the generated one, never retyped."""
    body = table_markdown.split("\n", 2)[2]  # drop the "### title" heading
    return replace_block(path, block, body)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from bench.report import plots
    from bench.report.collect import collect
    from bench.report.reproduction import (
        reproduction_frame,
        reproduction_latex,
        reproduction_markdown,
    )
    from bench.report.tables import comparison_table, to_frame, to_latex, to_markdown

    args = parse(argv)
    console = Console(stderr=True)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    roots = args.records or [PROJECT_ROOT / "results" / "raw"]
    storages = (
        []
        if args.no_studies
        else (args.storage if args.storage is not None else default_storages())
    )
    try:
        col = collect(roots, storages)
    except Exception as e:  # a storage URL that cannot be opened
        print(
            f"error: --storage: cannot read studies ({type(e).__name__}: {e})".splitlines()[0],
            file=sys.stderr,
        )
        return 2
    tables, figures = args.out / "tables", args.out / "figures"
    for path, reason in col.skipped:
        console.print(f"[yellow]skipped[/] {path}: {reason}")
    if col.skipped:
        import pandas as pd

        skipped = pd.DataFrame(col.skipped, columns=["record", "reason"])
        write_text_atomic(tables / "skipped_records.csv", skipped.to_csv(index=False))
    if col.runs.empty:
        print(
            f"error: --records: no result records found under {', '.join(map(str, roots))}",
            file=sys.stderr,
        )
        return 2
    runs = col.runs.copy()
    for c in ("record", "ranks"):
        if c in runs:
            runs[c] = runs[c].map(relative)
    write_text_atomic(tables / "runs.csv", runs.to_csv(index=False, float_format="%.6g"))
    written = [tables / "runs.csv"]
    table = None
    try:
        table = comparison_table(col.runs, metrics, args.tie_mode, args.title)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_text_atomic(tables / "comparison.md", to_markdown(table))
    write_text_atomic(tables / "comparison.tex", to_latex(table))
    write_text_atomic(tables / "comparison.csv", to_frame(table).to_csv(index=False))
    repro = reproduction_frame(table, args.tie_mode)
    write_text_atomic(tables / "reproduction.md", reproduction_markdown(repro))
    write_text_atomic(tables / "reproduction.tex", reproduction_latex(repro))
    write_text_atomic(tables / "reproduction.csv", repro.to_csv(index=False))
    written += [
        tables / f"{n}.{e}" for n in ("comparison", "reproduction") for e in ("md", "tex", "csv")
    ]

    final = col.runs[(col.runs["split"] == "final") & (col.runs["tie_mode"] == args.tie_mode)]
    final = final[final["kind"].isin(["baseline", "gru4rec"])]
    cutoffs = sorted({int(c.split("@")[1]) for c in final if c.startswith("recall@")})
    for ds in sorted(final["dataset"].unique()):
        written += plots.metrics_vs_k(final, ds, cutoffs, figures)
        written += plots.learning_curves(final, col.curves, ds, metrics[-1], figures)
    written += plots.throughput(args.benchmark, figures)
    for study in col.studies:
        files, reason = plots.study_figures(study, figures)
        written += files
        if reason:
            console.print(f"[yellow]no figure[/] {reason}")
    block = args.readme_block
    if args.readme is not None and not update_readme(args.readme, to_markdown(table), block):
        print(
            f"error: --readme: {args.readme} has no <!-- {block}:start/end --> markers",
            file=sys.stderr,
        )
        return 2
    console.print(to_markdown(table), markup=False)
    console.print(
        f"{len(col.runs)} runs, {len(col.studies)} studies, {len(col.skipped)} skipped; wrote:"
    )
    for path in written:
        console.print(f"  {relative(str(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
