"""The README's table of configuration groups names every option `conf/` holds, and nothing
`conf/` lacks: a new model, study or protocol is documented where users look for it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
INTERNAL = {"common", "paramfile", "hydra"}  # reached through other options, not chosen by users


def readme_groups() -> dict[str, set[str]]:
    text = (ROOT / "README.md").read_text()
    table = text.split("### Configuration groups (`conf/`)", 1)[1].split("\n\n", 2)[1]
    groups = {}
    for row in table.splitlines()[2:]:
        group, options = row.split(" | ")[:2]
        names = re.findall(r"`([^`]+)`", options)
        groups[group.strip("| `")] = {n for n in names if re.fullmatch(r"[\w-]+", n)}
    return groups


def test_readme_table_lists_exactly_the_options_in_conf():
    documented = readme_groups()
    on_disk = {
        d.name: {p.stem for p in d.glob("*.yaml")}
        for d in (ROOT / "conf").iterdir()
        if d.is_dir() and d.name not in INTERNAL
    }
    assert documented.keys() == on_disk.keys()
    for group, options in on_disk.items():
        assert documented[group] == options, group
