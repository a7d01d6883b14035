"""`python -m bench.data`: prepare a dataset with a published recipe, or list the recipes.

  python -m bench.data list
  python -m bench.data prepare srgnn_diginetica --raw train-item-views.csv
  python -m bench.data prepare generic --raw log.tsv --set test_days=7 --set dedup=true
  python -m bench.data download ml-1m

Bad input ends with one line naming the file/option and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

import yaml


def parse_set(values: list[str]) -> dict:
    out = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)  # numbers, booleans and lists as written
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the recipes and the raw file each expects")
    prep = sub.add_parser("prepare", help="run a recipe (cached) and print its statistics")
    prep.add_argument("name", help="recipe name (see `list`)")
    prep.add_argument("--raw", required=True, help="the raw file the recipe starts from")
    prep.add_argument("--set", action="append", default=[], help="recipe option key=value")
    prep.add_argument(
        "--cache", help="cache folder (default $BENCH_CACHE_DIR or ~/.cache/gru4rec-bench)"
    )
    down = sub.add_parser("download", help="fetch a dataset with a public link (MovieLens)")
    down.add_argument("name")
    down.add_argument("--to", help="folder (default <cache>/downloads)")
    return p


def main(argv: list[str] | None = None) -> int:
    from rich.table import Table

    from bench import terminal
    from bench.data.prepare import RECIPES, prepare
    from bench.errors import BenchError

    args = parser().parse_args(argv)
    console = terminal.console()
    if args.command == "list":
        table = Table("recipe", "what", "raw file", "options")
        for name, r in RECIPES.items():
            table.add_row(name, r.about, r.raw_hint, str(r.options))
        console.print(table)
        return 0
    try:
        if args.command == "download":
            return download(args, console)
        prepared = prepare(args.name, args.raw, parse_set(args.set), args.cache)
    except (BenchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_statistics(console, args.name, prepared)
    return 0


def download(args, console) -> int:
    from pathlib import Path

    from bench.data.download import download as fetch
    from bench.paths import default_cache_dir

    path = fetch(args.name, Path(args.to) if args.to else default_cache_dir() / "downloads")
    console.print(f"{args.name}: {path} (sha256 in {path.name}.sha256)")
    return 0


def print_statistics(console, name: str, prepared) -> None:
    """A prepared dataset's filtering steps and its parts, as tables."""
    from rich.table import Table

    st = prepared.stats
    steps = Table("step", "events", "sessions", "items", title=f"{name}: {st['about']}")
    for s in st["steps"]:
        steps.add_row(s["step"], f"{s['events']:,}", f"{s['sessions']:,}", f"{s['items']:,}")
    console.print(steps)
    parts = Table("part", "events", "sessions", "items", "samples", "from", "to")
    for part in st["parts"]:
        x = st["statistics"][part]
        lo, hi = st["date_range"][part]
        parts.add_row(
            part,
            f"{x['events']:,}",
            f"{x['sessions']:,}",
            f"{x['items']:,}",
            f"{x['prefix_samples']:,}",
            str(lo),
            str(hi),
        )
    console.print(parts)
    console.print(f"{'loaded from cache' if prepared.from_cache else 'prepared'}: {prepared.path}")


if __name__ == "__main__":
    sys.exit(main())
