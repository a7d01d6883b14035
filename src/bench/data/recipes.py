"""Published preprocessing recipes, step for step, so that splits match the papers' exactly.

Every recipe takes raw events (SessionId, ItemId, Time in seconds, file row order `Row`)
and returns named parts (`train`, `test`, `train_tr`, `train_valid`) plus the counts after
each step, which are printed and stored with the prepared data.

- `rsc15`: the official GRU4Rec RSC15 script (examples/rsc15/preprocess.py): no dedup;
  single pass of session length > 1, item support >= 5, session length >= 2; sessions whose
  last event falls in the final day are the test set, test items restricted to train items
  and test sessions of length < 2 dropped; the same rule inside train gives the tuning split.
- `official`: the de-duplicating recipe of the official GRU4Rec comparison
  (gru4rec_third_party_comparison/*_preproc.py): drop an event repeating the session's
  previous item, then until nothing changes drop length-1 sessions and items with support
  < 5; test = sessions beginning at or after tsplit - window; train = events before it
  (straddling sessions are cut), length-1 train sessions dropped; the tuning split uses
  twice the window. Test items are not filtered here (the evaluator drops unknown items).
- `srgnn`: SR-GNN's datasets/preprocess.py: a session is dated by its last row in the
  file (Diginetica: the day; Yoochoose: the second), Diginetica clicks sorted by timeframe;
  single pass of length > 1, item support >= 5, length >= 2; test = sessions dated after
  maxdate - 1 day (Yoochoose) or 7 days (Diginetica), train = dated before (sessions dated
  exactly at the boundary belong to neither); test items restricted to train items,
  test sessions of length < 2 dropped; yoochoose 1/N keeps the most recent int(P / N) of
  the P training (prefix, next item) samples, i.e. the newest sessions, the oldest of them
  cut to the prefix those samples cover. The tuning split applies the same date rule inside
  the training part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.data.io import ITEM, SESSION, TIME
from bench.data.raw import ITEM_ORDER, ROW
from bench.errors import BenchError

DAY = 86400.0


class Steps:
    """Counts after each step, in order: what a person checks a recipe against."""

    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        self.rows.append(
            {
                "step": name,
                "events": len(df),
                "sessions": int(df[SESSION].nunique()),
                "items": int(df[ITEM].nunique()),
            }
        )
        return df


def _natural(col: pd.Series) -> pd.Series:
    """Sort numeric ids as numbers (as the official scripts read them), others as text."""
    num = pd.to_numeric(col, errors="coerce")
    return num if num.notna().all() else col


def _keep_sessions(df: pd.DataFrame, mask_by_session: pd.Series) -> pd.DataFrame:
    return df[df[SESSION].map(mask_by_session).to_numpy(dtype=bool)]


def _session_length_at_least(df: pd.DataFrame, n: int) -> pd.DataFrame:
    sizes = df.groupby(SESSION, sort=False).size()
    return _keep_sessions(df, sizes >= n)


def _item_support_at_least(df: pd.DataFrame, n: int) -> pd.DataFrame:
    supp = df.groupby(ITEM, sort=False).size()
    return df[df[ITEM].map(supp >= n).to_numpy(dtype=bool)]


def _check_nonempty(parts: dict[str, pd.DataFrame], recipe: str) -> dict[str, pd.DataFrame]:
    for name, df in parts.items():
        if df.empty:
            raise BenchError(
                f"recipe {recipe}: the split leaves '{name}' empty; the raw data is too small or "
                "its time range shorter than the test window"
            )
    return parts


def _single_pass(df: pd.DataFrame, steps: Steps, min_support: int = 5) -> pd.DataFrame:
    """RSC15's and SR-GNN's filters, once: length > 1, item support, then length >= 2."""
    df = steps("sessions of length > 1", _session_length_at_least(df, 2))
    df = steps(f"items with support >= {min_support}", _item_support_at_least(df, min_support))
    return steps("sessions of length >= 2", _session_length_at_least(df, 2))


def _until_stable(df: pd.DataFrame, steps: Steps, min_support: int = 5) -> pd.DataFrame:
    """The official comparison scripts' filters: length >= 2 and item support, repeated
    until a round removes nothing."""
    rounds = 0
    while True:
        before = len(df)
        df = _session_length_at_least(df, 2)
        df = _item_support_at_least(df, min_support)
        rounds += 1
        if len(df) == before:
            break
    return steps(
        f"length >= 2 and item support >= {min_support}, until stable ({rounds} rounds)", df
    )


def _day_split(df: pd.DataFrame, window: float, steps: Steps, prefix: str):
    """RSC15 rule: sessions whose last event is within `window` of the end are held out."""
    tmax = df[TIME].max()
    last = df.groupby(SESSION, sort=False)[TIME].max()
    train = _keep_sessions(df, last < tmax - window)
    test = _keep_sessions(df, last >= tmax - window)
    test = test[test[ITEM].isin(set(train[ITEM]))]
    test = _session_length_at_least(test, 2)
    steps(f"{prefix}train", train)
    steps(f"{prefix}test", test)
    return train, test


def _end_split(df: pd.DataFrame, window: float, steps: Steps) -> dict[str, pd.DataFrame]:
    """RSC15's split and, by the same rule inside train, its tuning split."""
    train, test = _day_split(df, window, steps, "final: ")
    train_tr, valid = _day_split(train, window, steps, "tune: ")
    return {"train": train, "test": test, "train_tr": train_tr, "train_valid": valid}


def rsc15(raw: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    steps = Steps()
    df = _single_pass(steps("raw", raw[[SESSION, ITEM, TIME]]), steps)
    return _check_nonempty(_end_split(df, DAY, steps), "rsc15"), steps.rows


def _drop_repeats(df: pd.DataFrame, steps: Steps) -> pd.DataFrame:
    """Sort by (session, time, item) and drop an event repeating the session's previous item.

    Equal timestamps are ordered by item: by the script's item index where the reader gives
    one (REES46, Coveo), else by the item id read as a number."""
    tie = ITEM_ORDER if ITEM_ORDER in df else ITEM
    df = df.sort_values([SESSION, TIME, tie], kind="mergesort", key=_natural)[[SESSION, ITEM, TIME]]
    s, i = df[SESSION].to_numpy(), df[ITEM].to_numpy()
    return steps(
        "drop repeats of the previous item",
        df[~np.r_[False, (s[1:] == s[:-1]) & (i[1:] == i[:-1])]],
    )


def _start_split(df: pd.DataFrame, window: float, tsplit: float, steps: Steps) -> dict:
    """The official comparison scripts' split: test = sessions beginning at or after
    tsplit - window, train = events before it (length-1 leftovers dropped); the tuning split
    uses twice the window inside train."""
    begin = df.groupby(SESSION, sort=False)[TIME].min()
    test = steps("final: test", _keep_sessions(df, begin >= tsplit - window))
    train = steps("final: train", _session_length_at_least(df[df[TIME] < tsplit - window], 2))
    train_tr = _session_length_at_least(train[train[TIME] < tsplit - 2 * window], 2)
    steps("tune: train", train_tr)
    valid = steps("tune: test", _keep_sessions(train, begin >= tsplit - 2 * window))
    return {"train": train, "test": test, "train_tr": train_tr, "train_valid": valid}


def official(
    raw: pd.DataFrame, window_days: float, tsplit: float | None = None
) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    steps = Steps()
    df = _until_stable(_drop_repeats(steps("raw", raw), steps), steps)
    tsplit = df[TIME].max() if tsplit is None else float(tsplit)
    parts = _start_split(df, window_days * DAY, tsplit, steps)
    return _check_nonempty(parts, "official"), steps.rows


def _srgnn_date_split(sessions: pd.DataFrame, window: float):
    """SR-GNN's rule on a (session, date, first_row) table: train before, test after."""
    split = sessions["date"].max() - window
    train = sessions[sessions["date"] < split].sort_values(["date", "first_row"], kind="mergesort")
    test = sessions[sessions["date"] > split].sort_values(["date", "first_row"], kind="mergesort")
    return train, test


def _srgnn_events(df: pd.DataFrame, order: pd.DataFrame) -> pd.DataFrame:
    """Events of the sessions in `order`, in that order, Time = date + click position."""
    rank = pd.Series(np.arange(len(order)), index=order[SESSION].to_numpy())
    out = df[df[SESSION].isin(rank.index)].copy()
    out["_rank"] = out[SESSION].map(rank).to_numpy()
    out = out.sort_values(["_rank", "_pos"], kind="mergesort")
    out[TIME] = (
        out[SESSION].map(order.set_index(SESSION)["date"]).to_numpy()
        + out["_pos"].to_numpy() * 1e-3
    )
    return out[[SESSION, ITEM, TIME]]


def _restrict_test(test: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    test = test[test[ITEM].isin(set(train[ITEM]))]
    return _session_length_at_least(test, 2)


def _last_samples(train: pd.DataFrame, fraction: int) -> pd.DataFrame:
    """The newest int(P / fraction) of the P (prefix, next item) samples, as sessions."""
    sizes = train.groupby(SESSION, sort=False).size()
    samples = sizes - 1
    keep = int(samples.sum() / fraction)
    if keep == 0:
        raise BenchError(f"recipe srgnn: 1/{fraction} of the training samples is empty")
    after = samples[::-1].cumsum()[::-1]  # samples of this session and all newer ones
    first = (
        int(np.flatnonzero(after.to_numpy() <= keep)[0]) if (after <= keep).any() else len(after)
    )
    partial = keep - (int(after.iloc[first]) if first < len(after) else 0) if first > 0 else 0
    kept = list(sizes.index[first:])
    out = train[train[SESSION].isin(set(kept))]
    if partial > 0:
        # SR-GNN emits a session's samples longest prefix first, so the samples kept from
        # the session before `first` are its shortest prefixes: its first partial+1 items.
        cut_session = sizes.index[first - 1]
        cut = train[train[SESSION] == cut_session].iloc[: partial + 1]
        out = pd.concat([cut, out])
    return out


def srgnn(
    raw: pd.DataFrame, dataset: str, fraction: int | None = None
) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    if dataset not in ("diginetica", "yoochoose"):
        raise BenchError(f"recipe srgnn: dataset '{dataset}'; expected diginetica or yoochoose")
    steps = Steps()
    df = steps("raw", raw)
    if dataset == "diginetica":
        df = df.sort_values([SESSION, "timeframe"], kind="mergesort")  # by session, stable in time
        date_of_row = df["eventdate"]
        window = 7 * DAY
    else:
        date_of_row = np.floor(df[TIME])
        window = DAY
    df = df.assign(date=date_of_row)
    df = df.assign(_pos=df.groupby(SESSION, sort=False).cumcount())
    # The session's date: that of its last row in the file; its rank: its first row.
    by_row = df.sort_values(ROW)
    dates = by_row.groupby(SESSION, sort=False).agg(date=("date", "last"), first_row=(ROW, "min"))
    df = _single_pass(df, steps)
    df = df.assign(_pos=df.groupby(SESSION, sort=False).cumcount())
    sessions = dates.loc[df[SESSION].unique()].reset_index()
    train_s, test_s = _srgnn_date_split(sessions, window)
    train = steps("final: train", _srgnn_events(df, train_s))
    test = steps("final: test", _restrict_test(_srgnn_events(df, test_s), train))
    tr_s, va_s = _srgnn_date_split(train_s, window)
    train_tr = steps("tune: train", _srgnn_events(df, tr_s))
    valid = steps("tune: test", _restrict_test(_srgnn_events(df, va_s), train_tr))
    if fraction is not None:
        train = steps(
            f"final: train, newest 1/{fraction} of the samples", _last_samples(train, fraction)
        )
        train_tr = steps(
            f"tune: train, newest 1/{fraction} of the samples", _last_samples(train_tr, fraction)
        )
    parts = {"train": train, "test": test, "train_tr": train_tr, "train_valid": valid}
    return _check_nonempty(parts, "srgnn"), steps.rows


def leave_one_out(raw: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """Per user (SessionId holds the user): last interaction = test, second-to-last =
    validation. `train` (everything but the last) is also each user's history for
    seen-item filtering at test time; `train_tr` (all but the last two) at validation time."""
    steps = Steps()
    df = steps("raw", raw)
    df = df.sort_values([SESSION, TIME, ROW], kind="mergesort", key=_natural)
    df = steps("users with 3+ interactions", _session_length_at_least(df, 3))
    from_end = df.groupby(SESSION, sort=False).cumcount(ascending=False)
    parts = {
        "train": steps("final: history (train)", df[from_end >= 1]),
        "test": steps("final: test (last item)", df[from_end == 0]),
        "train_tr": steps("tune: history (train)", df[from_end >= 2]),
        "train_valid": steps("tune: test (second-to-last item)", df[from_end == 1]),
    }
    return _check_nonempty(
        {k: v[[SESSION, ITEM, TIME]] for k, v in parts.items()}, "leave_one_out"
    ), steps.rows


def generic(
    raw: pd.DataFrame,
    test_days: float,
    dedup: bool = False,
    iterative: bool = False,
    min_item_support: int = 5,
    split_by: str = "session_start",
) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """A user's own session log: optional de-duplication, single-pass or iterative filters,
    and a last-`test_days` split by session start (official) or session end (RSC15)."""
    if split_by not in ("session_start", "session_end"):
        raise BenchError(
            f"recipe generic: split_by '{split_by}'; expected session_start or session_end"
        )
    if test_days <= 0:
        raise BenchError(
            f"recipe generic: test_days {test_days}; expected a positive number of days"
        )
    steps = Steps()
    df = steps("raw", raw[[SESSION, ITEM, TIME]])
    if dedup:
        df = _drop_repeats(df, steps)
    df = (_until_stable if iterative else _single_pass)(df, steps, min_item_support)
    window = test_days * DAY
    if split_by == "session_end":
        parts = _end_split(df, window, steps)
    else:
        parts = _start_split(df, window, df[TIME].max(), steps)
    return _check_nonempty(parts, "generic"), steps.rows
