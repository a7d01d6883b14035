"""Figures (PNG and PDF): metrics against K, learning curves, throughput, Optuna studies.

Files carry no timestamps (PDF CreationDate off), so running the report twice rewrites
identical figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from bench.report.tables import metric_title, row_order

PNG_META = {"Software": None}
PDF_META = {"CreationDate": None, "Producer": None, "Creator": None}


def save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight", metadata=PNG_META)
    fig.savefig(paths[1], bbox_inches="tight", metadata=PDF_META)
    plt.close(fig)
    return paths


def by_row_order(frame: pd.DataFrame):
    """(label, runs, colour) in the tables' row order, one distinct colour per method."""
    kinds = dict(zip(frame["label"], frame["kind"]))
    labels = sorted(frame["label"].unique(), key=lambda r: row_order(r, kinds[r]))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    for i, label in enumerate(labels):
        yield label, frame[frame["label"] == label], cmap(i % cmap.N)


def metrics_vs_k(final: pd.DataFrame, dataset: str, cutoffs: list[int], out: Path) -> list[Path]:
    sub = final[final["dataset"] == dataset]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, name in zip(axes, ("recall", "mrr")):
        for label, group, colour in by_row_order(sub):
            ks = [k for k in cutoffs if f"{name}@{k}" in group]
            ys = [group[f"{name}@{k}"].mean() * 100 for k in ks]
            style = "-" if group["kind"].iloc[0] == "gru4rec" else "--"
            ax.plot(ks, ys, style, marker="o", color=colour, label=label)
        ax.set_xlabel("K (length of the recommendation list)")
        ax.set_ylabel(f"{metric_title(f'{name}@K')} (%)")
        ax.set_xticks(cutoffs)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{dataset}: Recall@K")
    axes[1].set_title(f"{dataset}: MRR@K")
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return save(fig, out, f"metrics_vs_k_{dataset}")


def learning_curves(
    final: pd.DataFrame, curves: dict, dataset: str, metric: str, out: Path
) -> list[Path]:
    """The metric after each epoch: on the test set for session-parallel runs with
    eval.per_epoch, on the validation item for BPTT runs (their early-stopping signal)."""
    sub = final[(final["dataset"] == dataset) & final["record"].isin(curves)]
    if sub.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, group, colour in by_row_order(sub):
        path = group["record"].iloc[0]  # the first seed
        epochs = [e for e in curves[path] if metric in e.get("eval", {})]
        on = "validation" if group["training"].iloc[0] == "bptt" else "test"
        ax.plot(
            [e["epoch"] for e in epochs],
            [e["eval"][metric] * 100 for e in epochs],
            marker="o",
            color=colour,
            label=f"{label} ({on} set)",
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric_title(metric)} after the epoch (%)")
    ax.set_title(f"{dataset}: {metric_title(metric)} after each epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out, f"learning_curves_{dataset}")


def throughput_rows(parts: list[dict]) -> pd.DataFrame:
    """Events/s of each implementation per CPU setting; `layers` names the dataset too, and
    the CPU where the row recorded it (a setting measured on two hosts is two lines)."""
    return pd.DataFrame(
        {
            "loss": r.get("loss", part.get("loss")),
            "layers": f"{part['dataset']}, {r['layers']}",
            "host": r.get("host", ""),
            "batch_size": r["batch_size"],
            "ours": r["bare"]["events_per_s"],
            "autograd": (r.get("autograd") or {}).get("events_per_s"),
            "fused_pytorch": (r.get("fused_pytorch") or {}).get("events_per_s"),
            "official": (r.get("official") or {}).get("events_per_s"),
        }
        for part in parts
        for r in part["rows"]
        if r["device"] == "cpu"
    )


def throughput(benchmark_json: Path, out: Path) -> list[Path]:
    """Training events/s against batch size: a panel per loss, a line per dataset, layer
    size and implementation (official, ours unoptimised, ours without the compiled kernels,
    ours default: whichever the benchmark ran), CPU rows. A collection (full splits and the
    catalogue sweep) is drawn by its named datasets' parts."""
    if not benchmark_json.is_file():
        return []
    data = json.loads(benchmark_json.read_text())
    parts = [p for p in data.get("parts", [data]) if p.get("catalogue") is None]
    if not parts:
        return []
    rows = throughput_rows(parts)
    if rows.empty:
        return []
    losses = list(dict.fromkeys(rows["loss"]))
    fig, axes = plt.subplots(1, len(losses), figsize=(6.5 * len(losses), 4.2), squeeze=False)
    styles = {
        "ours": ("-o", "ours (default step)"),
        "autograd": (":^", "ours (autograd step)"),
        "fused_pytorch": ("-.v", "ours (without compiled kernels)"),
    }
    styles["official"] = ("--s", "official PyTorch")
    for ax, loss in zip(axes[0], losses):
        for (layers, host), group in rows[rows["loss"] == loss].groupby(["layers", "host"]):
            group = group.sort_values("batch_size")
            on = f", {host}" if host else ""
            for col, (style, label) in styles.items():
                if group[col].notna().any():
                    ax.plot(
                        group["batch_size"], group[col], style, label=f"{label}, {layers} units{on}"
                    )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(rows["batch_size"].unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("batch size (sessions in parallel)")
        ax.set_ylabel("training throughput (events/s)")
        machine = parts[0].get("machine") or {}
        events = " / ".join(
            f"{p['dataset']}: {p['train_events'] - p['train_sessions']:,} training events"
            for p in parts
        )
        ax.set_title(
            f"Training speed on CPU ({machine.get('cpu_count', '?')} cores): {loss} loss, "
            f"n_sample {parts[0].get('n_sample')}\n{events}",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out, "throughput")


def study_figures(study, out: Path) -> tuple[list[Path], str | None]:
    """Optimisation history and parameter importance; (files, reason if any was skipped)."""
    # Optuna's plots switch the global style to ggplot; keep that out of later figures.
    with matplotlib.rc_context():
        return _study_figures(study, out)


# Below this many complete trials an importance says nothing about the parameters (and
# with two, Optuna's PED-ANOVA drew a different figure from one run to the next).
MIN_IMPORTANCE_TRIALS = 5


def _study_figures(study, out: Path) -> tuple[list[Path], str | None]:
    import warnings

    import optuna
    from optuna.visualization import matplotlib as ovm

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if not done:
        return [], f"study {study.study_name}: no complete trial"
    paths = []
    metric = done[0].user_attrs.get("objective_metric", "objective")
    ax = ovm.plot_optimization_history(study)
    ax.set_title("", loc="left")  # Optuna's own titles would overlap ours
    ax.set_title(f"Study {study.study_name}\noptimisation history", fontsize=10)
    ax.set_ylabel(f"validation {metric} (objective)")
    paths += save(ax.figure, out, f"study_{study.study_name}_history")
    if len(done) < MIN_IMPORTANCE_TRIALS or not any(len(t.params) for t in done):
        return (
            paths,
            f"study {study.study_name}: parameter importance needs "
            f"{MIN_IMPORTANCE_TRIALS}+ complete trials with parameters",
        )
    try:
        ax = ovm.plot_param_importances(study)
    except (RuntimeError, ValueError) as e:
        return paths, f"study {study.study_name}: parameter importance not computable ({e})"
    ax.set_title("", loc="left")
    ax.set_title(
        f"Study {study.study_name}\nparameter importance for validation {metric}", fontsize=10
    )
    paths += save(ax.figure, out, f"study_{study.study_name}_importance")
    return paths, None
