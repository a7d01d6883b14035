"""The GPU run (benchmarks/gpu.sh) prepared for a lent device: its plumbing on CPU.

On CPU with the plumbing grid, the script must run our harnesses and the official code
side by side, time the evaluation, and write both JSON files and their tables. The
official checkout is not part of this repository (nor of CI), so a stand-in with its
entry points (GRU4Rec.fit with its iterator and epoch line, batch_eval) takes its place:
what is checked is that the script passes everything through, times the same window of
the epoch on both sides, and reads the results back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STAND_IN = {
    "gru4rec_pytorch.py": "class SessionDataIterator:\n"
    "    def __init__(self, batch_size):\n"
    "        self.batch_size = batch_size\n"
    "    def __call__(self, enable_neg_samples, reset_hook=None):\n"
    "        for _ in range(100):\n"
    "            yield [0] * self.batch_size, None\n"
    "class GRU4Rec:\n"
    "    def __init__(self, device=None, n_epochs=1, **kw):\n"
    "        self.n_epochs = n_epochs\n"
    "    def set_params(self, **kw):\n"
    "        self.batch_size = int(kw['batch_size'])\n"
    "    def fit(self, data):\n"
    "        for _ in range(self.n_epochs):\n"
    "            for _ in SessionDataIterator(self.batch_size)(True):\n"
    "                pass\n"
    "            print('Epoch1 --> loss: 5.000000 \\t(0.50s) \\t[10.00 mb/s | 640 e/s]')\n",
    "evaluation.py": "def batch_eval(gru, test, **kw): return {}\n",
}


@pytest.mark.slow  # long: CI runs it in make test-slow
@pytest.mark.real_data
def test_the_gpu_script_runs_end_to_end_on_cpu(shared_data, tmp_path):
    official = tmp_path / "official"
    official.mkdir()
    for name, text in STAND_IN.items():
        (official / name).write_text(text)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "GRID": "plumbing",
        "PYTHON": sys.executable,
        "BENCH_DATA_DIR": str(shared_data),
        "OFFICIAL": str(official),
        "OFFICIAL_PYTHON": sys.executable,
    }
    p = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    train = json.loads((out / "gpu_throughput.json").read_text())
    assert [(r["loss"], r["batch_size"], r["layers"]) for r in train["rows"]] == [
        ("ce", 32, 100),
        ("ce", 128, 100),
    ]
    assert train["window_events"] == 1000 and train["shared_processes"]
    for row in train["rows"]:
        # ceil(1000 / batch) minibatches after the warm-up, every lane busy, on each side
        steps = -(-1000 // row["batch_size"])
        for side in ("bare", "fused_no_graphs", "official"):
            assert (row[side]["steps"], row[side]["events"]) == (steps, steps * row["batch_size"])
        assert row["speedup_vs_official"] > 0
    assert train["skipped"] == [] and train["failed"] == []
    evaluation = json.loads((out / "gpu_eval.json").read_text())
    assert evaluation["device"] == "cpu" and len(evaluation["official_seconds"]) == 2
    table = (out / "gpu.md").read_text()
    assert table.count("| cpu | ce |") == 2 and "ours without CUDA graphs" in table
    assert "a window of each epoch (1,000 training events' worth" in table


def test_an_unknown_grid_is_one_line(tmp_path):
    p = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "GRID": "huge", "PYTHON": sys.executable, "OFFICIAL": ""},
    )
    assert p.returncode == 2
    assert p.stderr.strip() == "error: GRID=huge; expected full or plumbing"


@pytest.mark.slow  # about 45 s: CI runs it in make test-slow
def test_the_peers_device_script_returns_records_and_resumes_a_run_stopped_at_its_budget(
    tmp_path,
):
    """benchmarks/peers_gpu.sh on the CPU, SR-GNN on the synthetic data: a finished run's
    record and ranks come back under OUT/<model>_<split>/; a run stopped at the budget
    (here: its record removed, its checkpoint kept) comes back as the per-epoch history in
    its checkpoint when no time is left, and the next call resumes it; a finished run is
    not run again."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "RUNS": "srgnn:synthetic",
        "EXTRA": "n_epochs=1",
        "OMP_NUM_THREADS": "1",
        "WORK": str(tmp_path / "work"),
    }

    def call(out: str, **more) -> str:
        script = str(ROOT / "benchmarks" / "peers_gpu.sh")
        p = subprocess.run(
            ["bash", script, str(tmp_path / out)],
            capture_output=True,
            text=True,
            env={**env, **more},
        )
        assert p.returncode == 0, p.stderr[-3000:]
        return p.stdout

    call("a")
    got = tmp_path / "a" / "srgnn_synthetic"
    assert sorted(f.name for f in got.iterdir()) == ["ranks.npy", "result.json"]
    record = json.loads((got / "result.json").read_text())
    assert record["method"] == "srgnn" and len(record["epochs"]) == 1
    assert "recall@20" in record["epochs"][0]["eval"]  # the test set after each epoch
    committed = ROOT / "results" / "records" / "peers" / "srgnn" / "yoochoose1_64" / "result.json"
    assert record["eval"] == json.loads(committed.read_text())["eval"]  # as `make peers` ran
    assert "finished by an earlier call" in call("again")
    (tmp_path / "work" / "srgnn" / "synthetic" / "try1" / "result.json").unlink()
    assert "skipped, 59s of the budget left" in call("b", BUDGET_S="59")
    history = json.loads((tmp_path / "b" / "srgnn_synthetic" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0] and "recall@20" in history[0]["eval"]
    assert "resume=" in call("c", EXTRA="n_epochs=2")
    record = json.loads((tmp_path / "c" / "srgnn_synthetic" / "result.json").read_text())
    assert len(record["epochs"]) == 2 and record["resumed_from"].endswith(
        "try1/checkpoints/last.ckpt"
    )
