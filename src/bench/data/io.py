"""Readers for session logs with validation that fails in one clear line.

Two on-disk forms are supported: tables (TSV/CSV/Parquet, optionally gzipped) with
session, item and time columns, and the plain-text session form of the SR-GNN family
(one session per line, space-separated item ids in click order, no timestamps).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.columns import ITEM, SESSION, TIME
from bench.data.pickles import is_pickle, read_srgnn_pickle
from bench.errors import BenchError

# DataFrame.attrs flag: False where Time is only the click position (formats without
# timestamps); time-aware methods (STAN's neighbour recency) then count sessions instead.
TIMED = "timed"
EVALUATE = "Evaluate"  # optional: which events are ranked (test sets of (prefix, label) pairs)


@dataclass(frozen=True)
class Columns:
    """Column names of a session table (GRU4Rec's defaults)."""

    session: str = SESSION
    item: str = ITEM
    time: str = TIME


def _suffixes(path: Path) -> list[str]:
    sfx = [s.lower() for s in path.suffixes]
    return sfx[:-1] if sfx and sfx[-1] == ".gz" else sfx


def detect_format(path: Path, columns: Columns) -> str:
    """Pick `parquet`, `csv`, `tsv`, `sessions` or `srgnn_pickle` from the name and content."""

    if is_pickle(path):
        return "srgnn_pickle"
    sfx = _suffixes(path)
    last = sfx[-1] if sfx else ""
    if last == ".parquet":
        return "parquet"
    if last == ".csv":
        return "csv"
    if last in (".tsv", ".txt", "") and {"prefix", "label"} <= set(_first_line(path).split("\t")):
        return "pairs"
    if last == ".tsv":
        return "tsv"
    first = _first_line(path)
    if "\t" in first and columns.session in first.split("\t"):
        return "tsv"
    return "sessions"


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as f:
            return f.readline().rstrip("\n")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read ({e})") from None


def read_session_file(
    path: str | Path, columns: Columns = Columns(), fmt: str = "auto"
) -> pd.DataFrame:
    """Read one session log into a DataFrame with columns SessionId, ItemId (str), Time.

    Time is float; for the plain-text session form it is the click position, and
    sessions keep file order (see `order_sessions`).
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BenchError(f"{path}: file is empty; expected at least one session")
    if fmt == "auto":
        fmt = detect_format(path, columns)
    if fmt == "sessions":
        df = _read_sessions_text(path)
    elif fmt == "pairs":
        df = _read_pairs(path)
    elif fmt == "srgnn_pickle":
        df = read_srgnn_pickle(path)
    elif fmt in ("tsv", "csv", "parquet"):
        df = _read_table(path, columns, fmt)
    else:
        raise BenchError(
            f"{path}: unknown format '{fmt}'; expected auto, tsv, csv, parquet, sessions, pairs "
            "or srgnn_pickle"
        )
    if df.empty:
        raise BenchError(f"{path}: file has no events; expected at least one session")
    df.attrs[TIMED] = fmt in ("tsv", "csv", "parquet")
    return df


def _read_sessions_text(path: Path) -> pd.DataFrame:
    sessions, items = [], []
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f):
                toks = line.split()
                sessions.extend([line_no] * len(toks))
                items.extend(toks)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read, file is corrupt or truncated ({e})") from None
    n = len(items)
    sid = np.asarray(sessions, dtype=np.int64)
    # Click position inside the session: file order is the only order this form has.
    starts = np.r_[0, np.flatnonzero(np.diff(sid)) + 1] if n else np.zeros(0, np.int64)
    pos = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.zeros(0)
    return pd.DataFrame(
        {SESSION: sid, ITEM: pd.array(items, dtype=object), TIME: pos.astype(np.float64)}
    )


def _read_pairs(path: Path) -> pd.DataFrame:
    """(prefix, label) test pairs, tab-separated with a header naming `prefix` and `label`
    (prefix = space-separated item ids): one session per pair, only the label is ranked."""
    try:
        pairs = pd.read_csv(path, sep="\t", dtype=str, usecols=["prefix", "label"])
    except (
        OSError,
        EOFError,
        zlib.error,
        UnicodeDecodeError,
        pd.errors.ParserError,
        ValueError,
    ) as e:
        raise BenchError(
            f"{path}: cannot read (prefix, label) pairs ({str(e).splitlines()[0]})"
        ) from None
    if pairs.isna().any().any():
        raise BenchError(
            f"{path}: a pair has an empty prefix or label; expected both on every line"
        )
    seqs = [[*p.split(), label] for p, label in zip(pairs["prefix"], pairs["label"])]
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame(
        {
            SESSION: np.repeat(np.arange(len(seqs)), lengths),
            ITEM: pd.array([i for s in seqs for i in s], dtype=object),
            TIME: pos.astype(np.float64),
            EVALUATE: pos == np.repeat(lengths - 1, lengths),
        }
    )


def _read_table(path: Path, columns: Columns, fmt: str) -> pd.DataFrame:
    wanted = [columns.session, columns.item, columns.time]
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            present = pq.read_schema(path).names
            _check_columns(path, wanted, present)
            df = pd.read_parquet(path, columns=wanted)
        else:
            sep = "\t" if fmt == "tsv" else ","
            header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
            _check_columns(path, wanted, header, sep)
            df = pd.read_csv(
                path, sep=sep, usecols=wanted, dtype={columns.item: str, columns.session: str}
            )
    except BenchError:
        raise
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path}: file is empty; expected a header line and events") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, pd.errors.ParserError) as e:
        msg = str(e).splitlines()[0]
        raise BenchError(f"{path}: cannot parse ({msg})") from None
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise BenchError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    df = df.rename(columns={columns.session: SESSION, columns.item: ITEM, columns.time: TIME})
    for col, name in ((SESSION, columns.session), (ITEM, columns.item)):
        bad = df[col].isna().to_numpy()
        if bad.any():
            raise BenchError(
                f"{path}: column '{name}' has {int(bad.sum())} missing value(s) "
                f"(first at data row {int(np.argmax(bad)) + 1}); every event needs one"
            )
    df[ITEM] = df[ITEM].astype(str)
    time = pd.to_numeric(df[TIME], errors="coerce")
    bad = time.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise BenchError(
            f"{path}: column '{columns.time}' must be numeric (e.g. unix seconds); "
            f"found {df[TIME].iloc[row]!r} at data row {row + 1}"
        )
    df[TIME] = time.astype(np.float64)
    return df


def _check_columns(path: Path, wanted: list[str], present: list[str], sep: str | None = None):
    missing = [c for c in wanted if c not in present]
    if not missing:
        return
    hint = ""
    if sep is not None and len(present) == 1 and any(d in present[0] for d in "\t,;"):
        hint = f"; the header looks like it uses another delimiter than {sep!r}"
    raise BenchError(
        f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; expected "
        f"{', '.join(wanted)}, found {', '.join(map(str, present))}{hint}"
    )
