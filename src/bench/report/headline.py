"""The headline table: our runs on the SR-GNN splits next to the published leaderboard.

Rows: the published numbers (NARM, STAMP, SR-GNN, SGNN-HN and the 2015 GRU4Rec row of the
SR-GNN table), then our baselines and GRU4Rec variants. Columns: the two splits x P@20,
MRR@20, P@10, MRR@10 (in %). Our cells read "conservative (standard)" when the record
carries both tie modes; mean ± std over seeds. Under the table, per split, the gap of our
best GRU4Rec to the best published number is stated plainly, with the trial budget and
seeds of every row; the appendix lists every row's (tuned) hyperparameters.
"""

from __future__ import annotations

import pandas as pd

from bench.report.reproduction import published
from bench.report.tables import (
    disambiguate,
    latex_grouped_header,
    metric_title,
    row_order,
    tex_escape,
)

SPLITS = ("diginetica_srgnn", "yoochoose1_64")
METRICS = ("recall@20", "mrr@20", "recall@10", "mrr@10")
LEADERBOARD = ("NARM", "STAMP", "SR-GNN", "SGNN-HN", "GRU4REC (2015)")


def _cell(values: pd.Series, alt: pd.Series | None) -> str:
    vals = values.dropna() * 100
    if vals.empty:
        return "–"
    text = f"{vals.mean():.2f}" + (f" ± {vals.std(ddof=1):.2f}" if len(vals) > 1 else "")
    if alt is not None and alt.notna().any():
        text += f" ({alt.dropna().mean() * 100:.2f})"
    return text


def headline_rows(runs: pd.DataFrame) -> tuple[list[list[str]], list[str], dict[str, str]]:
    """(table rows, notes, appendix) for the headline table."""
    pub = published()
    rows = []
    for method in LEADERBOARD:
        cells = []
        for ds in SPLITS:
            for m in METRICS:
                hit = pub[(pub["method"] == method) & (pub["dataset"] == ds) & (pub["metric"] == m)]
                cells.append(f"{hit['value_pct'].iloc[0]:.2f}" if len(hit) else "–")
        rows.append([f"{method} (published)", *cells])
    final = runs[
        (runs["split"] == "final")
        & (runs["tie_mode"] == "conservative")
        & runs["kind"].isin(["baseline", "gru4rec"])
        & runs["dataset"].isin(SPLITS)
    ]
    notes, appendix = [], {}
    if final.empty:
        notes.append("No run of ours on these splits among the records yet.")
        return rows, notes, appendix
    final = disambiguate(final)
    for label in sorted(final["label"].unique(), key=row_order):
        sub = final[final["label"] == label]
        cells = []
        for ds in SPLITS:
            part = sub[sub["dataset"] == ds]
            for m in METRICS:
                alt = part.get(f"standard:{m}")
                cells.append(_cell(part[m], alt) if m in part and len(part) else "–")
        rows.append([label, *cells])
        seeds = sub.groupby("dataset")["seed"].nunique().to_dict()
        trials = sub["n_trials"].dropna()
        budget = f"{int(trials.iloc[0])} trials" if len(trials) else "untuned (1 configuration)"
        appendix[label] = f"{budget}; seeds per split {seeds}; {sub['params'].iloc[0]}"
    pub20 = pub[pub["method"].isin(LEADERBOARD) & pub["metric"].isin(["recall@20", "mrr@20"])]
    ours = final[final["kind"] == "gru4rec"]
    for ds in SPLITS:
        for m in ("recall@20", "mrr@20"):
            best_pub = pub20[(pub20["dataset"] == ds) & (pub20["metric"] == m)]
            mine = (
                ours[ours["dataset"] == ds].groupby("label")[m].mean() * 100 if m in ours else None
            )
            if best_pub.empty or mine is None or mine.empty:
                continue
            top = best_pub.loc[best_pub["value_pct"].idxmax()]
            gap = mine.max() - top["value_pct"]
            verdict = "at or above" if gap >= 0 else "SHORT of"
            notes.append(
                f"{ds} {metric_title(m)}: our best GRU4Rec ({mine.idxmax()}, {mine.max():.2f}) is "
                f"{verdict} the best published ({top['method']}, {top['value_pct']:.2f}) by {gap:+.2f} points."
            )
    unknown = sorted(set(final["unknown_test_items"].dropna()))
    notes.append(
        "Ours: full ranking, conservative ties (standard in brackets where recorded); "
        f"items unknown to training: {' | '.join(unknown)}."
    )
    return rows, notes, appendix


def headline_markdown(runs: pd.DataFrame) -> str:
    rows, notes, appendix = headline_rows(runs)
    header = ["Method"] + [
        f"{ds} {metric_title(m).replace('Recall', 'P')}" for ds in SPLITS for m in METRICS
    ]
    lines = ["### Headline: GRU4Rec against the session-based leaderboard (SR-GNN splits)", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        *[f"- {n}" for n in notes],
        "",
        "Trial budget, seeds and hyperparameters per row:",
        "",
    ]
    lines += [f"- {k}: `{v}`" for k, v in appendix.items()]
    return "\n".join(lines) + "\n"


def headline_latex(runs: pd.DataFrame) -> str:
    rows, notes, appendix = headline_rows(runs)

    esc = tex_escape

    n = len(METRICS)
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\caption{GRU4Rec against the session-based leaderboard on the SR-GNN splits (\%). "
        + esc(" ".join(notes))
        + "}",
        r"\begin{tabular}{l" + "r" * n * len(SPLITS) + "}",
        r"\toprule",
        *latex_grouped_header(
            list(SPLITS), [metric_title(m).replace("Recall", "P") for m in METRICS]
        ),
        r"\midrule",
    ]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
    lines += [r"% Trial budget, seeds and hyperparameters per row:"]
    lines += [f"% {k}: {v}" for k, v in appendix.items()]
    return "\n".join(lines) + "\n"
