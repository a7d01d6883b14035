"""The SR-GNN splits: published statistics from the shared files, and SR-GNN's pickled form
read back safely (plain data only) and de-augmented to the same sessions."""

import pickle

import pytest

from bench.data.io import read_session_file
from bench.data.pickles import augment, read_srgnn_pickle
from bench.data.stats import split_statistics
from bench.errors import BenchError


def read_pair(shared_data, folder):
    train = read_session_file(shared_data / folder / "train_sessions.txt.gz")
    test = read_session_file(shared_data / folder / "test_sessions.txt.gz")
    return split_statistics({"train": train, "test": test})


@pytest.mark.real_data
def test_diginetica_srgnn_reproduces_the_published_statistics(shared_data):
    st = read_pair(shared_data, "diginetica/srgnn")
    # SR-GNN paper, Table 1: 719,470 training / 60,858 test samples, 43,097 items, 982,961 clicks.
    assert st["train"]["prefix_samples"] == 719_470
    assert st["test"]["prefix_samples"] == 60_858
    assert st["train"]["items"] == 43_097 and st["items_train_or_test"] == 43_097
    assert st["train"]["events"] + st["test"]["events"] == 982_961
    assert st["train"]["sessions"] == 186_670  # preprocess.py's printed count


@pytest.mark.real_data
def test_yoochoose1_64_reproduces_the_published_statistics(shared_data):
    st = read_pair(shared_data, "yoochoose/srgnn_yoochoose1_64")
    # SR-GNN paper, Table 1: 369,859 training / 55,898 test samples, 557,248 clicks.
    assert st["train"]["prefix_samples"] == 369_859
    assert st["test"]["prefix_samples"] == 55_898
    assert st["train"]["events"] + st["test"]["events"] == 557_248
    assert st["test"]["sessions"] == 15_324  # preprocess.py's printed count
    # The paper prints 16,766 items; the split it published holds 17,376 items in training
    # and 17,745 in training or test (369 test items never occur in the 1/64 training part,
    # 531 test events): the counts below are what the data has.
    assert st["train"]["items"] == 17_376 and st["items_train_or_test"] == 17_745
    assert st["test_items_unknown_to_train"] == 531


def sessions_of(df):
    return [list(g) for _, g in df.groupby("SessionId", sort=False)["ItemId"]]


@pytest.mark.real_data
def test_srgnn_pickle_round_trip_gives_back_the_sessions(shared_data, tmp_path):
    test = read_session_file(shared_data / "diginetica/srgnn/test_sessions.txt.gz")
    sessions = [list(map(int, s)) for s in sessions_of(test)]
    path = tmp_path / "test.txt"  # SR-GNN's own file name
    with open(path, "wb") as f:
        pickle.dump(augment(sessions), f)
    back = read_session_file(path)  # format detected from the content
    assert [list(map(int, s)) for s in sessions_of(back)] == sessions
    assert split_statistics({"t": back})["t"]["prefix_samples"] == 60_858


def test_pickle_holding_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.mkdir, (str(marker),))

    path = tmp_path / "train.txt"
    path.write_bytes(pickle.dumps(([[1, 2]], [Evil()])))
    with pytest.raises(BenchError, match=r"train\.txt: not a plain-data pickle \(refused to load"):
        read_session_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (([[1, 2.5]], [3]), "holds a float"),
        (([[1, 2]], ["x"]), "holds a str"),
        (([[1, 2]], [3, 4]), "equal-length"),
        ({"a": 1}, "holds a dict"),
    ],
)
def test_pickle_with_anything_but_plain_lists_is_one_line(tmp_path, payload, message):
    path = tmp_path / "test.txt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(BenchError, match=message):
        read_srgnn_pickle(path)


def test_truncated_pickle_is_one_line(tmp_path):
    path = tmp_path / "test.txt"
    path.write_bytes(pickle.dumps(([[1, 2, 3]] * 50, [4] * 50))[:-20])
    with pytest.raises(BenchError, match="unreadable pickle"):
        read_srgnn_pickle(path)


def test_deaugmentation_splits_adjacent_sessions_correctly(tmp_path):
    # [1,2,3] gives ([1,2] -> 3), ([1] -> 2); the next session [1,2] gives ([1] -> 2) again,
    # which cannot continue a session whose last prefix was already one item long.
    sessions = [[1, 2, 3], [1, 2], [5, 5, 5]]
    path = tmp_path / "p.txt"
    path.write_bytes(pickle.dumps(augment(sessions)))
    back = [list(map(int, s)) for s in sessions_of(read_srgnn_pickle(path))]
    assert back == sessions


@pytest.mark.real_data
def test_srgnn_comparable_mode_counts_unscorable_predictions_as_misses(shared_data):
    from bench.baselines import make_baseline
    from bench.core.evaluate import evaluate
    from bench.datasets import load_dataset

    ds = {
        "name": "yc",
        "kind": "files",
        "train": "yoochoose/srgnn_yoochoose1_64/train_sessions.txt.gz",
        "test": "yoochoose/srgnn_yoochoose1_64/test_sessions.txt.gz",
    }
    data = load_dataset(ds, str(shared_data), "final")
    # SR-GNN's 55,898 test samples; 498 of them cannot be scored here (an item of the
    # 1/64 test set never occurs in the 1/64 training data): dropped by default.
    assert data.original_predictions == 55_898 and data.unscorable_predictions == 498
    pop = make_baseline("pop").fit(data.train, len(data.item_map))
    dropped = evaluate(pop, data.test, [20])
    missed = evaluate(pop, data.test, [20], extra_misses=data.unscorable_predictions)
    assert dropped.n_events == 55_400 and missed.n_events == 55_898
    hits = dropped.metrics["recall@20"] * 55_400
    assert missed.metrics["recall@20"] == pytest.approx(hits / 55_898)
    assert missed.metrics["mrr@20"] == pytest.approx(dropped.metrics["mrr@20"] * 55_400 / 55_898)
