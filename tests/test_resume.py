"""Checkpoints that resume (issue #18): a run killed with SIGKILL after its third epoch
and one stopped by Ctrl+C (handled as SIGTERM) in the middle of an epoch both continue, from their
checkpoint, to exactly the metrics of the run that was never interrupted; on real data
(the RSC15 sample), through the entry point, as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

# Small enough for the suite, yet every kind of state is exercised: Adagrad accumulators
# and momentum, dropout masks, and a negative-sample store that is refilled (every 100
# steps) in the middle of epochs.
# Epochs of about a second on an idle 2-core machine: long enough to signal inside one.
OPTIONS = [
    "dataset=rsc15_100k",
    "n_epochs=5",
    "batch_size=64",
    "layers=[64]",
    "n_sample=64",
    "sample_store_size=6400",
    "momentum=0.1",
    "dropout_p_embed=0.1",
    "dropout_p_hidden=0.2",
    "trainer.chunk_steps=25",
    "save_model=false",
]


def start(run_dir, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CI": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.run", *OPTIONS, f"hydra.run.dir={run_dir}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def wait_for_line(proc, text: str, seen: list) -> None:
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"no line with {text!r}:\n{''.join(seen)[-3000:]}")


def saved_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["bench"]


def finish(proc, seen: list) -> str:
    out = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=600) == 0, out[-3000:]
    return out


@pytest.mark.real_data
def test_killed_and_preempted_runs_resume_to_the_same_metrics(shared_data, tmp_path):
    whole = start(tmp_path / "whole")  # the reference, never interrupted
    finish(whole, [])
    reference = json.loads((tmp_path / "whole" / "result.json").read_text())

    # kill -9 once the checkpoint of epoch 3 is on disk (the run is then in epoch 4).
    run1, seen = start(tmp_path / "run1"), []
    ckpt = tmp_path / "run1" / "checkpoints" / "last.ckpt"
    wait_for_line(run1, "Epoch 3 -->", seen)
    deadline = time.monotonic() + 120
    while not (ckpt.exists() and saved_state(ckpt)["state"]["epoch"] == 3):
        assert time.monotonic() < deadline, "no checkpoint of epoch 3"
        time.sleep(0.05)
    run1.kill()
    assert run1.wait() == -signal.SIGKILL
    assert saved_state(ckpt)["mid_epoch"] is None and len(saved_state(ckpt)["history"]) == 3

    # Resume; Ctrl+C in the middle of epoch 5 (made a SIGTERM, a scheduler's preemption).
    # The resumed run's first checkpoint is epoch 4's, written as epoch 5 begins. Training
    # stops after the batch in progress, so Ctrl+C anywhere from a moment after that file
    # appears to the end of epoch 5 (a third of a second on an idle machine) leaves a
    # mid-epoch checkpoint; a fixed sleep on top of a slow poll once overshot the epoch.
    run2, seen = start(tmp_path / "run2", f"resume={tmp_path / 'run1'}"), []
    ckpt2 = tmp_path / "run2" / "checkpoints" / "last.ckpt"
    wait_for_line(run2, "resumed from the checkpoint after epoch 3", seen)
    deadline = time.monotonic() + 120
    while not ckpt2.exists():
        assert time.monotonic() < deadline, "no checkpoint of epoch 4"
        time.sleep(0.005)
    time.sleep(0.03)
    run2.send_signal(signal.SIGINT)
    out = "".join(seen) + run2.stdout.read()
    assert run2.wait(timeout=300) == 128 + signal.SIGTERM and "interrupted: checkpoint" in out, out[
        -3000:
    ]
    state = saved_state(ckpt2)
    assert state["state"]["epoch"] == 4, "Ctrl+C did not land in epoch 5"
    mid = state["mid_epoch"]
    assert mid is not None and mid["next_batch"] > 0, "Ctrl+C left no mid-epoch checkpoint"

    # Resume from the middle of epoch 5 to the end.
    run3 = start(tmp_path / "run3", f"resume={tmp_path / 'run2' / 'checkpoints' / 'last.ckpt'}")
    finish(run3, [])
    resumed = json.loads((tmp_path / "run3" / "result.json").read_text())
    assert resumed["resumed_from"].endswith("run2/checkpoints/last.ckpt")
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in reference["epochs"]]
    assert resumed["metrics"] == reference["metrics"]


@pytest.mark.slow  # long: CI runs it in make test-slow
@pytest.mark.real_data
def test_resume_refuses_a_checkpoint_of_another_run(shared_data, tmp_path):
    run = start(tmp_path / "a", "n_epochs=1")
    finish(run, [])
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *OPTIONS,
            "n_epochs=1",
            "layers=[60]",
            f"resume={tmp_path / 'a'}",
            f"hydra.run.dir={tmp_path / 'b'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    assert (
        p.stderr.strip()
        .splitlines()[-1]
        .startswith("error: resume: the checkpoint is of another run (settings:")
    ), p.stderr[-2000:]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *OPTIONS,
            "n_epochs=1",
            "trainer.chunk_steps=50",
            f"resume={tmp_path / 'a'}",
            f"hydra.run.dir={tmp_path / 'b2'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and "(chunk_steps: 25 there, 50 here)" in p.stderr, p.stderr[-2000:]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *OPTIONS,
            f"resume={tmp_path / 'nothing'}",
            f"hydra.run.dir={tmp_path / 'c'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and "error: resume: no checkpoint at" in p.stderr


@pytest.mark.real_data
def test_early_stopping_through_the_entry_point_keeps_the_best_epoch(shared_data, tmp_path):
    """split=tune: validation on train_valid after every epoch; the record's metrics are
    those of the epoch early stopping chose, whose weights the model holds."""
    out = tmp_path / "r"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            *OPTIONS,
            "split=tune",
            "n_epochs=6",
            "patience=1",
            "learning_rate=0.3",
            "momentum=0.6",
            "stop_metric=mrr@5",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rec = json.loads((out / "result.json").read_text())
    curve = [e["eval"]["mrr@5"] for e in rec["epochs"]]  # (measured: best epoch 5 of 6)
    best = rec["best_epoch"]  # counted from 1, as the console counts
    assert best == curve.index(max(curve)) + 1
    assert [e["epoch"] for e in rec["epochs"]] == list(range(1, len(curve) + 1))
    assert rec["metrics"] == rec["epochs"][best - 1]["eval"]
    assert len(curve) == 6 or len(curve) == best + 1  # stopped one epoch after the best
    assert rec["settings"]["patience"] == 1 and rec["settings"]["stop_metric"] == "mrr@5"
    assert (
        f"early stopping: kept epoch {best} (mrr@5 {max(curve):.4f}) of the {len(curve)} trained"
    ) in p.stdout


class Foreign:
    """What a tampered checkpoint could carry: unpickling it would create `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_carrying_a_foreign_object_is_refused_with_one_line(tmp_path):
    small = ["n_epochs=1", "dataset.params.n_train_sessions=400", "save_model=false"]
    base = [sys.executable, "-m", "bench.run", *small]
    p = subprocess.run([*base, f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    marker = tmp_path / "code-ran"
    ckpt["bench"]["identity"]["extra"] = Foreign(marker)
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    q = subprocess.run(
        [
            *base,
            "n_epochs=2",
            f"resume={tmp_path / 'tampered.ckpt'}",
            f"hydra.run.dir={tmp_path / 'b'}",
        ],
        capture_output=True,
        text=True,
    )
    assert q.returncode == 2
    lines = q.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: resume: {tmp_path / 'tampered.ckpt'}")
    assert "refused" in lines[0] and not marker.exists()


def test_ctrl_c_in_the_final_evaluation_is_one_line_and_keeps_the_checkpoint(tmp_path):
    """Ctrl+C after training (Python's KeyboardInterrupt, not the training loop's SIGTERM):
    one line naming the checkpoint that holds every epoch, exit 130, and no traceback."""
    run_dir = tmp_path / "run"
    interrupt_the_evaluation = (
        "import sys, bench.evaluation as e, bench.run as r\n"
        "def ctrl_c(*a, **k): raise KeyboardInterrupt\n"
        "e.Evaluator.__call__ = ctrl_c\n"
        f"sys.argv = ['bench.run', 'n_epochs=1', 'hydra.run.dir={run_dir}']\n"
        "r.main()\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", interrupt_the_evaluation],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CI": "1"},
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert p.returncode == 128 + signal.SIGINT, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1] == (
        f"interrupted: no result recorded; checkpoint {ckpt}; continue with resume={run_dir}"
    )
    assert "Traceback" not in p.stderr
    assert len(saved_state(ckpt)["history"]) == 1 and not (run_dir / "result.json").exists()
