"""Where reports write: the default study storages, project-relative paths, README blocks,
and a staging folder so that a report run writes all of its outputs or none of them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.paths import PROJECT_ROOT
from bench.records import replace_block


def default_storages() -> list[str]:
    return [f"sqlite:///{p}" for p in sorted((PROJECT_ROOT / "sweeps").glob("*.db"))]


def relative(path: str | None) -> str | None:
    """Paths in the written tables relative to the project, so another clone writes the same."""
    if not isinstance(path, str):
        return path
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


def block_rows(path: Path, block: str) -> int | None:
    """Table rows (lines starting with '| ', less the header) in a README block; None if absent."""
    text = path.read_text() if path.is_file() else ""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    if start not in text or end not in text:
        return None
    return table_rows(text.split(start, 1)[1].split(end, 1)[0])


def table_rows(markdown: str) -> int:
    """Rows of a Markdown table (lines starting with '| '), less its header."""
    return max(0, sum(1 for line in markdown.splitlines() if line.startswith("| ")) - 1)


def update_readme(path: Path, table_markdown: str, block: str) -> bool:
    """Replace the marked block (the table without its '### title' heading)."""
    body = table_markdown.split("\n", 2)[2]
    return replace_block(path, block, body)


class Staging:
    """Outputs are written under a temporary folder beside `out` and moved into place only
    by `commit()`: a report that fails half-way leaves the previous outputs untouched."""

    def __init__(self, out: Path):
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))

    def path(self, relative_path: str | Path) -> Path:
        """Where to write `out/relative_path` for now."""
        p = self.root / relative_path
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def final(self, staged: Path) -> Path:
        return self.out / staged.relative_to(self.root)

    def commit(self) -> list[Path]:
        written = []
        for staged in sorted(p for p in self.root.rglob("*") if p.is_file()):
            target = self.final(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            written.append(target)
        self.discard()
        return written

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
