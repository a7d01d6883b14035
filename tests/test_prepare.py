"""Prepared-data cache, the `python -m bench.data` CLI and recipe datasets in bench.run."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from bench.data import prepare as prep
from bench.data.__main__ import main as data_main
from bench.errors import BenchError

pytestmark = pytest.mark.real_data
SAMPLE = "diginetica/raw_sample/train-item-views.sample.csv"


def test_second_run_loads_the_cache_and_changes_rebuild(shared_data, tmp_path):
    raw = tmp_path / "views.csv"
    shutil.copy(shared_data / SAMPLE, raw)
    first = prep.prepare("srgnn_diginetica", raw, cache_dir=tmp_path / "c")
    again = prep.prepare("srgnn_diginetica", raw, cache_dir=tmp_path / "c")
    assert not first.from_cache and again.from_cache and again.path == first.path
    for part in first.parts:
        pd.testing.assert_frame_equal(
            first.parts[part].reset_index(drop=True), again.parts[part], check_dtype=False
        )
    stats = json.loads((first.path / "stats.json").read_text())
    assert stats["statistics"]["train"]["events"] == 1674 and stats["raw_sha256"]
    other = prep.prepare("diginetica", raw, cache_dir=tmp_path / "c")  # another recipe
    assert other.path != first.path
    with open(raw, "a") as f:
        f.write("\n999999;NA;1;1;2016-06-01\n")  # the raw file changed
    changed = prep.prepare("srgnn_diginetica", raw, cache_dir=tmp_path / "c")
    assert not changed.from_cache and changed.path != first.path


def test_a_failed_preparation_leaves_no_cache_entry(shared_data, tmp_path, monkeypatch):
    calls = []

    def failing(self, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, path, **kw)

    original = pd.DataFrame.to_parquet
    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing)
    with pytest.raises(OSError, match="disk full"):
        prep.prepare("srgnn_diginetica", shared_data / SAMPLE, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []  # neither an entry nor a temporary folder


def test_split_leaving_an_empty_part_is_one_line(shared_data, tmp_path):
    log = tmp_path / "log.tsv"
    df = pd.read_csv(
        shared_data / "yoochoose/sessionrec_rsc15_100k/yoochoose-clicks-100k_train_full.tsv.gz",
        sep="\t",
    )
    df.to_csv(log, sep="\t", index=False)
    with pytest.raises(BenchError, match="recipe generic: the split leaves 'train' empty"):
        prep.prepare("generic", log, {"test_days": 10_000}, cache_dir=tmp_path / "c")
    ok = prep.prepare(
        "generic", log, {"test_days": 1, "dedup": True, "iterative": True}, cache_dir=tmp_path / "c"
    )
    assert ok.stats["steps"][1]["step"] == "drop repeats of the previous item"


def test_cli_prepares_prints_statistics_and_fails_in_one_line(
    shared_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "c"))
    assert data_main(["prepare", "srgnn_diginetica", "--raw", str(shared_data / SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "sessions of length >= 2" in out and "1,674" in out and "prepared:" in out
    assert data_main(["prepare", "srgnn_diginetica", "--raw", str(shared_data / SAMPLE)]) == 0
    assert "loaded from cache" in capsys.readouterr().out
    assert data_main(["prepare", "nope", "--raw", str(shared_data / SAMPLE)]) == 2
    assert "recipe: unknown 'nope'" in capsys.readouterr().err
    assert data_main(["prepare", "rsc15", "--raw", str(tmp_path / "missing.dat")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "yoochoose-clicks.dat" in err


def test_bench_run_prepares_a_recipe_dataset_on_first_use(shared_data, tmp_path):
    out = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "dataset=recipe",
            "dataset.recipe=srgnn_diginetica",
            f"dataset.raw={shared_data / SAMPLE}",
            "baseline=spop",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "BENCH_CACHE_DIR": str(tmp_path / "c")},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rec = json.loads((out / "result.json").read_text())
    assert rec["dataset"]["dataset"] == "srgnn_diginetica"
    assert rec["dataset"]["train_events"] == 1674 and rec["dataset"]["train_path"].endswith(
        "train.parquet"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"foo": 1}, "recipe generic: option 'foo' unknown; its options: test_days, dedup, "),
        ({"test_days": "abc"}, "recipe generic: option test_days: got 'abc'; expected a number"),
        ({"dedup": 3}, "recipe generic: option dedup: got 3; expected true or false"),
        ({"columns": {"session:sid": None}}, "recipe generic: option columns: got {'session:sid'"),
        ({"columns": "sid"}, "recipe generic: option columns: got 'sid'; expected a mapping of"),
    ],
)
def test_a_bad_recipe_option_is_one_line_before_the_raw_file_is_read(tmp_path, options, message):
    """Checked against the recipe's and its reader's parameters: the raw file here does
    not even exist, so nothing was read when the option is refused."""
    with pytest.raises(BenchError) as e:
        prep.prepare("generic", tmp_path / "absent.tsv", options, tmp_path / "cache")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_recipe_without_options_says_so():
    with pytest.raises(BenchError, match=r"^recipe rsc15: option 'x' unknown; its options: none$"):
        prep.resolve_options("rsc15", {"x": 1})
    prep.resolve_options("generic", {"test_days": 2, "columns": {"session": "sid"}})
