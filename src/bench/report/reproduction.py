"""Published numbers next to ours on the same protocol, with the difference.

The published values live in published.csv (source, dataset, method, our row, metric,
value in %); ours come from the comparison table's final-split runs. A published row
without a counterpart here says why in its note; none is left silently blank.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from bench.report.render import latex_row, latex_table, markdown_table, tex_escape
from bench.report.tables import Table, metric_title


def published() -> pd.DataFrame:
    with resources.files("bench.report").joinpath("published.csv").open() as f:
        return pd.read_csv(f, keep_default_na=False)


def reproduction_frame(table: Table | None, tie_mode: str) -> pd.DataFrame:
    pub = published()
    ours, diff, rel = [], [], []
    for _, p in pub.iterrows():
        cell = None
        if table is not None and p["ours"]:
            cell = table.cells.get((p["ours"], p["dataset"], p["metric"]))
        value = None if cell is None else round(cell.mean * 100, 2)
        ours.append(value)
        diff.append(None if value is None else round(value - p["value_pct"], 2))
        rel.append(
            None
            if value is None or p["value_pct"] == 0
            else round((value - p["value_pct"]) / p["value_pct"] * 100, 1)
        )
    pub = pub.assign(ours_pct=ours, diff_pts=diff, diff_rel_pct=rel, tie_mode=tie_mode)
    missing = pub["ours_pct"].isna() & pub["note"].eq("")
    pub.loc[missing, "note"] = "no run of this row on this protocol among the records"
    return pub


def _num(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.2f}"


# A row's columns (the LaTeX table leaves out the source, the relative difference and the note).
COLUMNS = {
    "source": "Source",
    "dataset": "Dataset",
    "method": "Method (published)",
    "ours": "Our row",
    "metric": "Metric",
    "published": "Published %",
    "ours_pct": "Ours %",
    "diff": "Diff (pts)",
    "rel": "Diff (rel.)",
    "note": "Note",
}
LATEX_COLUMNS = {
    "dataset": "Dataset",
    "method": "Method",
    "ours": "Our row",
    "metric": "Metric",
    "published": "Published",
    "ours_pct": "Ours",
    "diff": "Diff",
}


def _cells(r: pd.Series) -> dict[str, str]:
    return {
        "source": str(r["source"]),
        "dataset": str(r["dataset"]),
        "method": str(r["method"]),
        "ours": r["ours"] or "–",
        "metric": metric_title(r["metric"]),
        "published": f"{r['value_pct']:.2f}",
        "ours_pct": _num(r["ours_pct"]),
        "diff": "–" if pd.isna(r["diff_pts"]) else f"{r['diff_pts']:+.2f}",
        "rel": "–" if pd.isna(r["diff_rel_pct"]) else f"{r['diff_rel_pct']:+.1f}%",
        "note": str(r["note"]),
    }


def reproduction_markdown(frame: pd.DataFrame) -> str:
    rows = [[c[k] for k in COLUMNS] for c in (_cells(r) for _, r in frame.iterrows())]
    tie = frame["tie_mode"].iloc[0] if len(frame) else ""
    lines = [
        "### Reproduction: published numbers next to ours",
        "",
        *markdown_table(list(COLUMNS.values()), rows, "lllllrrrrl"),
        "",
        f"- Ours: same split files and full ranking, {tie} ties; the published SR-GNN-table "
        "numbers rank with their own code's tie handling.",
    ]
    return "\n".join(lines) + "\n"


def reproduction_latex(frame: pd.DataFrame) -> str:
    body = [
        latex_row([tex_escape(c[k]) for k in LATEX_COLUMNS])
        for c in (_cells(r) for _, r in frame.iterrows())
    ]
    lines = latex_table(
        r"Published numbers next to ours on the same split (values in \%).",
        "llllrrr",
        [latex_row(list(LATEX_COLUMNS.values()))],
        body,
    )
    return "\n".join(lines) + "\n"
