"""Session logs as contiguous arrays: the form the session-parallel sampler consumes.

Sessions are ordered by their first timestamp (ties and time-less data keep file
order), events inside a session by time, as the official GRU4Rec does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.data.io import EVALUATE, ITEM, SESSION, TIME, TIMED
from bench.errors import BenchError


@dataclass(frozen=True)
class ItemMap:
    """Original item id (string) <-> dense index, built from training data only."""

    ids: pd.Index

    @classmethod
    def from_events(cls, df: pd.DataFrame) -> ItemMap:
        return cls(pd.Index(pd.unique(df[ITEM].to_numpy()), dtype=object, name=ITEM))

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, items: np.ndarray) -> np.ndarray:
        """Dense index per item; -1 where the item is unknown."""
        return self.ids.get_indexer(items).astype(np.int64)


@dataclass
class Sessions:
    """Events of many sessions: items[offsets[i]:offsets[i+1]] is session i, in order."""

    items: np.ndarray  # int64 dense item indices
    offsets: np.ndarray  # int64, len n_sessions + 1
    session_ids: np.ndarray  # original session key per session, same order
    n_dropped_events: int = 0  # events whose item is unknown to the item map
    # Test sets given as (prefix, next item) pairs rank only the label: True on the events
    # that are evaluated as targets; None = every event after a session's first.
    evaluate_mask: np.ndarray | None = None
    # Event timestamps (seconds), same order as `items`; None where the data has none.
    times: np.ndarray | None = None

    @property
    def last_click_times(self) -> np.ndarray | None:
        """Each session's last timestamp: its recency, as session-rec's KNN methods see it."""
        return None if self.times is None else self.times[self.offsets[1:] - 1]

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_predictions(self) -> int:
        if self.evaluate_mask is not None:
            return int(self.evaluate_mask[self.target_events()].sum())
        return self.n_events - self.n_sessions

    def target_events(self) -> np.ndarray:
        """Indices of the events that are next-item targets (all but each session's first),
        in (session, position) order: the order of the evaluator's per-event ranks."""
        return np.delete(np.arange(self.n_events), self.offsets[:-1])

    def support(self, n_items: int) -> np.ndarray:
        """Occurrences of every item (the popularity the sampler and logq use)."""
        return np.bincount(self.items, minlength=n_items).astype(np.float64)


def to_sessions(df: pd.DataFrame, item_map: ItemMap, source: str = "data") -> Sessions:
    """Map items, drop events with unknown items (re-chaining the session), order sessions.
    Timestamps are kept unless the frame says its Time is only a position (attrs TIMED)."""
    idx = item_map.lookup(df[ITEM].to_numpy())
    known = idx >= 0
    n_dropped = int((~known).sum())
    if not known.any():
        raise BenchError(
            f"{source}: none of the {len(df)} events has an item seen in training; "
            "check that train and test use the same item ids"
        )
    sess = df[SESSION].to_numpy()[known]
    time = df[TIME].to_numpy()[known]
    idx = idx[known]
    mask = df[EVALUATE].to_numpy(dtype=bool)[known] if EVALUATE in df else None
    file_pos = np.arange(len(idx))
    # Group by session in order of first appearance, then by time within the session.
    sess_codes, sess_uniques = pd.factorize(sess, sort=False)
    order = np.lexsort((file_pos, time, sess_codes))
    sess_codes, time, idx = sess_codes[order], time[order], idx[order]
    mask = mask[order] if mask is not None else None
    bounds = np.r_[0, np.flatnonzero(np.diff(sess_codes)) + 1, len(idx)]
    start_time = time[bounds[:-1]]
    # Sessions ordered by start time; a stable sort keeps file order for ties.
    sess_order = np.argsort(start_time, kind="stable")
    lengths = np.diff(bounds)[sess_order]
    gather = concat_ranges(bounds[:-1][sess_order], lengths)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return Sessions(
        items=idx[gather].astype(np.int64),
        offsets=offsets,
        session_ids=np.asarray(sess_uniques)[sess_codes[bounds[:-1]][sess_order]],
        n_dropped_events=n_dropped,
        evaluate_mask=mask[gather] if mask is not None else None,
        times=time[gather].astype(np.float64) if df.attrs.get(TIMED, True) else None,
    )


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s+l) for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.r_[0, np.cumsum(lengths)[:-1]]
    return np.repeat(starts - offs, lengths) + np.arange(total)
