"""The headline table: our tuned models on the SR-GNN splits next to the published leaderboard.

Built from the study storages (by default every committed `sweeps/*.db`): each study keeps
its final retrainings (best trial, train -> test, one record per seed) in its `final`
attribute; and from the committed records of the neural peers run with their published
settings (results/records/peers, `make peers`), evaluated after every epoch; so `python -m
bench.report.headline` regenerates the table on any clone. Only retrainings evaluated
SR-GNN-comparably (`eval.unknown_test_items=miss`: predictions lost to items unknown to
training stay in the denominator as misses) are shown. Columns: the two splits x P@20,
MRR@20, P@10, MRR@10 (in %), cells "conservative ± std over seeds (standard)". Under the
table, the gap of our best GRU4Rec to the best published number is stated per split and
metric, and every row's trial budget, seeds and tuned hyperparameters are listed; studies
without a retraining yet are named with their progress, so an unfinished budget is never
hidden.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.protocol import BUDGET, SEARCHES, SPLITS, final_seeds
from bench.report.render import (
    latex_grouped_header,
    latex_row,
    latex_table,
    markdown_table,
    tex_escape,
)
from bench.report.reproduction import published
from bench.report.significance import ALPHA, RowEvents, paired_test
from bench.report.tables import metric_title, row_order
from bench.study import (
    ENQUEUED,
    FINISHED,
    PRUNERS_ATTR,
    best_within_budget,
    first_finished,
    study_cost,
)

METRICS = ("recall@20", "mrr@20", "recall@10", "mrr@10")
LEADERBOARD = ("NARM", "STAMP", "SR-GNN", "SGNN-HN", "GRU4REC (2015)")
# Records of the neural peers run with their published settings on train -> test, evaluated
# after every epoch (`make peers`), committed beside the other records.
PEER_RECORDS = Path("results/records/peers")
TITLE = "GRU4Rec tuned by this harness against the session-based leaderboard (SR-GNN splits)"
REGENERATE = "make headline"


@dataclass
class Headline:
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budget: list[list[str]] = field(default_factory=list)  # the appendix table
    pending: list[str] = field(default_factory=list)  # studies without a retraining yet


def column_titles() -> list[str]:
    return [f"{ds} {metric_title(m).replace('Recall', 'P')}" for ds in SPLITS for m in METRICS]


def cell(part: pd.DataFrame, metric: str) -> str:
    vals = part[metric].dropna() * 100 if metric in part else pd.Series(dtype=float)
    if vals.empty:
        return "–"
    text = f"{vals.mean():.2f}" + (f" ± {vals.std(ddof=1):.2f}" if len(vals) > 1 else "")
    alt = part.get(f"standard:{metric}")
    if alt is not None and alt.notna().any():
        text += f" ({alt.dropna().mean() * 100:.2f})"
    return text


def study_progress(study) -> str:
    """`name: N of T trials finished, best validation ...`: a study's state in one line."""
    from optuna.trial import TrialState

    finished = study.get_trials(deepcopy=False, states=FINISHED)
    target = study.user_attrs.get("n_trials_target", "?")
    if study.user_attrs.get("search_space") and target != "?":
        target = max(int(target), BUDGET)  # a probe's smaller target is not the budget
    text = f"{study.study_name}: {len(finished)} of {target} trials finished"
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        metric = best.user_attrs.get("objective_metric", "objective")
        text += f", best validation {metric_title(metric)} {best.value:.4f} (trial {best.number})"
    return text


def published_settings(runs: pd.DataFrame, curves: dict, pub: pd.DataFrame) -> dict:
    """Per peer label: its two rows as run here with its published settings (the numbers
    at the end of its schedule, and at its best test epoch per metric, its paper's
    protocol) and the statements of what the differences mean."""
    peers = (
        runs[
            runs["kind"].eq("model")
            & runs["phase"].isna()
            & runs["dataset"].isin(SPLITS)
            & runs["unknown_test_items_option"].eq("miss")
            & runs["tie_mode"].eq("conservative")
        ]
        if "kind" in runs and "phase" in runs
        else runs.iloc[:0]
    )
    out = {}
    for label, sub in peers.groupby("label"):
        end, best, notes = [], [], []
        for ds in SPLITS:
            part = sub[sub["dataset"] == ds]
            if part.empty:
                end += ["–"] * len(METRICS)
                best += ["–"] * len(METRICS)
                continue
            run = part.iloc[-1]
            epochs = [e for e in curves.get(run["record"], []) if "eval" in e]
            for m in METRICS:
                series = [e["eval"][m] * 100 for e in epochs]
                k = int(np.argmax(series)) if series else None
                end.append(f"{run[m] * 100:.2f}")
                best.append(f"{series[k]:.2f} (epoch {k + 1})" if series else "–")
                hit = pub[(pub["method"] == label) & (pub["dataset"] == ds) & (pub["metric"] == m)]
                if m.endswith("@20") and series and len(hit):
                    p = float(hit["value_pct"].iloc[0])
                    notes.append(
                        f"{label} on {ds} {metric_title(m).replace('Recall', 'P')}: published "
                        f"{p:.2f}; run here with its published settings {run[m] * 100:.2f} after "
                        f"its {len(epochs)} epochs and {series[k]:.2f} at its best test epoch "
                        f"({k + 1}): choosing the epoch on the test set adds "
                        f"{series[k] - run[m] * 100:+.2f} points, and the published number is "
                        f"{p - series[k]:+.2f} points from what this harness reproduces."
                    )
        out[label] = (
            [
                [f"{label} (published settings, run here: end of schedule)", *end],
                [f"{label} (published settings, run here: best test epoch)", *best],
            ],
            notes,
        )
    return out


def build(runs: pd.DataFrame, studies: list, curves: dict | None = None) -> Headline:
    out = Headline()
    pub = published()
    add_published_rows(out, pub, published_settings(runs, curves or {}, pub))
    ours = comparable_finals(out, runs)
    with_final = set(ours["study"]) if len(ours) else set()
    out.pending = [
        study_progress(s)
        for s in studies
        if s.study_name not in with_final and any(s.study_name.endswith(ds) for ds in SPLITS)
    ]
    by_name = {s.study_name: s for s in studies}
    out.pending += [
        f"{name}: not started"
        for name in (f"{e}_{ds}" for ds in SPLITS for e in SEARCHES)
        if name not in by_name
    ]
    if not len(ours):
        out.notes.append("No study on these splits has been retrained on the test split yet.")
        return out
    seeds: dict[str, int] = {}  # final seeds per row, in row order, for the protocol
    for label in sorted(ours["label"].unique(), key=row_order):
        sub = ours[ours["label"] == label]
        out.rows.append(
            [label, *(cell(sub[sub["dataset"] == ds], m) for ds in SPLITS for m in METRICS)]
        )
        for ds, part in sub.groupby("dataset"):
            seeds[label] = add_budget_row(out, label, ds, part, by_name.get(part.iloc[0]["study"]))
    if any(r[4].endswith("*") for r in out.budget):
        out.notes.append(
            "CPU-hours marked * include trials run before the CPU time of a trial "
            "was recorded, counted as wall time x 2 threads."
        )
    tests = significance(ours)
    for (ds, m), t in tests.items():
        if t["p"] is not None and t["p"] < ALPHA:
            column = SPLITS.index(ds) * len(METRICS) + METRICS.index(m) + 1
            for row in out.rows:
                if row[0] in (t["gru4rec"], t["baseline"]):
                    row[column] += " †"
    out.notes.append(protocol(studies, seeds))
    out.notes += gaps(ours, pub, tests)
    out.notes.append(ours_note(ours))
    return out


def add_published_rows(out: Headline, pub: pd.DataFrame, peers: dict) -> None:
    """Each leaderboard model's published row, then its rows run here (`peers`)."""
    for method in LEADERBOARD:
        cells = []
        for ds in SPLITS:
            for m in METRICS:
                hit = pub[(pub["method"] == method) & (pub["dataset"] == ds) & (pub["metric"] == m)]
                cells.append(f"{hit['value_pct'].iloc[0]:.2f}" if len(hit) else "–")
        out.rows.append([f"{method} (published)", *cells])
        rows, notes = peers.pop(method, ([], []))
        out.rows += rows
        out.notes += notes
    for rows, notes in peers.values():  # a peer without a published row
        out.rows += rows
        out.notes += notes


def comparable_finals(out: Headline, runs: pd.DataFrame) -> pd.DataFrame:
    """The final retrainings on the splits, evaluated SR-GNN-comparably (conservative ties);
    the others are named in a note."""
    if "phase" not in runs:
        return runs.iloc[:0]
    ours = runs[runs["phase"].eq("final") & runs["dataset"].isin(SPLITS)]
    if not len(ours):
        return ours
    other = ours[ours["unknown_test_items_option"] != "miss"]
    for study in sorted(set(other["study"])):
        out.notes.append(
            f"Left out: the retraining of study {study} (evaluated with "
            "eval.unknown_test_items=drop, not SR-GNN-comparable)."
        )
    return ours[
        (ours["unknown_test_items_option"] == "miss") & (ours["tie_mode"] == "conservative")
    ]


def add_budget_row(out: Headline, label: str, ds: str, part: pd.DataFrame, study) -> int:
    """The row's budget line on split `ds`, and notes on what it still lacks; returns the
    final seeds its search asks for."""
    first = part.iloc[0]
    untuned = pd.isna(first["n_trials_target"])
    target = None if untuned else int(first["n_trials_target"])
    # A study that ran past its budget counts as it stood at the budget.
    trials = (
        "no hyperparameters" if untuned else f"{min(int(first['n_trials']), target)} of {target}"
    )
    if not untuned and study is not None:
        best = best_within_budget(study, target)
        if best is not None and best.number != int(first["best_trial"]):
            out.notes.append(
                f"{label} on {ds}: retrained from trial {int(first['best_trial'])}, but the "
                f"best of the first {target} finished trials is {best.number}: "
                "to be retrained (python -m bench.studies)."
            )
        out.notes += accelerated(label, ds, study, target, part)
    pruned, cpu = spent(study, first["n_trials_target"]) if study else ("–", "–")
    out.budget.append(
        [
            label,
            ds,
            trials,
            pruned,
            cpu,
            "–" if untuned else str(int(first["best_trial"])),
            validation(study, first["best_trial"]) if study else "–",
            str(part["seed"].nunique()),
            first["params"],
        ]
    )
    if not untuned and first["n_trials"] < target:
        out.notes.append(
            f"{label} on {ds}: retrained after {trials} trials of its budget; "
            "the study is not finished."
        )
    want = final_seeds(str(first["study"]).removesuffix(f"_{ds}"))
    have = part["seed"].nunique()
    if have < want:
        out.notes.append(
            f"{label} on {ds}: {have} of its {want} final seeds so far; the row is "
            "their mean, the others are still to be trained."
        )
    return want


def ours_note(ours: pd.DataFrame) -> str:
    events = ours.groupby("dataset")["evaluated_events"].max().to_dict()
    return (
        "Ours: mean ± std over seeds, conservative ties (standard ties in brackets: an item "
        "scored equal to the target ranks below it under standard ties, above it under "
        "conservative ones, so the two differ where a model leaves many scores equal); full "
        "ranking over all training items; test events whose item is unknown to training count "
        "as misses (evaluated predictions: "
        + ", ".join(f"{ds} {int(n):,}" for ds, n in sorted(events.items()))
        + "). Tuned on a validation split carved from the training data, never on the test set."
    )


def significance(ours: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """Per split and metric: the best GRU4Rec row against the best other row tuned here,
    a baseline or a neural peer (means over seeds), with the two-sided Wilcoxon
    signed-rank test over the test events paired (per-event values averaged over seeds);
    p is None where ranks are missing or the two rows did not rank the same events."""
    out = {}
    for ds in SPLITS:
        part = ours[ours["dataset"] == ds]
        for m in METRICS:
            means = part.groupby("label")[m].mean()
            kinds = part.groupby("label")["kind"].first()
            gru = means[kinds[means.index] == "gru4rec"]
            base = means[kinds[means.index] != "gru4rec"]
            if gru.empty or base.empty:
                continue
            g, b = gru.idxmax(), base.idxmax()
            p, events = paired_test(
                RowEvents.of(part[part["label"] == g], m), RowEvents.of(part[part["label"] == b], m)
            )
            out[(ds, m)] = {
                "gru4rec": g,
                "baseline": b,
                "gru_value": gru.max() * 100,
                "base_value": base.max() * 100,
                "p": p,
                "events": events,
            }
    return out


def protocol(studies, seeds: dict[str, int]) -> str:
    """The tuning protocol under the table: budget, sampler, pruner(s), and the final seeds
    per row (`seeds`, label -> the count its search's conf sets)."""
    gru = sorted(
        (s for s in studies if s.study_name.startswith("gru4rec")), key=lambda s: s.study_name
    )
    history = {s.study_name: s.user_attrs.get(PRUNERS_ATTR, []) for s in gru}
    now = sorted({h[-1][1] for h in history.values() if h})
    # Trials a study ran under an earlier pruner than its present one, named per study (a
    # study's first pruner held from its trial 0: older runs noted it after the enqueued
    # first trial, as from trial 1).
    earlier = [
        f"{name} trials {0 if i == 0 else start}-{h[i + 1][0] - 1} by {label}"
        for name, h in history.items()
        for i, (start, label) in enumerate(h[:-1])
    ]
    pruned_by = "; ".join(now) or "a pruner the studies did not record"
    if earlier:
        pruned_by += " (earlier trials of a study under another: " + "; ".join(earlier) + ")"
    late = configured_late(studies)
    return (
        f"Protocol: every tuned method had the same budget of {BUDGET} finished trials (complete "
        f"or pruned) per split; a study that ran more is reported by the best of its first "
        f"{BUDGET}. TPE, seeded, with the configured parameters (the official paramfile for "
        "GRU4Rec, the published defaults for a baseline) as the first trial"
        + (f" ({late})" if late else "")
        + "; tuned on a validation split carved from the training data. GRU4Rec: epochs are the "
        "resource "
        f"(10 at most), pruned by {pruned_by}. "
        f"{retraining(seeds)} "
        f"† marks the best GRU4Rec and the best other tuned method (baseline or neural "
        f"peer) of a split and metric when they "
        f"differ significantly (two-sided Wilcoxon signed-rank test over the paired test events, "
        f"p < {ALPHA})."
    )


def retraining(seeds: dict[str, int]) -> str:
    """How often each row's best trial was retrained, grouped by seed count: the sentence
    follows conf/hparams_search rather than restating it."""
    many: dict[int, list[str]] = {}
    for label, n in seeds.items():
        if n > 1:
            many.setdefault(n, []).append(label.removesuffix(" (tuned)"))
    if not many:
        return (
            "The best trial retrained on train -> test once per method (each is "
            "deterministic given its parameters)."
        )
    groups = [
        f"{n} seeds for {and_list(labels)}" for n, labels in sorted(many.items(), reverse=True)
    ]
    return (
        "The best trial retrained on train -> test with "
        + "; ".join(groups)
        + " (the seed changes their initialisation and sampling), once for the others "
        "(deterministic given their parameters: the KNN methods sample neighbours by recency, "
        "not at random)."
    )


def and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def configured_late(studies) -> str:
    """The tuned studies whose configured parameters were not their first trial (older
    sweepers enqueued them late, or skipped values between a search space's steps)."""
    late = []
    for study in sorted(studies, key=lambda s: s.study_name):
        if not study.user_attrs.get("search_space"):
            continue  # nothing tuned (POP, S-POP): its one trial is the configured one
        first = [t.number for t in study.get_trials(deepcopy=False) if ENQUEUED in t.user_attrs]
        if not first:
            late.append(f"{study.study_name} never ran them")
        elif after_budget(study, min(first)):
            late.append(
                f"{study.study_name} ran them only after its budget, as trial "
                f"{min(first)}, which does not count"
            )
        elif min(first) > 0:
            late.append(f"{study.study_name} ran them as trial {min(first)}")
    if not late:
        return ""
    return (
        "except: " + "; ".join(late) + "; those studies began before the sweeper "
        "enqueued the configured values, or while it skipped values between a search "
        "space's steps, such as the official RSC15 layers=[100]"
    )


def after_budget(study, number: int) -> bool:
    """Whether trial `number` ran after the study's first n_trials_target finished trials:
    it is shown, but neither picks the best nor counts toward the cost."""
    budget = study.user_attrs.get("n_trials_target")
    if budget is None:
        return False
    counted = first_finished(study, int(budget))
    return len(counted) >= int(budget) and number > counted[-1].number


def spent(study, budget) -> tuple[str, str]:
    """(pruned trials, CPU-hours) of the first `budget` finished trials of a study."""
    if pd.isna(budget):
        return "–", "–"
    cost = study_cost(study, int(budget))
    return str(cost.pruned), f"{cost.cpu_seconds / 3600:.2f}" + ("*" if cost.cpu_estimated else "")


def accelerated(label: str, ds: str, study, budget: int, seeds: pd.DataFrame) -> list[str]:
    """Which of a study's counted trials and final seeds ran on a GPU: their CPU-hours are
    the host process's alone, so the row's cost is not all CPU work."""
    from bench.study import DEVICE_ATTR, first_finished, ran_on_gpu

    trials = [t.user_attrs.get(DEVICE_ATTR) for t in first_finished(study, budget)]
    gpu_trials = [d for d in trials if ran_on_gpu(d)]
    gpu_seeds = [d for d in seeds["device"] if ran_on_gpu(d)]
    if not gpu_trials and not gpu_seeds:
        return []
    names = ", ".join(sorted(set(gpu_trials) | set(map(str, gpu_seeds))))
    return [
        f"{label} on {ds}: {len(gpu_trials)} of its {len(trials)} trials and {len(gpu_seeds)} "
        f"of its {len(seeds)} final seeds ran on a GPU ({names}), the rest on CPU; its "
        "CPU-hours count only the host process's CPU time of the GPU runs."
    ]


def gaps(ours: pd.DataFrame, pub: pd.DataFrame, tests: dict | None = None) -> list[str]:
    """Per split and @20 metric: our best GRU4Rec against the best published number, and
    against the best other method tuned here under the same protocol, baseline or neural
    peer (with the paired test)."""
    lines = []
    gru = ours[ours["kind"] == "gru4rec"]
    board = pub[pub["method"].isin(LEADERBOARD)]
    for ds in SPLITS:
        for m in ("recall@20", "mrr@20"):
            best_pub = board[(board["dataset"] == ds) & (board["metric"] == m)]
            mine = gru[gru["dataset"] == ds].groupby("label")[m].mean() * 100
            if best_pub.empty or mine.empty:
                continue
            top = best_pub.loc[best_pub["value_pct"].idxmax()]
            gap = mine.max() - top["value_pct"]
            verdict = "at or above" if gap >= 0 else "SHORT of"
            beaten = best_pub[best_pub["value_pct"] <= mine.max()]["method"].tolist()
            line = (
                f"{ds} {metric_title(m).replace('Recall', 'P')}: our best GRU4Rec "
                f"({mine.idxmax()}, {mine.max():.2f}) is {verdict} the best published "
                f"({top['method']}, {top['value_pct']:.2f}) by {gap:+.2f} points"
                + (
                    f"; at or above {', '.join(beaten)}"
                    if beaten
                    else "; below every published row"
                )
            )
            t = (tests or {}).get((ds, m))
            if t is not None:
                diff = t["gru_value"] - t["base_value"]
                line += (
                    f"; against the best other method tuned here ({t['baseline']}, "
                    f"{t['base_value']:.2f}) "
                    f"{diff:+.2f} points"
                )
                if t["p"] is None:
                    line += " (no paired test: per-event ranks missing from a retraining)"
                else:
                    # p below the smallest double comes back as 0: say so, not "p = 0"
                    p_text = f"p = {t['p']:.2g}" if t["p"] > 0 else "p < 1e-300"
                    line += f", paired Wilcoxon {p_text} over {t['events']:,} test events"
            lines.append(line + ".")
    return lines


def validation(study, best_trial) -> str:
    """The retrained trial's validation value, and the configured (e.g. official) parameters'
    when the study ran them (its enqueued trial): what tuning gained before the test split."""
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    best = trials.get(int(best_trial)) if pd.notna(best_trial) else None
    if best is None or best.value is None:
        return "–"
    text = (
        f"{metric_title(best.user_attrs.get('objective_metric', 'objective@?'))} {best.value:.4f}"
    )
    configured = [
        t for t in trials.values() if ENQUEUED in t.user_attrs and t.state == TrialState.COMPLETE
    ]
    if configured and configured[-1].number != best.number:
        late = ", run after the budget" if after_budget(study, configured[-1].number) else ""
        text += f" (configured{late}: {configured[-1].value:.4f})"
    elif configured:
        text += " (the configured values)"
    return text


BUDGET_HEADER = [
    "Method",
    "Split",
    "Trials (done of budget)",
    "Pruned",
    "CPU-hours",
    "Best trial",
    "Validation objective",
    "Seeds",
    "Tuned hyperparameters",
]


def to_markdown(h: Headline) -> str:
    header = ["Method", *column_titles()]
    lines = [f"### {TITLE}", "", *markdown_table(header, h.rows, "l" + "r" * (len(header) - 1))]
    lines += ["", *[f"- {n}" for n in h.notes]]
    if h.pending:
        lines += [
            "",
            "Studies not yet retrained on the test split, or not started (no row above):",
            "",
        ]
        lines += [f"- {p}" for p in h.pending]
    if h.budget:
        lines += ["", "Trial budget, seeds and tuned hyperparameters per row:", ""]
        rows = [[*r[:-1], f"`{r[-1]}`"] for r in h.budget]
        lines += markdown_table(BUDGET_HEADER, rows, "l" * len(BUDGET_HEADER))
    lines += [
        "",
        f"Generated from the committed studies in `sweeps/` and the peers' records in "
        f"`{PEER_RECORDS}/` by `{REGENERATE}`.",
    ]
    return "\n".join(lines) + "\n"


def to_latex(h: Headline) -> str:
    esc = tex_escape
    columns = [metric_title(m).replace("Recall", "P") for m in METRICS]
    lines = latex_table(
        esc(TITLE + " (%). " + " ".join(h.notes)),
        "l" + "r" * len(METRICS) * len(SPLITS),
        latex_grouped_header(list(SPLITS), columns),
        [latex_row([esc(c) for c in r]) for r in h.rows],
        wide=True,
    )
    if h.budget:
        lines.append("")
        lines += latex_table(
            "Trial budget, seeds and tuned hyperparameters of the rows above.",
            "llllllllp{7cm}",
            [latex_row(BUDGET_HEADER)],
            [latex_row([esc(c) for c in r]) for r in h.budget],
            wide=True,
            size=r"\small",
        )
    lines += [f"% {esc(p)}" for p in h.pending]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.atomic import write_text
    from bench.paths import PROJECT_ROOT
    from bench.report import plots
    from bench.report.collect import collect, storage_error
    from bench.report.output import Staging, block_rows, default_storages, update_readme

    p = argparse.ArgumentParser(prog="python -m bench.report.headline", description=TITLE)
    p.add_argument(
        "--storage", action="append", help="Optuna storage URL (repeatable; default sweeps/*.db)"
    )
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results")
    p.add_argument(
        "--peers",
        type=Path,
        default=PROJECT_ROOT / PEER_RECORDS,
        help="records of the peers run with their published settings",
    )
    p.add_argument(
        "--readme", type=Path, help="file whose <!-- headline:start/end --> block gets the table"
    )
    args = p.parse_args(argv)
    storages = args.storage if args.storage is not None else default_storages()
    peers = [args.peers] if args.peers.exists() else []
    if not storages:
        print("error: --storage: no study storage given and no sweeps/*.db found", file=sys.stderr)
        return 2
    try:
        col = collect(peers, storages)
    except Exception as e:  # a storage URL that cannot be opened
        print(f"error: {storage_error(e)}", file=sys.stderr)
        return 2
    h = build(col.runs, col.studies, col.curves)
    md = to_markdown(h)
    if args.readme is not None and block_rows(args.readme, "headline") is None:
        print(
            f"error: --readme: {args.readme} has no <!-- headline:start/end --> block",
            file=sys.stderr,
        )
        return 2
    # Tables and the studies' figures are staged, then moved into place together.
    staging = Staging(args.out)
    try:
        write_text(staging.path("headline.md"), md)
        write_text(staging.path("headline.tex"), to_latex(h))
        for study in col.studies:
            _, reason = plots.study_figures(study, staging.path("figures"))
            if reason:
                print(f"no figure: {reason}")
        written = staging.commit()
    finally:
        staging.discard()
    print(f"wrote {len(written)} files under {args.out}: headline.md, headline.tex, study figures")
    if args.readme is not None:
        update_readme(args.readme, md, "headline")
        print(f"updated the headline block of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
