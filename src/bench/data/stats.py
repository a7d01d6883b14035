"""Statistics of a prepared split, printed and stored next to it (what papers report)."""

from __future__ import annotations

import pandas as pd

from bench.data.io import ITEM, SESSION, TIME


def part_statistics(df: pd.DataFrame) -> dict:
    sessions = df.groupby(SESSION, sort=False).size()
    return {
        "events": len(df),
        "sessions": len(sessions),
        "items": int(df[ITEM].nunique()),
        # SR-GNN's "samples": every prefix of a session with its next item.
        "prefix_samples": int(len(df) - len(sessions)),
        "mean_session_length": round(float(sessions.mean()), 4) if len(sessions) else 0.0,
        "time_min": float(df[TIME].min()) if len(df) else None,
        "time_max": float(df[TIME].max()) if len(df) else None,
    }


def split_statistics(parts: dict[str, pd.DataFrame]) -> dict:
    """Per part (train, test, train_tr, ...) plus the items of train and test together."""
    out = {name: part_statistics(df) for name, df in parts.items()}
    if "train" in parts and "test" in parts:
        both = pd.concat([parts["train"][ITEM], parts["test"][ITEM]])
        out["items_train_or_test"] = int(both.nunique())
        out["test_items_unknown_to_train"] = int(
            (~parts["test"][ITEM].isin(set(parts["train"][ITEM]))).sum()
        )
    return out
