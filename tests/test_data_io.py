"""Readers: every supported form, and one clear line for each kind of bad input."""

import gzip

import pandas as pd
import pytest

from bench.data.io import Columns, read_session_file
from bench.data.sessions import ItemMap, to_sessions
from bench.errors import BenchError

TSV = "SessionId\tItemId\tTime\n1\t10\t5\n1\t11\t6\n2\t10\t1\n2\t12\t2\n"


def write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name, gz", [("a.tsv", False), ("a.tsv.gz", True), ("a.txt", False)])
def test_tsv_forms(tmp_path, name, gz):
    df = read_session_file(write(tmp_path / name, TSV, gz))
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert df["ItemId"].tolist() == ["10", "11", "10", "12"]


def test_csv_parquet_and_custom_columns(tmp_path):
    src = pd.DataFrame({"sid": [1, 1, 2], "iid": [5, 6, 5], "ts": [1.0, 2.0, 3.0]})
    cols = Columns(session="sid", item="iid", time="ts")
    src.to_csv(tmp_path / "a.csv", index=False)
    src.to_parquet(tmp_path / "a.parquet")
    for f in ("a.csv", "a.parquet"):
        df = read_session_file(tmp_path / f, cols)
        assert df["ItemId"].tolist() == ["5", "6", "5"] and df["Time"].tolist() == [1.0, 2.0, 3.0]


def test_session_text_keeps_file_order(tmp_path):
    p = write(tmp_path / "train_sessions.txt.gz", "3 1 2\n9 9\n1\n", gz=True)
    df = read_session_file(p)
    assert df["SessionId"].tolist() == [0, 0, 0, 1, 1, 2]
    s = to_sessions(df, ItemMap.from_events(df))
    assert s.offsets.tolist() == [0, 3, 5, 6]
    assert s.session_ids.tolist() == [0, 1, 2]


def test_sessions_sorted_by_start_time(tmp_path):
    df = read_session_file(write(tmp_path / "a.tsv", TSV))
    s = to_sessions(df, ItemMap.from_events(df))
    assert [str(x) for x in s.session_ids] == ["2", "1"]  # session 2 starts first


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "SessionId\tItemId\n1\t2\n",
            r"a.tsv: missing column\(s\) 'Time'; expected SessionId, ItemId, Time",
        ),
        (
            "SessionId\tItemId\tTime\n1\t2\tyesterday\n",
            r"a.tsv: column 'Time' must be numeric .*'yesterday' at data row 1",
        ),
        (
            "SessionId\tItemId\tTime\n1\t\t5\n",
            r"a.tsv: column 'ItemId' has 1 missing value\(s\) \(first at data row 1\)",
        ),
        ("SessionId\tItemId\tTime\n", r"a.tsv: file has no events"),
        ("SessionId,ItemId,Time\n1,2,3\n", r"missing column.*another delimiter"),
    ],
)
def test_bad_tables_give_one_line(tmp_path, text, match):
    with pytest.raises(BenchError, match=match) as e:
        read_session_file(write(tmp_path / "a.tsv", text))
    assert "\n" not in str(e.value)


def test_empty_and_truncated_files(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(BenchError, match=r"e.tsv: file is empty"):
        read_session_file(tmp_path / "e.tsv")
    blob = gzip.compress(("1 2 3\n" * 5000).encode())
    (tmp_path / "t.txt.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(BenchError, match=r"t.txt.gz: cannot read"):
        read_session_file(tmp_path / "t.txt.gz")
    with pytest.raises(BenchError, match=r"nope.tsv: file not found"):
        read_session_file(tmp_path / "nope.tsv")


def test_test_file_with_no_known_item(tmp_path):
    train = read_session_file(write(tmp_path / "a.tsv", TSV))
    test = read_session_file(write(tmp_path / "test_sessions.txt", "98 99\n97\n"))
    with pytest.raises(BenchError, match="none of the 3 events has an item seen in training"):
        to_sessions(test, ItemMap.from_events(train), source="test_sessions.txt")
