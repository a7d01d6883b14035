"""Loading the dataset a config names: the synthetic default or session files on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.data import synthetic
from bench.data.io import Columns, read_session_file
from bench.data.sessions import ItemMap, Sessions, to_sessions
from bench.errors import BenchError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> str:
    """BENCH_DATA_DIR, else a `shared/data` beside the checkout, else '' (unset)."""
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return env
    for base in (PROJECT_ROOT, Path.cwd()):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return str(cand)
    return ""


@dataclass
class PreparedData:
    name: str
    label: str
    item_map: ItemMap
    train: Sessions
    test: Sessions
    train_path: str
    test_path: str

    def stats(self) -> dict:
        return {
            "dataset": self.name,
            "label": self.label,
            "n_items": len(self.item_map),
            "train_sessions": self.train.n_sessions,
            "train_events": self.train.n_events,
            "test_sessions": self.test.n_sessions,
            "test_events": self.test.n_events,
            "test_events_dropped_unknown_item": self.test.n_dropped_events,
            "test_predictions": int(self.test.n_events - self.test.n_sessions),
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


def load_dataset(ds: dict, data_dir: str) -> PreparedData:
    """`ds` is the `dataset` config node as a plain dict."""
    kind = ds.get("kind", "files")
    if kind == "synthetic":
        train_df, test_df = synthetic.generate(**dict(ds.get("params") or {}))
        train_path = test_path = f"<synthetic generator {dict(ds.get('params') or {})}>"
        label = synthetic.LABEL
    elif kind == "files":
        cols = Columns(**dict(ds.get("columns") or {}))
        fmt = ds.get("format", "auto")
        train_p = _resolve(ds.get("train", ""), "train", data_dir)
        test_p = _resolve(ds.get("test", ""), "test", data_dir)
        train_df = read_session_file(train_p, cols, fmt)
        test_df = read_session_file(test_p, cols, fmt)
        train_path, test_path = str(train_p), str(test_p)
        label = ds.get("label", ds.get("name", "files"))
    else:
        raise BenchError(f"dataset.kind: unknown '{kind}'; expected synthetic or files")
    item_map = ItemMap.from_events(train_df)
    train = to_sessions(train_df, item_map, source=train_path)
    test = to_sessions(test_df, item_map, source=test_path)
    if test.n_events - test.n_sessions <= 0:
        raise BenchError(
            f"{test_path}: no test session has two or more known items; nothing to predict"
        )
    return PreparedData(ds.get("name", kind), label, item_map, train, test, train_path, test_path)
