"""`python -m bench.report`: every record and study -> tables (Markdown, LaTeX, CSV) and figures.

Reads the result records under --records (default results/raw) and the Optuna studies of
--storage (default: every sweeps/*.db), writes results/tables and results/figures. Bad
options end with one line and exit status 2; unreadable records are skipped and listed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.atomic import write_text
from bench.core.metrics import TIE_MODES
from bench.paths import PROJECT_ROOT
from bench.report.output import (
    Staging,
    block_rows,
    default_storages,
    relative,
    table_rows,
    update_readme,
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument(
        "--records", type=Path, action="append", help="folder searched for result.json (repeatable)"
    )
    p.add_argument(
        "--storage", action="append", help="also an Optuna storage's studies (URL, repeatable)"
    )
    p.add_argument(
        "--studies", action="store_true", help="also every study storage in sweeps/ (*.db)"
    )
    p.add_argument("--dataset", action="append", help="only runs on this dataset (repeatable)")
    p.add_argument("--method", action="append", help="only runs of this method (repeatable)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results")
    p.add_argument(
        "--metrics", default="recall@20,mrr@20", help="comma-separated, e.g. recall@10,ndcg@20"
    )
    p.add_argument("--tie-mode", default="conservative", choices=TIE_MODES)
    p.add_argument("--title", default="Next-item prediction, full ranking")
    p.add_argument(
        "--readme",
        type=Path,
        help="file whose <!-- BLOCK:start/end --> block receives the comparison table",
    )
    p.add_argument("--readme-block", default="comparison", help="BLOCK name of the markers")
    p.add_argument(
        "--allow-fewer-rows",
        action="store_true",
        help="replace the README block even with a table of fewer rows than it holds",
    )
    p.add_argument(
        "--benchmark", type=Path, default=PROJECT_ROOT / "benchmarks/results/throughput.json"
    )
    return p.parse_args(argv)


def error(message: str) -> int:
    print(f"error: {message}".splitlines()[0], file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Everything is checked and written to a staging folder first; only a run that got
    through every step replaces the previous outputs (and then the README block)."""
    from bench import terminal
    from bench.report.collect import collect, storage_error
    from bench.report.tables import comparison_table, to_markdown

    args = parse(argv)
    console = terminal.console(stderr=True)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    roots = args.records or [PROJECT_ROOT / "results" / "raw"]
    # Only what the command names: records, and studies where asked for.
    storages = [*(args.storage or []), *(default_storages() if args.studies else [])]
    try:
        col = collect(roots, storages)
    except Exception as e:  # a storage URL that cannot be opened
        return error(storage_error(e))
    for path, reason in col.skipped:
        console.print(f"[yellow]skipped[/] {path}: {reason}")
    if col.runs.empty:
        return error(f"--records: no result records found under {', '.join(map(str, roots))}")
    problem = select_runs(col, args)
    if problem:
        return error(problem)
    try:
        table = comparison_table(col.runs, metrics, args.tie_mode, args.title)
    except ValueError as e:
        return error(str(e))
    markdown = to_markdown(table)
    block = args.readme_block
    problem = readme_problem(args, markdown) if args.readme is not None else None
    if problem:
        return error(problem)
    staging = Staging(args.out)
    try:
        figure_notes = write_outputs(col, table, metrics, args, staging)
        written = staging.commit()
    finally:
        staging.discard()
    if args.readme is not None:
        update_readme(args.readme, markdown, block)
    for note in figure_notes:
        console.print(f"[yellow]no figure[/] {note}")
    console.print(markdown, markup=False)
    console.print(
        f"{len(col.runs)} runs, {len(col.studies)} studies, {len(col.skipped)} skipped; wrote:"
    )
    for path in written:
        console.print(f"  {relative(str(path))}")
    return 0


def select_runs(col, args) -> str | None:
    """Keep the runs of `--dataset` and `--method` (all where not given); what is wrong."""
    for option in ("dataset", "method"):
        wanted = getattr(args, option)
        if wanted:
            held = set(col.runs[option].dropna())
            unknown = sorted(set(wanted) - held)
            if unknown:
                return (
                    f"--{option}: {', '.join(unknown)} not among the records; they hold "
                    f"{', '.join(sorted(held))}"
                )
            col.runs = col.runs[col.runs[option].isin(wanted)]
    return None


def readme_problem(args, markdown: str) -> str | None:
    """Why the README's table may not be replaced by `markdown` (None: it may)."""
    block = args.readme_block
    if not args.readme.is_file():
        return f"--readme: {args.readme} is not a file"
    before = block_rows(args.readme, block)
    if before is None:
        return f"--readme: {args.readme} has no <!-- {block}:start/end --> markers"
    now = table_rows(markdown)
    if now < before and not args.allow_fewer_rows:
        return (
            f"--readme: the new '{block}' table has {now} rows where the README holds {before} "
            "(records missing?); nothing written (--allow-fewer-rows to replace it anyway)"
        )
    return None


def write_outputs(col, table, metrics, args, staging: Staging) -> list[str]:
    """Tables and figures into the staging folder; returns the figures not drawn and why."""
    import pandas as pd

    from bench.report import plots
    from bench.report.reproduction import (
        reproduction_frame,
        reproduction_latex,
        reproduction_markdown,
    )
    from bench.report.tables import table_runs, to_frame, to_latex, to_markdown

    tables, figures = Path("tables"), staging.path("figures")
    if col.skipped:
        skipped = pd.DataFrame(col.skipped, columns=["record", "reason"])
        write_text(staging.path(tables / "skipped_records.csv"), skipped.to_csv(index=False))
    runs = col.runs.copy()
    for c in ("record", "ranks"):
        if c in runs:
            runs[c] = runs[c].map(relative)
    runs = runs.drop(columns=["shared_settings"], errors="ignore")
    write_text(staging.path(tables / "runs.csv"), runs.to_csv(index=False, float_format="%.6g"))
    write_text(staging.path(tables / "comparison.md"), to_markdown(table))
    write_text(staging.path(tables / "comparison.tex"), to_latex(table))
    write_text(staging.path(tables / "comparison.csv"), to_frame(table).to_csv(index=False))
    repro = reproduction_frame(table, args.tie_mode)
    write_text(staging.path(tables / "reproduction.md"), reproduction_markdown(repro))
    write_text(staging.path(tables / "reproduction.tex"), reproduction_latex(repro))
    write_text(staging.path(tables / "reproduction.csv"), repro.to_csv(index=False))
    final, _ = table_runs(col.runs, args.tie_mode)  # one figure line per table row
    cutoffs = sorted({int(c.split("@")[1]) for c in final if c.startswith("recall@")})
    for ds in sorted(final["dataset"].unique()):
        plots.metrics_vs_k(final, ds, cutoffs, figures)
        plots.learning_curves(final, col.curves, ds, metrics[-1], figures)
    plots.throughput(args.benchmark, figures)
    notes = []
    for study in col.studies:
        _, reason = plots.study_figures(study, figures)
        if reason:
            notes.append(reason)
    return notes


if __name__ == "__main__":
    sys.exit(main())
