"""Real data from ../shared/data: loading statistics and the accuracy-parity run."""

import json
import subprocess
import sys

import pytest

from bench.data.io import read_session_file
from bench.datasets import load_dataset

pytestmark = pytest.mark.real_data

# Official GRU4Rec_PyTorch_Official, same settings, standard ties (issue #2).
OFFICIAL = {"recall@20": 0.4793, "mrr@20": 0.1487}
PARITY = [
    "dataset=diginetica_srgnn",
    "loss=ce",
    "layers=[100]",
    "batch_size=128",
    "n_sample=2048",
    "sample_alpha=0.75",
    "logq=1",
    "constrained_embedding=true",
    "dropout_p_embed=0.1",
    "dropout_p_hidden=0",
    "learning_rate=0.1",
    "momentum=0",
    "n_epochs=1",
    "eval.tie_mode=standard",
    "save_model=false",
]


@pytest.mark.parametrize(
    "name, train_rel, test_rel, items, train_pairs, test_pairs, dropped",
    [
        (
            "diginetica_srgnn",
            "diginetica/srgnn/train_sessions.txt.gz",
            "diginetica/srgnn/test_sessions.txt.gz",
            43097,
            719470,
            60858,
            0,
        ),
        # The 1/64 train subset lacks some test items (SR-GNN filtered against the full
        # train set): 531 test events fall out under GRU4Rec's protocol.
        (
            "yoochoose1_64",
            "yoochoose/srgnn_yoochoose1_64/train_sessions.txt.gz",
            "yoochoose/srgnn_yoochoose1_64/test_sessions.txt.gz",
            None,
            369859,
            55898,
            531,
        ),
    ],
)
def test_srgnn_splits_load_with_published_counts(
    shared_data, name, train_rel, test_rel, items, train_pairs, test_pairs, dropped
):
    d = load_dataset(
        {
            "name": name,
            "kind": "files",
            "train": str(shared_data / train_rel),
            "test": str(shared_data / test_rel),
        },
        "",
    )
    assert d.train.n_events - d.train.n_sessions == train_pairs  # SR-GNN's prefix samples
    raw_test = read_session_file(shared_data / test_rel)
    assert len(raw_test) - raw_test["SessionId"].nunique() == test_pairs
    assert d.test.n_dropped_events == dropped
    if items is not None:
        assert len(d.item_map) == items


def test_rsc15_sample_tsv_loads(shared_data):
    base = shared_data / "yoochoose/sessionrec_rsc15_100k"
    d = load_dataset(
        {
            "kind": "files",
            "train": str(base / "yoochoose-clicks-100k_train_full.tsv.gz"),
            "test": str(base / "yoochoose-clicks-100k_test.tsv.gz"),
        },
        "",
    )
    assert d.train.n_events == 70278 and d.train.n_sessions == 17794
    assert len(d.item_map) == 2933


@pytest.mark.slow
def test_diginetica_accuracy_parity_with_official(shared_data, tmp_path):
    """Train on the train sessions, evaluate on the test sessions, through `bench.run`."""
    out = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *PARITY,
            f"data_dir={shared_data}",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "result.json").read_text())["metrics"]
    for key, ref in OFFICIAL.items():
        assert abs(m[key] - ref) / ref < 0.02, (key, m[key], ref)
