"""The comparison table of the GRU4Rec paper's layout, in Markdown, LaTeX and CSV.

Rows: baselines, then GRU4Rec variants; column groups: datasets, each with the chosen
metrics (in %). Best per column in bold, second best underlined; the last row gives the
best GRU4Rec's improvement over the best baseline. With several seeds a cell is
mean ± std. A dagger marks a GRU4Rec cell whose per-event values differ from the best
baseline of that column (two-sided Wilcoxon signed-rank test over the test events, seeds
averaged per event; bench.report.significance) with p < ALPHA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.report.collect import LOSS_LABELS, METHOD_LABELS, ROW_KINDS
from bench.report.render import (
    latex_grouped_header,
    latex_row,
    latex_table,
    markdown_table,
    tex_escape,
)
from bench.report.significance import ALPHA, RowEvents, paired_test

METRIC_NAMES = {"recall": "Recall", "hr": "HR", "mrr": "MRR", "ndcg": "nDCG"}


@dataclass
class Cell:
    mean: float
    std: float
    n: int
    p: float | None = None  # paired test against the column's best baseline (GRU4Rec rows)


@dataclass
class Table:
    title: str
    datasets: list[str]
    dataset_labels: dict[str, str]
    metrics: list[str]
    rows: list[str]
    kinds: dict[str, str]  # row -> "baseline" | "model" | "gru4rec"
    cells: dict[tuple[str, str, str], Cell]  # (row, dataset, metric)
    notes: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # row -> hyperparameters

    def column(self, dataset: str, metric: str) -> dict[str, Cell]:
        return {
            r: self.cells[(r, dataset, metric)]
            for r in self.rows
            if (r, dataset, metric) in self.cells
        }

    def ranking(self, dataset: str, metric: str) -> list[str]:
        col = self.column(dataset, metric)
        return sorted(col, key=lambda r: (-round(col[r].mean, 12), self.rows.index(r)))

    def best_baseline(self, dataset: str, metric: str) -> str | None:
        return next((r for r in self.ranking(dataset, metric) if self.kinds[r] == "baseline"), None)

    def improvement(self, dataset: str, metric: str) -> float | None:
        ranked = self.ranking(dataset, metric)
        col = self.column(dataset, metric)
        base = next((r for r in ranked if self.kinds[r] == "baseline"), None)
        ours = next((r for r in ranked if self.kinds[r] == "gru4rec"), None)
        if base is None or ours is None or col[base].mean == 0:
            return None
        return (col[ours].mean - col[base].mean) / col[base].mean * 100


def metric_title(metric: str) -> str:
    """mrr@20 -> MRR@20; a name without a cutoff (a study that did not record its
    objective's metric) is kept as it is."""
    name, at, k = metric.partition("@")
    return f"{METRIC_NAMES.get(name, name)}{at}{k}"


def row_order(label: str, kind: str = "gru4rec") -> tuple:
    """Baselines in the paper's order, then other models by name, then GRU4Rec losses,
    untuned before tuned."""
    base = label.replace(" (tuned)", "")
    tuned = label.endswith("(tuned)")
    methods = list(METHOD_LABELS.values())
    if base in methods:
        return (0, methods.index(base), tuned, label)
    if kind == "model":
        return (1, 0, tuned, label)
    losses = [f"GRU4Rec {v}" for v in LOSS_LABELS.values()]
    head = base.split(" [")[0]
    return (2, losses.index(head) if head in losses else len(losses), tuned, label)


def disambiguate(final: pd.DataFrame) -> pd.DataFrame:
    """Two configurations under one label in one dataset get their config hash appended."""
    final = final.copy()
    n_configs = final.groupby(["dataset", "label"])["config_hash"].transform("nunique")
    clash = n_configs > 1
    final.loc[clash, "label"] = (
        final.loc[clash, "label"] + " [" + final.loc[clash, "config_hash"] + "]"
    )
    return final


def table_runs(runs: pd.DataFrame, tie_mode: str) -> tuple[pd.DataFrame, list[str]]:
    """The runs a comparison table (and its figures) is made of, one row label per
    configuration; a seed run twice for a row counts once (the later record), so that a
    mean ± std is over distinct seeds, and a note names what was left out."""
    final = runs[
        (runs["split"] == "final") & (runs["tie_mode"] == tie_mode) & runs["kind"].isin(ROW_KINDS)
    ]
    if final.empty:
        raise ValueError(f"no final-split runs with tie mode '{tie_mode}' among the records")
    check_one_protocol(final)
    final = disambiguate(final)
    twice = final.duplicated(["label", "dataset", "seed"], keep="last")
    notes = [
        f"{label} on {ds}: {len(part)} more run(s) of seed(s) "
        f"{', '.join(map(str, sorted(set(part['seed']))))} left out (the same seed twice is "
        "the same run, not another sample)"
        for (label, ds), part in final[twice].groupby(["label", "dataset"])
    ]
    return final[~twice], notes


def comparison_table(
    runs: pd.DataFrame, metrics: list[str], tie_mode: str, title: str = "Comparison"
) -> Table:
    for m in metrics:
        if m not in runs:
            raise ValueError(
                f"--metrics: '{m}' is not in the records; recorded: "
                f"{sorted(c for c in runs if '@' in c)}"
            )
    final, repeated = table_runs(runs, tie_mode)
    datasets = sorted(final["dataset"].unique())
    kinds = dict(zip(final["label"], final["kind"]))
    rows = sorted(final["label"].unique(), key=lambda r: row_order(r, kinds[r]))
    cells: dict[tuple[str, str, str], Cell] = {}
    for (label, ds), group in final.groupby(["label", "dataset"]):
        for m in metrics:
            vals = group[m].to_numpy(dtype=np.float64)
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            cells[(label, ds, m)] = Cell(float(vals.mean()), std, len(vals))
    table = Table(title, datasets, {}, metrics, rows, kinds, cells)
    for ds in datasets:
        sub = final[final["dataset"] == ds]
        table.dataset_labels[ds] = str(sub["dataset_label"].iloc[0])
        for m in metrics:
            base = table.best_baseline(ds, m)
            if base is None:
                continue
            base_events = RowEvents.of(sub[sub["label"] == base], m)  # once per column
            for r in rows:
                if kinds[r] != "baseline" and (r, ds, m) in cells:
                    row_events = RowEvents.of(sub[sub["label"] == r], m)
                    cells[(r, ds, m)].p, _ = paired_test(row_events, base_events)
    table.params = row_params(final)
    table.notes = protocol_notes(final, tie_mode) + settings_notes(final) + repeated
    return table


# Record columns that define how a row was evaluated, and the option that sets each.
PROTOCOL = {
    "candidates": "the candidates",
    "seen_item_filtering": "eval.filter_seen",
    "unknown_test_items_option": "eval.unknown_test_items",
}


def check_one_protocol(final: pd.DataFrame) -> None:
    """A table never mixes evaluation protocols: rows evaluated differently are refused,
    naming the option and an example row of each value."""
    for column, option in PROTOCOL.items():
        if column not in final or final[column].astype(str).nunique() <= 1:
            continue
        parts = [
            f"{value} for {len(sub)} runs (e.g. {sub['label'].iloc[0]} on {sub['dataset'].iloc[0]})"
            for value, sub in final.groupby(final[column].astype(str))
        ]
        raise ValueError(
            f"{option}: the records mix {'; '.join(parts)}; a table holds one protocol: "
            "report each group from its own --records"
        )


def row_params(final: pd.DataFrame) -> dict[str, str]:
    """Each row's hyperparameters; per dataset where they differ (e.g. the official
    parameters of each dataset)."""
    out = {}
    for label, sub in final.groupby("label", sort=False):
        by_dataset = sub.drop_duplicates("dataset").set_index("dataset")["params"].sort_index()
        if by_dataset.nunique() <= 1:
            out[label] = str(by_dataset.iloc[0])
        else:
            out[label] = "; ".join(f"{ds}: {text}" for ds, text in by_dataset.items())
    return out


def settings_notes(final: pd.DataFrame) -> list[str]:
    """Say plainly when GRU4Rec rows differ in more than their loss."""
    gru = final[(final["training"] == "session_parallel") & final["shared_settings"].notna()]
    if gru.empty or all(sub["shared_settings"].nunique() <= 1 for _, sub in gru.groupby("dataset")):
        return []
    by_source = gru.groupby("params_source")["label"].agg(lambda s: ", ".join(sorted(set(s))))
    described = {"official": "the official parameters of each dataset (params=official)"}
    sources = "; ".join(
        f"{labels}: {described.get(src, 'the defaults')}" for src, labels in by_source.items()
    )
    return [
        "The GRU4Rec rows differ in more than the loss (network, batch, learning rate or "
        f"sampling; see the hyperparameters below): {sources}."
    ]


def protocol_notes(final: pd.DataFrame, tie_mode: str) -> list[str]:
    notes = []
    for ds, sub in final.groupby("dataset"):
        first = sub.iloc[0]
        notes.append(
            f"{ds}: {first['dataset_label']}, split '{first['split']}', "
            f"{int(first['evaluated_events'])} evaluated test events."
        )
    first = final.iloc[0]
    tasks = "; ".join(sorted(set(final["task"].dropna()))) if "task" in final else ""
    notes.append(
        f"Protocol: {tasks or 'next-item prediction at every position'}; candidates: "
        f"{first['candidates']}; "
        f"ties: {tie_mode}; seen-item filtering: "
        f"{'on' if first['seen_item_filtering'] else 'off'}; "
        f"test events with items unknown to training: {first['unknown_test_items']}."
    )
    seeds = final.groupby("label")["seed"].nunique()
    notes.append(
        "Values in %; "
        + (
            f"mean ± std over {seeds.min()}-{seeds.max()} seeds per row."
            if seeds.max() > 1
            else "one seed per row."
        )
    )
    trials = []
    for label, sub in final.groupby("label"):
        if sub["phase"].eq("final").any():
            n = sub["n_trials"].dropna()
            trials.append(
                f"{label}: {int(n.iloc[0]) if len(n) else '?'} trials (study "
                f"{sub['study'].iloc[0]})"
            )
    notes.append(
        "Trials per method: "
        + ("; ".join(trials) + "; other rows: " if trials else "")
        + "1 configuration each (defaults or official parameters, listed below)."
    )
    notes.append(
        "Best per column in bold, second best underlined. † : differs from the column's best "
        f"baseline with p < {ALPHA} (two-sided Wilcoxon signed-rank test over per-event values, "
        "seeds averaged per event)."
    )
    return notes


def _fmt(cell: Cell) -> str:
    text = f"{cell.mean * 100:.2f}"
    if cell.n > 1:
        text += f" ± {cell.std * 100:.2f}"
    return text


def _improvement_text(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def _styled_cells(
    table: Table, bold, underline, dagger, escape=lambda t: t
) -> dict[tuple[str, str, str], str]:
    out = {}
    for ds in table.datasets:
        for m in table.metrics:
            ranked = table.ranking(ds, m)
            for r, cell in table.column(ds, m).items():
                text = escape(_fmt(cell))
                if cell.p is not None and cell.p < ALPHA:
                    text += dagger
                if ranked and r == ranked[0]:
                    text = bold(text)
                elif len(ranked) > 1 and r == ranked[1]:
                    text = underline(text)
                out[(r, ds, m)] = text
    return out


def to_markdown(table: Table) -> str:
    styled = _styled_cells(table, lambda t: f"**{t}**", lambda t: f"<ins>{t}</ins>", "†")
    header = ["Method"] + [
        f"{ds} {metric_title(m)}" for ds in table.datasets for m in table.metrics
    ]
    rows = [
        [r, *(styled.get((r, ds, m), "–") for ds in table.datasets for m in table.metrics)]
        for r in table.rows
    ]
    imp = [
        _improvement_text(table.improvement(ds, m)) for ds in table.datasets for m in table.metrics
    ]
    rows.append(["*Improvement of best GRU4Rec over best baseline*", *imp])
    lines = [f"### {table.title}", "", *markdown_table(header, rows, "l" + "r" * len(imp)), ""]
    lines += [f"- {n}" for n in table.notes]
    lines += ["", "Hyperparameters per row:", ""]
    lines += [f"- {r}: `{table.params.get(r, '-')}`" for r in table.rows]
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    styled = _styled_cells(
        table,
        lambda t: rf"\textbf{{{t}}}",
        lambda t: rf"\underline{{{t}}}",
        r"$^\dagger$",
        tex_escape,
    )
    body, previous_kind = [], None
    for r in table.rows:
        if previous_kind == "baseline" and table.kinds[r] != "baseline":
            body.append(r"\midrule")
        previous_kind = table.kinds[r]
        vals = [styled.get((r, ds, m), "--") for ds in table.datasets for m in table.metrics]
        body.append(latex_row([tex_escape(r), *vals]))
    imp = [
        tex_escape(_improvement_text(table.improvement(ds, m)))
        for ds in table.datasets
        for m in table.metrics
    ]
    body += [r"\midrule", latex_row([r"\textit{Improvement}", *imp])]
    lines = latex_table(
        f"{tex_escape(table.title)}. " + tex_escape(" ".join(table.notes)),
        "l" + ("r" * len(table.metrics)) * len(table.datasets),
        latex_grouped_header(table.datasets, [metric_title(m) for m in table.metrics]),
        body,
    )
    params = [
        latex_row([tex_escape(r), rf"\texttt{{{tex_escape(table.params.get(r, '-'))}}}"])
        for r in table.rows
    ]
    lines.append("")
    lines += latex_table(
        f"{tex_escape(table.title)}: hyperparameters per row.",
        r"lp{0.7\linewidth}",
        [latex_row(["Method", "Hyperparameters"])],
        params,
    )
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    """Tidy CSV form: one line per row x dataset x metric."""
    out = []
    for r in table.rows:
        for ds in table.datasets:
            for m in table.metrics:
                cell = table.cells.get((r, ds, m))
                if cell is None:
                    continue
                rank = table.ranking(ds, m).index(r) + 1
                out.append(
                    {
                        "method": r,
                        "kind": table.kinds[r],
                        "dataset": ds,
                        "metric": m,
                        "mean": round(cell.mean, 6),
                        "std": round(cell.std, 6),
                        "n_seeds": cell.n,
                        "rank_in_column": rank,
                        "p_vs_best_baseline": None if cell.p is None else float(f"{cell.p:.3g}"),
                        "params": table.params.get(r, ""),
                    }
                )
    return pd.DataFrame(out)
