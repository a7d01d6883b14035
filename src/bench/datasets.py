"""Loading the dataset a config names: the synthetic default or session files on disk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import synthetic
from bench.data.io import EVALUATE, SESSION, TIME, TIMED, Columns, read_session_file
from bench.data.sessions import ItemMap, Sessions, to_sessions
from bench.errors import BenchError


@dataclass
class PreparedData:
    name: str
    label: str
    item_map: ItemMap
    train: Sessions
    test: Sessions
    train_path: str
    test_path: str
    split: str = "final"
    # Predictions the test file asks for before items unknown to training are dropped:
    # the denominator of protocols that count those as misses (SR-GNN's).
    original_predictions: int | None = None

    @property
    def unscorable_predictions(self) -> int:
        if self.original_predictions is None:
            return 0
        return max(0, self.original_predictions - self.test.n_predictions)

    def test_fingerprint(self) -> str:
        """Hash of the evaluated test events (original item ids, session bounds): runs with
        equal fingerprints rank the same events in the same order, so their per-event
        ranks can be paired."""
        h = hashlib.sha1(self.test.offsets.tobytes())
        h.update("\x1f".join(map(str, self.item_map.ids[self.test.items])).encode())
        return h.hexdigest()[:16]

    def stats(self) -> dict:
        return {
            "dataset": self.name,
            "label": self.label,
            "split": self.split,
            "n_items": len(self.item_map),
            "train_sessions": self.train.n_sessions,
            "train_events": self.train.n_events,
            "test_sessions": self.test.n_sessions,
            "test_events": self.test.n_events,
            "test_events_dropped_unknown_item": self.test.n_dropped_events,
            "test_predictions": self.test.n_predictions,
            "test_predictions_before_dropping_unknown_items": self.original_predictions,
            "train_path": self.train_path,
            "test_path": self.test_path,
        }


def _resolve(path: str, option: str, data_dir: str) -> Path:
    if not path:
        raise BenchError(f"dataset.{option}: no file given; expected a path to a session log")
    p = Path(path)
    if not p.is_absolute() and not p.exists() and data_dir:
        p = Path(data_dir) / p
    if not p.exists():
        hint = "" if data_dir else " (data_dir is unset: set BENCH_DATA_DIR or data_dir=...)"
        raise BenchError(f"dataset.{option}: file not found: {p}{hint}")
    return p


SPLITS = ("final", "tune")


def carve_validation(
    df: pd.DataFrame, fraction: float, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tuning split from training data: the most recent `fraction` of sessions (by start
    time; file order where there is no time) become validation, the rest train_tr."""
    number = isinstance(fraction, int | float) and not isinstance(fraction, bool)
    if not (number and 0 < fraction < 1):
        raise BenchError(
            f"dataset.tune.valid_fraction: got {fraction!r}; expected a number in (0, 1)"
        )
    codes, _ = pd.factorize(df[SESSION], sort=False)
    starts = pd.Series(df[TIME].to_numpy()).groupby(codes).min().to_numpy()
    order = np.argsort(starts, kind="stable")
    n_valid = round(len(order) * fraction)
    if n_valid == 0 or n_valid == len(order):
        raise BenchError(
            f"{source}: a valid_fraction of {fraction} leaves an empty train or validation part"
        )
    is_valid = np.zeros(len(order), dtype=bool)
    is_valid[order[-n_valid:]] = True
    mask = is_valid[codes]
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


def history_then_target(history: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-out test sessions: each user's history followed by the held-out item, of
    which only the held-out item is ranked (the model reads the history first)."""
    hist = history[history[SESSION].isin(set(targets[SESSION]))]
    df = pd.concat([hist.assign(**{EVALUATE: False}), targets.assign(**{EVALUATE: True})])
    df = df.sort_values([SESSION, EVALUATE], kind="mergesort")  # target last, history in order
    df[TIME] = df.groupby(SESSION, sort=False).cumcount().astype(float)
    df = df.reset_index(drop=True)
    df.attrs[TIMED] = False  # positions, not timestamps
    return df


def load_dataset(ds: dict, data_dir: str, split: str = "final") -> PreparedData:
    """`ds` is the `dataset` config node as a plain dict.

    split="final" trains on the full training data and evaluates on the test set;
    split="tune" trains on train_tr and evaluates on train_valid (given as files under
    `tune`, or carved from the training data by `tune.valid_fraction`).
    """
    return _load(ds, data_dir, split)[0]


def _load(ds: dict, data_dir: str, split: str) -> tuple[PreparedData, dict | None]:
    """The dataset, and for recipe datasets all the recipe's parts (None otherwise)."""
    parts = None
    if split not in SPLITS:
        raise BenchError(f"split: unknown '{split}'; expected one of {', '.join(SPLITS)}")
    kind = ds.get("kind", "files")
    tune = dict(ds.get("tune") or {})
    if kind == "synthetic":
        if problem := synthetic.check_params(dict(ds.get("params") or {})):
            raise BenchError(problem)
        train_df, test_df = synthetic.generate(**dict(ds.get("params") or {}))
        train_path = test_path = f"<synthetic generator {dict(ds.get('params') or {})}>"
        label = synthetic.LABEL
    elif kind == "files":
        train_df, test_df, train_path, test_path = _read_files(ds, data_dir, split, tune)
        label = ds.get("label", ds.get("name", "files"))
    elif kind == "recipe":
        train_df, test_df, train_path, test_path, label, parts = _read_recipe(ds, data_dir, split)
        tune = {"train": "prepared by the recipe"}
    else:
        raise BenchError(f"dataset.kind: unknown '{kind}'; expected synthetic, files or recipe")
    if split == "tune" and not tune.get("train"):
        fraction = tune.get("valid_fraction", 0.1)
        train_df, test_df = carve_validation(train_df, fraction, train_path)
        test_path = f"{train_path} [most recent {fraction:g} of sessions]"
        train_path = f"{train_path} [all but the most recent {fraction:g} of sessions]"
    item_map = ItemMap.from_events(train_df)
    train = to_sessions(train_df, item_map, source=train_path)
    test = to_sessions(test_df, item_map, source=test_path)
    if test.n_predictions <= 0:
        raise BenchError(
            f"{test_path}: no test session has two or more known items; nothing to predict"
        )
    if EVALUATE in test_df:
        original = int(test_df[EVALUATE].sum())
    else:
        original = int(len(test_df) - test_df[SESSION].nunique())
    data = PreparedData(
        ds.get("name", kind), label, item_map, train, test, train_path, test_path, split, original
    )
    return data, parts


def _read_files(ds: dict, data_dir: str, split: str, tune: dict):
    """(train, test, their paths) of a files dataset; no test where validation is carved."""
    cols = Columns(**dict(ds.get("columns") or {}))
    fmt = ds.get("format", "auto")
    if split == "tune" and tune.get("train"):
        train_p = _resolve(tune.get("train", ""), "tune.train", data_dir)
        test_p = _resolve(tune.get("valid", ""), "tune.valid", data_dir)
    else:
        train_p = _resolve(ds.get("train", ""), "train", data_dir)
        test_p = _resolve(ds.get("test", ""), "test", data_dir)
    train_df = read_session_file(train_p, cols, fmt)
    test_df = (
        None
        if split == "tune" and not tune.get("train")
        else read_session_file(test_p, cols, ds.get("test_format", fmt))
    )
    return train_df, test_df, str(train_p), str(test_p)


def _read_recipe(ds: dict, data_dir: str, split: str):
    """(train, test, their paths, label, all the recipe's parts) of a recipe dataset."""
    from bench.data.prepare import RECIPES, prepare

    raw = _resolve(ds.get("raw", ""), "raw", data_dir)
    prepared = prepare(str(ds.get("recipe")), raw, dict(ds.get("options") or {}))
    names = ("train", "test") if split == "final" else ("train_tr", "train_valid")
    train_df, test_df = (prepared.parts[n] for n in names)
    train_path, test_path = (f"{prepared.path / n}.parquet" for n in names)
    if RECIPES[str(ds.get("recipe"))].build == "leave_one_out":
        test_df = history_then_target(train_df, test_df)
        test_path = f"{train_path} (history) + {test_path} (last item ranked)"
    label = ds.get("label", f"{ds.get('recipe')} recipe on {raw.name}")
    return train_df, test_df, train_path, test_path, label, prepared.parts


def load_user_histories(ds: dict, data_dir: str) -> tuple[PreparedData, Sessions, Sessions]:
    """For sequence-aware training on a leave-one-out dataset: the final split (histories ->
    last item), plus the training histories without the validation item and the validation
    sessions (history -> second-to-last item), all on the final split's item map."""
    from bench.data.prepare import RECIPES

    recipe = str(ds.get("recipe"))
    if (
        ds.get("kind") != "recipe"
        or RECIPES.get(recipe) is None
        or RECIPES[recipe].build != "leave_one_out"
    ):
        raise BenchError(
            f"model=gru4rec_seq: dataset '{ds.get('name')}' is not a leave-one-out dataset; "
            "expected one "
            "of ml-100k, ml-latest-small, ml-1m, ml-20m (or dataset=recipe with such a recipe)"
        )
    final, parts = _load(ds, data_dir, "final")  # the recipe is prepared (or loaded) once
    train_tr = to_sessions(parts["train_tr"], final.item_map, source="train_tr")
    valid = to_sessions(
        history_then_target(parts["train_tr"], parts["train_valid"]), final.item_map, "valid"
    )
    return final, train_tr, valid
