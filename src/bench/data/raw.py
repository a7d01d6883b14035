"""Readers for the raw files the recipes start from, each into SessionId / ItemId / Time.

Time is in seconds (float). Row order of the file is kept (column `Row`), because two
published recipes depend on it: SR-GNN dates a session by its last row in the file, and
sorts Diginetica clicks by `timeframe` with a stable sort. Bad input is one line naming
the file and what was expected.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.io import ITEM, SESSION, TIME
from bench.errors import BenchError

ROW = "Row"


def _read_csv(path: Path, what: str, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise BenchError(f"{path}: file not found; expected {what}")
    try:
        df = pd.read_csv(path, **kwargs)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        EOFError,
        zlib.error,
        OSError,
    ) as e:
        raise BenchError(f"{path}: cannot parse as {what} ({str(e).splitlines()[0]})") from None
    if df.empty:
        raise BenchError(f"{path}: no rows; expected {what}")
    return df


def _require(df: pd.DataFrame, path: Path, wanted: list[str], what: str) -> None:
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise BenchError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {what} with "
            f"{', '.join(wanted)}, found {', '.join(map(str, df.columns))}"
        )


def _numeric(df: pd.DataFrame, path: Path, column: str, expected: str) -> np.ndarray:
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any():
        raise BenchError(f"{path}: column '{column}' has non-numeric values; expected {expected}")
    return values.to_numpy(dtype=np.float64)


def _seconds(values: pd.Series, path: Path, column: str, fmt: str | None = None) -> np.ndarray:
    parsed = pd.to_datetime(values, format=fmt, utc=True, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        first = values[bad].iloc[0]
        raise BenchError(
            f"{path}: column '{column}' has {int(bad.sum())} unparsable timestamp(s), e.g. "
            f"{first!r}"
        )
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def read_yoochoose_clicks(path: Path) -> pd.DataFrame:
    """yoochoose-clicks.dat: session,timestamp(ISO 8601 Z),item,category; no header."""
    what = "yoochoose-clicks.dat (session,timestamp,item,category without header)"
    df = _read_csv(path, what, header=None, usecols=[0, 1, 2], dtype=str, sep=",")
    if df.shape[1] < 3:
        raise BenchError(f"{path}: expected {what}, got {df.shape[1]} column(s)")
    df.columns = [SESSION, "Timestamp", ITEM]
    secs = _seconds(df["Timestamp"], path, "timestamp (2nd)")
    return pd.DataFrame(
        {
            SESSION: df[SESSION].to_numpy(),
            ITEM: df[ITEM].to_numpy(),
            TIME: secs,
            "Timestamp": df["Timestamp"].to_numpy(),
            ROW: np.arange(len(df)),
        }
    )


def read_diginetica_views(path: Path) -> pd.DataFrame:
    """train-item-views.csv: `;`-separated session, user, item, timeframe (ms), eventdate.

    Time = first eventdate of the session (midnight UTC) + timeframe, the official GRU4Rec
    recipe's definition; `eventdate` (seconds) is kept for the SR-GNN recipe.
    """
    what = "Diginetica train-item-views.csv (';'-separated with a header)"
    df = _read_csv(path, what, sep=";", dtype=str)
    # SR-GNN renamed the header to snake case; the original has camelCase names.
    df = df.rename(columns={"sessionId": "session_id", "itemId": "item_id", "userId": "user_id"})
    _require(df, path, ["session_id", "item_id", "timeframe", "eventdate"], what)
    frame = _numeric(df, path, "timeframe", "milliseconds")
    day = _seconds(df["eventdate"], path, "eventdate", "%Y-%m-%d")
    first_day = pd.Series(day).groupby(df["session_id"].to_numpy()).transform("min").to_numpy()
    return pd.DataFrame(
        {
            SESSION: df["session_id"].to_numpy(),
            ITEM: df["item_id"].to_numpy(),
            TIME: first_day + frame / 1000.0,
            "eventdate": day,
            "timeframe": frame,
            ROW: np.arange(len(df)),
        }
    )


def read_retailrocket_sessions(path: Path) -> pd.DataFrame:
    """Sessionized RetailRocket views: tab-separated timestamp (s), user_id, item_id, session_id."""
    what = "sessionized RetailRocket TSV (timestamp, user_id, item_id, session_id)"
    df = _read_csv(path, what, sep="\t", dtype=str)
    _require(df, path, ["timestamp", "item_id", "session_id"], what)
    secs = _numeric(df, path, "timestamp", "unix seconds")
    return pd.DataFrame(
        {
            SESSION: df["session_id"].to_numpy(),
            ITEM: df["item_id"].to_numpy(),
            TIME: secs,
            ROW: np.arange(len(df)),
        }
    )


RAW_READERS = {
    "yoochoose_clicks": read_yoochoose_clicks,
    "diginetica_views": read_diginetica_views,
    "retailrocket_sessions": read_retailrocket_sessions,
}


def _interactions(df: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    """user, item, timestamp columns (already named) -> SessionId (= user), ItemId, Time."""
    secs = _numeric(df, path, "timestamp", what)
    return pd.DataFrame(
        {
            SESSION: df["user"].astype(str).to_numpy(),
            ITEM: df["item"].astype(str).to_numpy(),
            TIME: secs,
            ROW: np.arange(len(df)),
        }
    )


def _read_rating_fields(path: Path, what: str, **csv_options) -> pd.DataFrame:
    """user, item, rating, timestamp without a header (u.data, ratings.dat)."""
    df = _read_csv(path, what, header=None, dtype=str, **csv_options)
    if df.shape[1] != 4:
        raise BenchError(f"{path}: {df.shape[1]} field(s) per line; expected {what}")
    df.columns = ["user", "item", "rating", "timestamp"]
    return _interactions(df, path, what)


def read_movielens_udata(path: Path) -> pd.DataFrame:
    """ml-100k u.data: user, item, rating, timestamp, tab-separated, no header."""
    what = "MovieLens u.data (user item rating timestamp, tab-separated, no header)"
    return _read_rating_fields(path, what, sep="\t")


def read_movielens_csv(path: Path) -> pd.DataFrame:
    """ml-latest(-small) / ml-20m ratings.csv: userId,movieId,rating,timestamp with header."""
    what = "MovieLens ratings.csv (userId,movieId,rating,timestamp)"
    df = _read_csv(path, what, dtype=str)
    _require(df, path, ["userId", "movieId", "timestamp"], what)
    df = df.rename(columns={"userId": "user", "movieId": "item"})
    return _interactions(df, path, what)


def read_movielens_dat(path: Path) -> pd.DataFrame:
    """ml-1m ratings.dat: UserID::MovieID::Rating::Timestamp."""
    what = "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp)"
    return _read_rating_fields(path, what, sep="::", engine="python")


def read_bert4rec_txt(path: Path) -> pd.DataFrame:
    """BERT4Rec's ml-1m.txt / ml-20m.txt: `user item` per line, each user's lines in time order."""
    what = "BERT4Rec user-item file ('user item' per line, in time order)"
    df = _read_csv(path, what, sep=" ", header=None, dtype=str)
    if df.shape[1] != 2:
        raise BenchError(f"{path}: {df.shape[1]} field(s) per line; expected {what}")
    df.columns = ["user", "item"]
    df["timestamp"] = df.groupby("user", sort=False).cumcount()  # order is the only time
    return _interactions(df, path, what)


def read_session_log(path: Path, columns: dict | None = None) -> pd.DataFrame:
    """Any session log the `files` datasets read (TSV/CSV/Parquet, with a column mapping)."""
    from bench.data.io import Columns, read_session_file

    df = read_session_file(path, Columns(**(columns or {})))
    return df.assign(**{ROW: np.arange(len(df))})


RAW_READERS.update(
    {
        "movielens_udata": read_movielens_udata,
        "movielens_csv": read_movielens_csv,
        "movielens_dat": read_movielens_dat,
        "bert4rec_txt": read_bert4rec_txt,
        "session_log": read_session_log,
    }
)


ITEM_ORDER = "ItemOrder"  # tie-break for equal timestamps where a script sorted by item index


def _first_seen_index(values: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(values, sort=False)
    return codes


def sessionize(user: np.ndarray, secs: np.ndarray, gap: float = 3600.0) -> np.ndarray:
    """Session number per row of rows sorted by (user, time): a new session at a new user
    or after more than `gap` seconds of silence (the official recipes' 1-hour rule)."""
    new = np.r_[False, (np.diff(secs) > gap) | (user[1:] != user[:-1])]
    return np.cumsum(new)


def read_retailrocket_events(path: Path) -> pd.DataFrame:
    """Kaggle's events.csv (timestamp ms, visitorid, event, itemid, transactionid): sessions
    per visitor with the 1-hour rule over all events, then the views only."""
    what = "RetailRocket events.csv (timestamp, visitorid, event, itemid, ...)"
    df = _read_csv(path, what, dtype=str)
    _require(df, path, ["timestamp", "visitorid", "event", "itemid"], what)
    ms = _numeric(df, path, "timestamp", "milliseconds")
    frame = pd.DataFrame(
        {
            "user": pd.to_numeric(df["visitorid"], errors="coerce").to_numpy(),
            ITEM: df["itemid"].to_numpy(),
            "item_num": pd.to_numeric(df["itemid"], errors="coerce").to_numpy(),
            TIME: ms / 1000.0,
            "event": df["event"].to_numpy(),
            ROW: np.arange(len(df)),
        }
    ).sort_values(["user", TIME, "item_num"], kind="mergesort")
    frame[SESSION] = sessionize(frame["user"].to_numpy(), frame[TIME].to_numpy())
    views = frame[frame["event"] == "view"]
    return views[[SESSION, ITEM, TIME, ROW]].reset_index(drop=True)


def read_rees46(path: Path) -> pd.DataFrame:
    """REES46 events (2019-Oct.csv then 2019-Nov.csv in one file): views only, sessions per
    user with the 1-hour rule; ties in time ordered by the item's first appearance."""
    what = "REES46 events CSV (event_time, event_type, product_id, user_id, ...)"
    df = _read_csv(path, what, dtype=str)
    _require(df, path, ["event_time", "event_type", "product_id", "user_id"], what)
    frame = pd.DataFrame(
        {
            "user": _first_seen_index(df["user_id"]),
            ITEM: df["product_id"].to_numpy(),
            ITEM_ORDER: _first_seen_index(df["product_id"]),
            TIME: np.floor(_seconds(df["event_time"], path, "event_time")),
            "event": df["event_type"].to_numpy(),
            ROW: np.arange(len(df)),
        }
    ).sort_values(["user", TIME, ITEM_ORDER], kind="mergesort")
    views = frame[frame["event"] == "view"].copy()
    views[SESSION] = sessionize(views["user"].to_numpy(), views[TIME].to_numpy())
    return views[[SESSION, ITEM, TIME, ITEM_ORDER, ROW]].reset_index(drop=True)


def read_coveo(path: Path) -> pd.DataFrame:
    """Coveo SIGIR eCom 2021 browsing data: sessions = session hash split by the 1-hour rule
    over all events, then the product `detail` views; items indexed by first appearance."""
    what = (
        "Coveo browsing CSV "
        "(session_id_hash, product_action, product_skus_hash, server_timestamp_epoch_ms)"
    )
    df = _read_csv(path, what, dtype=str)
    _require(
        df,
        path,
        ["session_id_hash", "product_action", "product_skus_hash", "server_timestamp_epoch_ms"],
        what,
    )
    ms = _numeric(df, path, "server_timestamp_epoch_ms", "milliseconds")
    frame = pd.DataFrame(
        {
            "user": _first_seen_index(df["session_id_hash"]),
            ITEM_ORDER: _first_seen_index(df["product_skus_hash"].fillna("")),
            TIME: ms / 1000.0,
            "action": df["product_action"].to_numpy(),
            ROW: np.arange(len(df)),
        }
    ).sort_values(["user", TIME, ITEM_ORDER], kind="mergesort")
    frame[SESSION] = sessionize(frame["user"].to_numpy(), frame[TIME].to_numpy())
    frame[ITEM] = frame[ITEM_ORDER].astype(str)
    views = frame[frame["action"] == "detail"]
    return views[[SESSION, ITEM, TIME, ITEM_ORDER, ROW]].reset_index(drop=True)


RAW_READERS.update(
    {"retailrocket_events": read_retailrocket_events, "rees46": read_rees46, "coveo": read_coveo}
)
