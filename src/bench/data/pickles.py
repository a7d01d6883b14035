"""SR-GNN's pickled splits (`train.txt`/`test.txt` = (prefix lists, labels)), read safely.

A pickle can name any importable callable and run it while loading, so these files are
read with an unpickler that refuses every global: only the opcodes of plain lists,
tuples and ints get through; anything else is a one-line error naming the file. The
(prefix, label) pairs are turned back into whole sessions: SR-GNN emits, per session,
seq[:-1] -> seq[-1], seq[:-2] -> seq[-2], ..., so a pair continues the current session
exactly when its prefix drops the previous prefix's last item and that item is its label.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.columns import ITEM, SESSION, TIME
from bench.errors import BenchError

PICKLE_MAGIC = b"\x80"  # protocol 2+ header; SR-GNN's files are protocol 3/4


class RefusedGlobal(pickle.UnpicklingError):
    pass


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise RefusedGlobal(f"refused to load {module}.{name}")


def is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == PICKLE_MAGIC


def _check_plain(obj, path: Path) -> None:
    """Only tuples/lists of ints (and nested lists) may come out of a data file."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif not isinstance(x, int) or isinstance(x, bool):
            raise BenchError(
                f"{path}: SR-GNN pickle holds a {type(x).__name__}; expected only lists, tuples "
                "and ints"
            )


def load_plain_pickle(path: Path):
    try:
        data = path.read_bytes()
        obj = _PlainDataUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as e:
        raise BenchError(
            f"{path}: not a plain-data pickle ({e}); expected lists, tuples and ints only"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, OSError) as e:
        raise BenchError(f"{path}: unreadable pickle ({type(e).__name__}: {e})") from None
    _check_plain(obj, path)
    return obj


def read_srgnn_pickle(path: Path) -> pd.DataFrame:
    """(prefixes, labels) -> events of whole sessions (SessionId, ItemId, Time = position)."""
    obj = load_plain_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and len(obj[0]) == len(obj[1])):
        raise BenchError(
            f"{path}: expected SR-GNN's (prefix lists, labels) pair of equal-length lists"
        )
    prefixes, labels = obj
    sessions: list[list[int]] = []
    previous: list[int] | None = None
    for prefix, label in zip(prefixes, labels):
        if not isinstance(prefix, list) or not prefix:
            raise BenchError(f"{path}: a prefix is not a non-empty list of item ids")
        continues = (
            previous is not None
            and len(prefix) == len(previous) - 1
            and previous[-1] == label
            and previous[:-1] == prefix
        )
        if not continues:
            sessions.append([*prefix, label])
        previous = prefix
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    items = np.fromiter((i for s in sessions for i in s), dtype=np.int64, count=int(lengths.sum()))
    return pd.DataFrame(
        {
            SESSION: np.repeat(np.arange(len(sessions)), lengths),
            ITEM: pd.array(items.astype(str), dtype=object),
            TIME: (np.arange(len(items)) - np.repeat(np.cumsum(lengths) - lengths, lengths)).astype(
                np.float64
            ),
        }
    )


def augment(sessions: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """SR-GNN's sequence augmentation: every prefix of every session with its next item."""
    prefixes, labels = [], []
    for seq in sessions:
        for i in range(1, len(seq)):
            prefixes.append(seq[:-i])
            labels.append(seq[-i])
    return prefixes, labels
