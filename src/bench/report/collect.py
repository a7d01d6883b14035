"""Gather result records and Optuna studies into one tidy table (one row per run).

Records are the `result.json` files written by `python -m bench.run`; studies are read
from the given storages. A trial whose record file is among the collected records is not
counted twice. Unreadable or partial records are skipped and listed, never fatal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.records import RANKS_KEY, RunRecord

METHOD_LABELS = {
    "pop": "POP",
    "spop": "S-POP",
    "itemknn": "Item-KNN",
    "bprmf": "BPR-MF",
    "sknn": "SKNN",
    "vsknn": "V-SKNN",
    "stan": "STAN",
    "sr": "SR",
    "ar": "AR",
}
# Models of the public interface (bench.api) shipped as peers; another model's row is its name.
PEER_LABELS = {"srgnn": "SR-GNN", "sgnnhn": "SGNN-HN", "narm": "NARM"}
# The kinds of record that make a comparison row (study trials do not).
ROW_KINDS = ("baseline", "model", "gru4rec")
LOSS_LABELS = {
    "ce": "XE",
    "bpr-max": "BPR-max",
    "top1-max": "TOP1-max",
    "top1": "TOP1",
    "bpr": "BPR",
}


@dataclass
class Collection:
    runs: pd.DataFrame
    curves: dict[str, list[dict]] = field(default_factory=dict)  # record path -> epochs
    studies: list = field(default_factory=list)  # optuna.Study objects
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def sampling_label(settings: dict) -> str:
    n_sample = settings.get("n_sample", 0)
    if n_sample == 0:
        return "in-batch" if "loss" in settings else "full softmax"
    if "loss" not in settings:  # BPTT: sampled softmax over shared negatives only
        return f"{n_sample} shared (alpha {settings['sample_alpha']:g})"
    return f"in-batch + {n_sample} shared (alpha {settings['sample_alpha']:g})"


def config_hash(record: RunRecord) -> str:
    """What makes two runs the same method apart from the seed."""
    key = {
        "method": record.method,
        "settings": {k: v for k, v in record.settings.items() if k != "seed"},
        "dataset": record.dataset.get("dataset"),
        "split": record.dataset.get("split"),
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def record_row(record: RunRecord, path: Path) -> dict:
    """One table row from a record."""
    hp = record.settings if record.kind == "gru4rec" else None
    study = record.study or {}
    protocol = record.protocol
    speeds = [e["events_per_s"] for e in record.epochs if "events_per_s" in e]
    row = {
        "dataset": record.dataset["dataset"],
        "dataset_label": record.dataset.get("label", ""),
        "split": record.dataset.get("split", "final"),
        "tie_mode": protocol["tie_mode"],
        "task": protocol.get("task", "next-item prediction at every position"),
        "candidates": protocol.get("candidates", ""),
        "unknown_test_items": protocol.get("unknown_test_items", ""),
        "unknown_test_items_option": record.eval.get("unknown_test_items", "drop"),
        "seen_item_filtering": protocol.get("seen_item_filtering", False),
        "evaluated_events": protocol.get("evaluated_events"),
        "fingerprint": protocol.get("test_fingerprint"),
        "kind": record.kind,
        "training": record.training,
        "method": record.method,
        "loss": hp.get("loss") if hp else None,
        "sampling": sampling_label(hp) if hp else None,
        "n_epochs": hp["n_epochs"] if hp else None,
        "params_source": record.params,
        "seed": record.seed,
        "study": study.get("name"),
        "phase": study.get("phase"),
        "trial": study.get("trial"),
        "n_trials": study.get("n_trials"),
        "best_trial": study.get("best_trial"),
        "config_hash": config_hash(record),
        "git_commit": record.git_commit,
        "train_s": record.timings.get("train_s"),
        "eval_s": record.timings.get("eval_s"),
        "events_per_s": float(np.mean(speeds)) if speeds else None,
        "device": record.device,
        "record": str(path),
        "ranks": str(path.parent / record.ranks_file) if record.ranks_file else None,
    }
    row["label"] = method_label(row)
    row["params"] = params_text(record)
    # What a GRU4Rec row shares with the other losses' rows when only the loss differs.
    row["shared_settings"] = (
        json.dumps({k: v for k, v in hp.items() if k not in LOSS_SETTINGS}, sort_keys=True)
        if hp
        else None
    )
    row.update({k: float(v) for k, v in record.metrics.items()})
    for mode, metrics in record.metrics_by_tie_mode.items():
        if mode != row["tie_mode"]:
            row.update({f"{mode}:{k}": float(v) for k, v in metrics.items()})
    return row


# The order the appendix lists GRU4Rec settings in (any others follow, sorted).
SETTINGS_ORDER = (
    "layers",
    "batch_size",
    "n_epochs",
    "dropout_p_embed",
    "dropout_p_hidden",
    "learning_rate",
    "momentum",
    "n_sample",
    "sample_alpha",
    "logq",
    "bpreg",
    "elu_param",
    "embedding",
    "constrained_embedding",
    "optimizer",
    "max_len",
    "patience",
    "stop_metric",
)
LOSS_SETTINGS = ("loss", "logq", "bpreg", "elu_param")
NOT_SHOWN = ("loss", "sample_store_size", "seed")  # the loss is in the label; the rest is plumbing


def params_text(record: RunRecord) -> str:
    """The hyperparameters that define the row, for the tables' appendix: exactly the
    settings of the method that ran."""
    settings = {k: v for k, v in record.settings.items() if k not in NOT_SHOWN}
    first = SETTINGS_ORDER if record.kind == "gru4rec" else ()  # a baseline's: sorted
    order = [k for k in first if k in settings] + sorted(set(settings) - set(first))
    return " ".join(f"{k}={_short(settings[k])}" for k in order) or "-"


def _short(value):
    """0.35 for a sampled 0.35000000000000003 (a float step's rounding, not a choice)."""
    return float(f"{value:.10g}") if isinstance(value, float) else value


def method_label(row: dict) -> str:
    if row["kind"] == "baseline":
        label = METHOD_LABELS.get(row["method"], row["method"])
    elif row["kind"] == "model":
        label = PEER_LABELS.get(row["method"], row["method"])
    elif row.get("training") == "bptt":
        label = "GRU4Rec BPTT"
    else:
        label = f"GRU4Rec {LOSS_LABELS.get(row['loss'], row['loss'])}"
    return label + (" (tuned)" if row["phase"] == "final" else "")


def read_records(roots: list[Path]) -> tuple[list[dict], dict, list[tuple[str, str]]]:
    rows, curves, skipped = [], {}, []
    paths = sorted(
        {p.resolve() for root in roots if root.exists() for p in root.rglob("result.json")}
    )
    for path in paths:
        try:
            record = RunRecord.read(path)
            rows.append(record_row(record, path))
            if any("eval" in e for e in record.epochs):
                curves[str(path)] = record.epochs
        except (OSError, ValueError, KeyError, TypeError) as e:
            skipped.append((str(path), str(e).splitlines()[0] if str(e) else type(e).__name__))
    return rows, curves, skipped


def read_studies(storages: list[str], known_records: set[str]) -> tuple[list, list[dict]]:
    """All studies of the storages; a row per finished trial and per final retraining
    (kept in the study's `final` attribute) without a collected record."""
    import optuna

    from bench.study import unreadable_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies, rows = [], []
    for url in storages:
        if problem := unreadable_storage(url):
            raise BenchError(f"{url}: {problem}")
        for summary in sorted(optuna.get_all_study_summaries(url), key=lambda s: s.study_name):
            study = optuna.load_study(study_name=summary.study_name, storage=url)
            studies.append(study)
            rows += final_rows(study, url, known_records)
            for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
                record = t.user_attrs.get("record")
                if record and str(Path(record).resolve()) in known_records:
                    continue
                metrics = {k: v for k, v in t.user_attrs.items() if "@" in k}
                rows.append(
                    {
                        "study": summary.study_name,
                        "dataset": t.user_attrs.get("dataset"),
                        "trial": t.number,
                        "split": t.user_attrs.get("split", "tune"),
                        "kind": "trial",
                        "method": summary.study_name,
                        "label": summary.study_name,
                        "record": record,
                        **metrics,
                    }
                )
    return studies, rows


def final_rows(study, url: str, known_records: set[str]) -> list[dict]:
    """The study's retrainings on the final split, as ordinary record rows."""
    final = study.user_attrs.get("final") or {}
    rows = []
    for record in final.get("records", []):
        path = Path(record.get("record_path") or f"{url}#{study.study_name}/seed{record['seed']}")
        if str(path.resolve()) in known_records:
            continue
        row = record_row(RunRecord.from_dict(record), path)
        if row["ranks"] and not Path(row["ranks"]).is_file():
            row["ranks"] = None  # per-event ranks stay with the run directory, not the study
        row["study"] = study.study_name
        row[RANKS_KEY] = record.get(RANKS_KEY)  # per-event ranks kept in the storage
        # A seed kept from an earlier retraining of the same best trial is the best of
        # all the trials finished since: the study's count, not the record's.
        row["n_trials"] = final.get("n_trials", row["n_trials"])
        row["n_trials_target"] = study.user_attrs.get("n_trials_target")
        if not study.user_attrs.get("search_space"):  # POP, S-POP: nothing was tuned
            row["label"] = row["label"].replace(" (tuned)", "")
            row["n_trials_target"] = None
        row["storage"] = url
        rows.append(row)
    return rows


def storage_error(e: Exception) -> str:
    """The one line for a storage URL that cannot be opened: the driver's first line."""
    if isinstance(e, BenchError):
        return f"--storage: {e}"
    first = (str(e).splitlines() or [""])[0]
    return f"--storage: cannot read studies ({type(e).__name__}: {first})"


def collect(roots: list[Path], storages: list[str]) -> Collection:
    rows, curves, skipped = read_records(roots)
    known = {r["record"] for r in rows}
    studies, trial_rows = read_studies(storages, known) if storages else ([], [])
    runs = pd.DataFrame(rows + trial_rows)
    for col in ("dataset", "label", "seed", "record", "split", "kind", "tie_mode"):
        if col not in runs:
            runs[col] = None
    if not runs.empty:
        runs = runs.sort_values(["dataset", "label", "seed", "record"], na_position="last")
        runs = runs.reset_index(drop=True)
    return Collection(runs, curves, studies, skipped)
