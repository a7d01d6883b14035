"""Result records: one JSON per run with everything needed to trust and redo a number."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("gru4rec-bench", "torch", "lightning", "hydra-core", "numpy", "pandas", "optuna")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(start: Path) -> str:
    """Commit of the checkout holding the code ('unknown' outside git), '+dirty' if modified."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _write_atomic(path: str | Path, write, mode: str) -> None:
    """Temporary file then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | Path, obj: dict) -> None:
    def write(f):
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")

    _write_atomic(path, write, "w")


def write_text_atomic(path: str | Path, text: str) -> None:
    _write_atomic(path, lambda f: f.write(text), "w")


def replace_block(path: str | Path, block: str, text: str) -> bool:
    """Put `text` between <!-- block:start --> and <!-- block:end --> in `path` (atomically),
    so a generated table in a README is never retyped; False when the markers are missing."""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    doc = Path(path).read_text()
    if start not in doc or end not in doc:
        return False
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    write_text_atomic(path, f"{head}{start}\n{text}{end}{tail}")
    return True


def save_array_atomic(path: str | Path, array: np.ndarray) -> None:
    _write_atomic(path, lambda f: np.save(f, array), "wb")
