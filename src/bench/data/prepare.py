"""Named recipes, run once and cached as Parquet under a key of recipe + options + raw hash.

A second run with the same raw file and options loads the cache at once; a changed raw
file or option gives a new key and rebuilds. Each entry is written into a temporary
folder that is renamed into place only when complete, so an interrupted run never leaves
a half-written entry. The statistics (counts after every step, per-part events, sessions,
items, samples, date range) are stored next to the data as stats.json.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.data import codes, recipes
from bench.data import raw as raw_readers
from bench.data.download import file_digest
from bench.data.io import TIME, Columns
from bench.data.stats import split_statistics
from bench.errors import BenchError
from bench.knob_types import mismatch, parameter_types
from bench.paths import default_cache_dir

PARTS = ("train", "test", "train_tr", "train_valid")


@dataclass(frozen=True)
class Recipe:
    reader: str
    build: str  # function name in bench.data.recipes
    options: dict = field(default_factory=dict)
    about: str = ""
    raw_hint: str = ""  # where the raw file is published, for `download`


RECIPES: dict[str, Recipe] = {
    "rsc15": Recipe(
        "yoochoose_clicks",
        "rsc15",
        {},
        "official GRU4Rec RSC15 (no dedup, last day)",
        "yoochoose-clicks.dat of the RecSys Challenge 2015",
    ),
    "yoochoose": Recipe(
        "yoochoose_clicks",
        "official",
        {"window_days": 1},
        "official GRU4Rec Yoochoose (dedup, iterative, 1 day)",
        "yoochoose-clicks.dat (+ yoochoose-test.dat concatenated) of the RecSys Challenge 2015",
    ),
    "diginetica": Recipe(
        "diginetica_views",
        "official",
        {"window_days": 7},
        "official GRU4Rec Diginetica (dedup, iterative, 7 days)",
        "train-item-views.csv of the CIKM Cup 2016 (Diginetica)",
    ),
    "retailrocket": Recipe(
        "retailrocket_sessions",
        "official",
        {"window_days": 7, "tsplit": 1442545200},
        "official GRU4Rec RetailRocket on already sessionized views (timestamp, user_id, "
        "item_id, session_id)",
        "a sessionized RetailRocket views TSV (for Kaggle's events.csv use retailrocket_events)",
    ),
    "retailrocket_events": Recipe(
        "retailrocket_events",
        "official",
        {"window_days": 7, "tsplit": 1442545200},
        "official GRU4Rec RetailRocket from Kaggle's events.csv (1-hour sessions, views)",
        "events.csv of the Retailrocket dataset (Kaggle)",
    ),
    "rees46": Recipe(
        "rees46",
        "official",
        {"window_days": 1, "tsplit": 1575158400},
        "official GRU4Rec REES46 (views, 1-hour user sessions, test = 2019-11-30)",
        "2019-Oct.csv and 2019-Nov.csv of REES46 (Kaggle), concatenated into one file",
    ),
    "coveo": Recipe(
        "coveo",
        "official",
        {"window_days": 1},
        "official GRU4Rec Coveo (detail views, 1-hour sessions)",
        "browsing_train.csv of the Coveo SIGIR eCom 2021 challenge",
    ),
    "srgnn_diginetica": Recipe(
        "diginetica_views",
        "srgnn",
        {"dataset": "diginetica"},
        "SR-GNN Diginetica (7-day test)",
        "train-item-views.csv of the CIKM Cup 2016 (Diginetica)",
    ),
    "srgnn_yoochoose1_64": Recipe(
        "yoochoose_clicks",
        "srgnn",
        {"dataset": "yoochoose", "fraction": 64},
        "SR-GNN yoochoose 1/64 (1-day test, newest 1/64 of training samples)",
        "yoochoose-clicks.dat of the RecSys Challenge 2015",
    ),
    "srgnn_yoochoose1_4": Recipe(
        "yoochoose_clicks",
        "srgnn",
        {"dataset": "yoochoose", "fraction": 4},
        "SR-GNN yoochoose 1/4",
        "yoochoose-clicks.dat of the RecSys Challenge 2015",
    ),
    "ml-100k": Recipe(
        "movielens_udata",
        "leave_one_out",
        {},
        "MovieLens 100k, leave-one-out",
        "ml-100k.zip: u.data",
    ),
    "ml-latest-small": Recipe(
        "movielens_csv",
        "leave_one_out",
        {},
        "MovieLens latest-small, leave-one-out",
        "ml-latest-small.zip: ratings.csv",
    ),
    "ml-1m": Recipe(
        "movielens_dat",
        "leave_one_out",
        {},
        "MovieLens 1M, leave-one-out",
        "ml-1m.zip: ratings.dat",
    ),
    "ml-20m": Recipe(
        "movielens_csv",
        "leave_one_out",
        {},
        "MovieLens 20M, leave-one-out",
        "ml-20m.zip: ratings.csv",
    ),
    "ml-1m-bert4rec": Recipe(
        "bert4rec_txt",
        "leave_one_out",
        {},
        "BERT4Rec's ml-1m.txt, leave-one-out",
        "ml-1m.txt of the BERT4Rec repository (FeiSun/BERT4Rec, data/)",
    ),
    "generic": Recipe(
        "session_log",
        "generic",
        {"test_days": 1.0},
        "any session log: filters and a last-N-days split",
        "your own session log (TSV/CSV/Parquet)",
    ),
}


@dataclass
class Prepared:
    name: str
    parts: dict[str, pd.DataFrame]
    stats: dict
    path: Path
    from_cache: bool


def resolve_options(name: str, options: dict | None) -> tuple[Recipe, dict, dict]:
    """(recipe, options of the build function, options of the reader)."""
    if name not in RECIPES:
        raise BenchError(f"recipe: unknown '{name}'; expected one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    for key, value in (options or {}).items():
        if problem := option_problem(recipe, key, value):
            raise BenchError(f"recipe {name}: {problem}")
    opts = {**recipe.options, **(options or {})}
    reader_opts = {"columns": opts.pop("columns")} if "columns" in opts else {}
    return recipe, opts, reader_opts


def option_problem(recipe: Recipe, key: str, value) -> str | None:
    """Why `key=value` is not an option of the recipe: the build function's parameters
    and the reader's (`columns`), each of its declared type; None when it is."""
    takes = {
        fn: {n: t for n, t in parameter_types(fn).items() if n not in ("raw", "path")}
        for fn in (getattr(recipes, recipe.build), raw_readers.RAW_READERS[recipe.reader])
    }
    types = {n: t for fn_types in takes.values() for n, t in fn_types.items()}
    names = [
        n for fn in takes for n in inspect.signature(fn).parameters if n not in ("raw", "path")
    ]
    if key not in names:
        return f"option '{key}' unknown; its options: {', '.join(names) or 'none'}"
    if key == "columns":
        roles = [f.name for f in fields(Columns)]
        named = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        if not (named and set(value) <= set(roles)):
            return (
                f"option columns: got {value!r}; expected a mapping of {', '.join(roles)} "
                "to column names, e.g. {session: sid, time: ts}"
            )
    return mismatch(f"option {key}", value, types.get(key, object))


def cache_key(name: str, opts: dict, reader_opts: dict, raw_hash: str) -> str:
    blob = json.dumps(
        {"recipe": name, "options": opts, "reader": reader_opts, "raw": raw_hash}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _iso(seconds: float | None) -> str | None:
    if seconds is None or pd.isna(seconds):
        return None
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc).isoformat()


def prepare(
    name: str, raw_path: str | Path, options: dict | None = None, cache_dir: Path | None = None
) -> Prepared:
    recipe, opts, reader_opts = resolve_options(name, options)
    raw_path = Path(raw_path)
    if not raw_path.is_file():
        raise BenchError(
            f"recipe {name}: raw file not found: {raw_path}; expected "
            f"{recipe.raw_hint or 'the raw data file'}"
        )
    raw_hash = file_digest(raw_path, "sha256")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = cache_dir / f"{name}-{cache_key(name, opts, reader_opts, raw_hash)}"
    if (entry / "stats.json").is_file():
        stats = json.loads((entry / "stats.json").read_text())
        parts = {p: pd.read_parquet(entry / f"{p}.parquet") for p in stats["parts"]}
        return Prepared(name, parts, stats, entry, True)
    frame, ids = codes.encode(raw_readers.RAW_READERS[recipe.reader](raw_path, **reader_opts))
    parts, steps = getattr(recipes, recipe.build)(frame, **opts)
    del frame
    stats = {
        "recipe": name,
        "about": recipe.about,
        "options": opts,
        "raw_file": str(raw_path),
        "raw_sha256": raw_hash,
        "steps": steps,
        "parts": list(parts),
        "statistics": split_statistics(parts),
        "date_range": {p: [_iso(df[TIME].min()), _iso(df[TIME].max())] for p, df in parts.items()},
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{entry.name}."))
    try:
        for p, df in parts.items():
            parts[p] = codes.decode(df, ids).reset_index(drop=True)
            parts[p].to_parquet(tmp / f"{p}.parquet", index=False)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "stats.json").is_file():  # not a finished twin from a parallel run
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Prepared(name, parts, stats, entry, False)
