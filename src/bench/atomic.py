"""Files that appear whole or not at all: written under a temporary name in the same folder,
then renamed over the target (a rename is atomic within a file system), so a reader or a
kill in the middle never meets half a record, checkpoint, table or compiled kernel."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` for the caller (or a tool it runs) to write; renamed
    over `path` when the block ends without an error, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_with(path: str | Path, write, binary: bool = False) -> None:
    """`write(f)` into `path` through an open file, atomically (e.g. torch.save, np.save)."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        write(f)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda f: f.write(text))


def write_json(path: str | Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
