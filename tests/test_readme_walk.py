"""The README walked as a new user walks it: every command line of its bash blocks runs, as
written, in a copy of the project as a fresh clone holds it (git's files only, no run
folders), and does what the text beside it says.

`WALK` is the one list: each README command with how the walk types it (the README's text
with short settings appended, placeholders such as `<stamp>` or `my_log.tsv` filled in)
and what it checks. A command added to the README and not to `WALK`, or the other way
round, fails `test_every_readme_command_is_walked`. Commands the walk cannot run here (a
server, a download, hours of compute, an install into this environment) name the test that
covers them; that test must exist. Runs on the full real splits are `slow` (CI runs them
after `make test`); without `../shared`, the commands that need real data say so in one
line (`test_without_shared_data_the_real_data_commands_say_what_is_missing`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from bench.studies import STOP_FILE

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = Path(sys.prefix)  # `make` is walked with this environment (VENV=...)


def readme_commands(text: str) -> list[str]:
    """The command lines of the README's bash blocks, continuation lines joined and
    trailing comments dropped, in README order."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


@dataclass(frozen=True)
class Step:
    """How the walk types one README command and what it checks. `check(proc, walk)`
    asserts what the README says the command does (exit code 0 is checked for all)."""

    extra: tuple[str, ...] = ()  # short settings, appended
    replace: dict = field(default_factory=dict)  # README text -> what the walk types
    check: Callable | None = None
    slow: bool = False
    covered_by: str = ""  # not run here: the test that covers it (file::name) ...
    why: str = ""  # ... and why the walk does not run it
    instead: Callable | None = None  # a server: what the walk checks of what it would show
    returncode: int = 0


class Walk:
    """A copy of the project as a fresh clone holds it, and what earlier steps left there."""

    def __init__(self, project: Path, env: dict):
        self.project, self.env = project, env
        self.resume: str | None = None  # printed by the interrupted run

    def run(self, command: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv(command),
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def newest_run(self) -> Path:
        runs = sorted((self.project / "results" / "raw" / "runs").iterdir())
        return runs[-1]


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    if words[0] == "make":  # this environment is the installed one: no reinstall
        return ["make", f"VENV={VENV}", *words[1:]]
    if words[0] in ("tensorboard", "optuna-dashboard"):
        return [str(VENV / "bin" / words[0]), *words[1:]]
    return words


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


# What each command must show (the README's words beside it, in a check).
def trained_and_recorded(p, walk):
    assert "result record:" in p.stdout and record(walk.newest_run())["metrics"]


def grid_table(p, walk):
    assert p.stdout.count("result record:") == 3
    assert p.stdout.count("### Grid results/raw/multiruns/") == 1, p.stdout[-3000:]
    table = p.stdout.split("### Grid ")[1]
    assert all(f"| GRU4Rec {loss} |" in table for loss in ("TOP1", "BPR", "XE")), table


def printed_config(p, walk):
    assert "dataset:" in p.stdout and "result record:" in p.stdout


def config_only(p, walk):
    assert "dataset:" in p.stdout and "result record:" not in p.stdout


def csv_log(p, walk):
    run = walk.newest_run()
    metrics = pd.read_csv(run / "logs" / "metrics.csv")
    assert metrics["test/mrr_at_20"].notna().sum() == 3 and (run / "logs" / "hparams.yaml").exists()


def three_loggers(p, walk):
    assert list((walk.project / "results" / "raw" / "tensorboard").rglob("events.out.tfevents*"))
    assert (walk.project / "results" / "raw" / "mlflow.db").is_file()
    assert (walk.newest_run() / "logs" / "metrics.csv").is_file()


def tensorboard_scalars(p, walk):
    out = p.stdout + p.stderr
    assert "train/loss" in out and "test/mrr_at_20" in out, out[-2000:]


def mlflow_runs(p, walk):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{walk.project / 'results' / 'raw' / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert {"trial_0", "trial_1"} <= set(runs["tags.mlflow.runName"]), runs


def interrupted(p, walk):
    assert p.returncode == 128 + signal.SIGTERM, p.stdout[-2000:] + p.stderr[-2000:]
    found = re.search(r"continue with (resume=\S+)", p.stdout + p.stderr)
    assert found, p.stdout[-2000:]
    walk.resume = found.group(1)


def resumed(p, walk):
    assert "resumed from the checkpoint" in p.stdout
    assert [e["epoch"] for e in record(walk.newest_run())["epochs"]] == [1, 2, 3, 4, 5]


def stopped_early(p, walk):
    assert re.search(r"early stopping: kept epoch \d+ \(recall@20", p.stdout), p.stdout[-2000:]


def recipes_listed(p, walk):
    assert "srgnn_diginetica" in p.stdout and "generic" in p.stdout


def prepared(p, walk):
    assert "train" in p.stdout and "test" in p.stdout and "sessions" in p.stdout


def one_line_error(needle: str):
    def check(p, walk):
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], p.stderr[-2000:]

    return check


def study_summary(p, walk):
    assert "Warning" not in p.stderr, p.stderr[-3000:]  # each was fixed or is explained once
    assert re.search(r"best: trial \d+, validation mrr@20", p.stdout + p.stderr), (
        p.stdout[-3000:] + p.stderr[-3000:]
    )
    assert list((walk.project / "results" / "raw" / "studies").glob("*.db"))


def status_table(p, walk):
    assert "gru4rec_ce_diginetica_srgnn | 30 of 30" in p.stdout, p.stdout[-3000:]


def workers_told_to_stop(p, walk):
    assert "every worker ends after its trial in progress" in p.stdout, p.stdout
    assert (walk.project / STOP_FILE).is_file()


def storage_opens(name: str):
    def check(walk):
        import optuna

        url = f"sqlite:///{walk.project / name}"
        assert optuna.load_study(study_name=Path(name).stem, storage=url).trials

    return check


DIGINETICA_RAW = "{data}/diginetica/raw_sample/train-item-views.sample.csv"
# Studies: two trials of one epoch (one on the full splits), no retraining (test_study and
# test_external retrain the best trial with seeds).
STUDY_SHORT = ("hydra.sweeper.n_trials=2", "hydra.sweeper.final_seeds=0", "n_epochs=1")
STUDY_ONE = ("hydra.sweeper.n_trials=1", "hydra.sweeper.final_seeds=0", "n_epochs=1")
NO_GPU_HERE = "trainer.accelerator: 'gpu' requested but no CUDA device is available"

WALK: dict[str, Step] = {
    "make run": Step(check=trained_and_recorded),
    "make test": Step(
        covered_by="tests/test_readme_walk.py::test_every_readme_command_is_walked",
        why="it is this suite",
    ),
    "python -m bench.run": Step(check=trained_and_recorded),
    "python -m bench.run -m loss=top1,bpr,ce": Step(extra=("n_epochs=1",), check=grid_table),
    "python -m bench.run dataset=diginetica_srgnn loss=bpr-max n_epochs=5": Step(
        covered_by="tests/test_real_data.py::test_diginetica_accuracy_parity_with_official",
        why="that test trains and evaluates on this split through bench.run; this command's "
        "minute is measured in the README's cost table",
    ),
    "python -m bench.run dataset=files dataset.train=my_train.tsv dataset.test=my_test.tsv": Step(
        extra=("n_epochs=1",), check=trained_and_recorded
    ),
    "python -m bench.run print_config=true": Step(extra=("n_epochs=1",), check=printed_config),
    "python -m bench.run --cfg job --resolve": Step(check=config_only),
    "python -m bench.run n_epochs=3 eval.per_epoch=true": Step(check=csv_log),
    "pip install -e '.[loggers]'": Step(
        covered_by="tests/test_run.py::test_an_installed_copy_keeps_its_files_in_the_current_directory",
        why="it would re-point this environment; make installs the same extras (dev)",
    ),
    "python -m bench.run logger=[csv,tensorboard,mlflow] eval.per_epoch=true": Step(
        extra=("n_epochs=2",), check=three_loggers
    ),
    "tensorboard --logdir results/raw/tensorboard": Step(
        extra=("--inspect",),
        check=tensorboard_scalars,  # what the server would serve
    ),
    "pip install mlflow && mlflow ui --backend-store-uri sqlite:///results/raw/mlflow.db": Step(
        covered_by="tests/test_loggers.py::test_csv_tensorboard_and_mlflow_read_back_one_run",
        why="a server of a package this environment does not hold; its store is read back",
    ),
    "python -m bench.run -m hparams_search=gru4rec_ce logger=mlflow": Step(
        extra=STUDY_SHORT, check=mlflow_runs, slow=True
    ),
    "python -m bench.run dataset=rsc15_100k n_epochs=5": Step(check=interrupted),
    "python -m bench.run dataset=rsc15_100k n_epochs=5 resume=results/raw/runs/<stamp>": Step(
        replace={"resume=results/raw/runs/<stamp>": "{resume}"}, check=resumed
    ),
    "python -m bench.run dataset=rsc15_100k split=tune patience=2 stop_metric=recall@20": Step(
        extra=("n_epochs=4", "patience=1"),
        replace={"patience=2": ""},
        check=stopped_early,
    ),
    "python -m bench.data list": Step(check=recipes_listed),
    "python -m bench.data prepare srgnn_diginetica --raw train-item-views.csv": Step(
        replace={"train-item-views.csv": DIGINETICA_RAW}, check=prepared
    ),
    "python -m bench.data prepare generic --raw my_log.tsv --set test_days=7 --set dedup=true": (
        Step(check=prepared)
    ),
    "python -m bench.data download ml-1m": Step(
        covered_by="tests/test_download.py::test_resumed_download_is_checked_against_the_pinned_sha256",
        why="CI has no internet; a local server stands in for the download site",
    ),
    "python -m bench.run dataset=diginetica dataset.recipe=srgnn_diginetica": Step(
        extra=("n_epochs=1", f"dataset.raw={DIGINETICA_RAW}"), check=trained_and_recorded
    ),
    "python -m bench.run model=external model.target=examples.my_model:PrefixGRU": Step(
        extra=("n_epochs=1",), check=trained_and_recorded
    ),
    "python -m bench.run model=external model.target=examples.my_model:PrefixGRU "
    "+model.params.hidden=128 batch_size=256 n_epochs=3 dataset=yoochoose1_64 "
    "eval.per_epoch=true": Step(
        covered_by="tests/test_external.py::test_the_example_runs_through_bench_run_and_into_the_report",
        why="five minutes on yoochoose1/64 (the README's cost table); that test runs the same "
        "model through bench.run, per-epoch evaluation included",
    ),
    "python -m bench.run model=prefix_gru hydra.searchpath=[file://examples/conf]": Step(
        extra=("n_epochs=1",), check=trained_and_recorded
    ),
    "python -m bench.run -m hparams_search=prefix_gru hydra.searchpath=[file://examples/conf]": (
        Step(extra=STUDY_SHORT, check=study_summary, slow=True)
    ),
    "python -m bench.run model=srgnn dataset=yoochoose1_64 eval.per_epoch=true": Step(
        covered_by="tests/test_external.py::test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one",
        why="its 30 epochs take an hour; that test runs SR-GNN through bench.run, and the walk's "
        "SR-GNN study step trains it on this split",
    ),
    "make peers": Step(
        covered_by="tests/test_committed_results.py::test_make_headline_regenerates_the_committed_headline",
        why="about 14 CPU-hours (SR-GNN and SGNN-HN); its committed records make the "
        "headline's peer rows",
    ),
    "python -m bench.run -m hparams_search=srgnn dataset=yoochoose1_64": Step(
        extra=STUDY_ONE,
        check=study_summary,
        slow=True,
    ),
    "make results": Step(
        covered_by="tests/test_committed_results.py::test_make_report_regenerates_the_committed_tables_and_figures",
        why="1.5 hours; the report regenerates exactly from the records it committed",
    ),
    "make report": Step(
        covered_by="tests/test_committed_results.py::test_make_report_regenerates_the_committed_tables_and_figures",
        why="that test runs it and compares every file it writes",
    ),
    "make studies": Step(
        covered_by="tests/test_studies.py::test_a_niced_runner_nices_the_session_of_each_worker",
        why="days of trials; its runner is started and stopped there",
    ),
    "python -m bench.studies --status": Step(check=status_table),
    "python -m bench.studies --probe 5": Step(
        covered_by="tests/test_studies.py::test_a_probe_runs_few_trials_and_no_retraining",
        why="hours of trials over every study",
    ),
    "python -m bench.studies --threads 1 --workers 2": Step(
        covered_by="tests/test_studies.py::test_several_workers_run_the_trials_then_one_retraining_several_seeds_at_a_time",
        why="days of trials",
    ),
    'python -m bench.studies --stage && git commit -m "studies: progress"': Step(
        covered_by="tests/test_studies.py::test_stage_puts_the_headline_of_exactly_the_staged_storages_in_the_index",
        why="the walk's copy is not a git repository",
    ),
    "python -m bench.studies --stop": Step(check=workers_told_to_stop),
    "make headline": Step(
        covered_by="tests/test_committed_results.py::test_make_headline_regenerates_the_committed_headline",
        why="that test runs it and compares what it writes",
    ),
    "python -m bench.run model=gru4rec_seq dataset=ml-100k": Step(
        extra=("n_epochs=1",), check=trained_and_recorded
    ),
    "python -m bench.run model=gru4rec_seq dataset=ml-1m dataset.raw=<that path> "
    "trainer.accelerator=gpu": Step(
        replace={"<that path>": "/nowhere/ratings.dat"},
        returncode=2,
        check=one_line_error(NO_GPU_HERE),
    ),
    "python -m bench.run model=gru4rec_seq dataset=ml-20m dataset.raw=<path> layers=[256] "
    "trainer.accelerator=gpu": Step(
        replace={"<path>": "/nowhere/ratings.csv"},
        returncode=2,
        check=one_line_error(NO_GPU_HERE),
    ),
    "python -m bench.run -m hparams_search=gru4rec_ce params=official dataset=diginetica_srgnn": (
        Step(extra=STUDY_ONE, check=study_summary, slow=True)
    ),
    "python -m bench.run -m hparams_search=gru4rec_bpr-max dataset=rsc15_100k "
    "hydra.sweeper.n_trials=50": Step(
        replace={"hydra.sweeper.n_trials=50": ""},
        extra=STUDY_SHORT,
        check=study_summary,
        slow=True,
    ),
    "optuna-dashboard sqlite:///results/raw/studies/gru4rec_ce_diginetica_srgnn.db": Step(
        instead=storage_opens("results/raw/studies/gru4rec_ce_diginetica_srgnn.db"), slow=True
    ),
    "optuna-dashboard sqlite:///sweeps/gru4rec_ce_diginetica_srgnn.db": Step(
        instead=storage_opens("sweeps/gru4rec_ce_diginetica_srgnn.db")
    ),
    "python -m bench.run dataset=diginetica_srgnn loss=ce layers=[100] batch_size=128 "
    "n_sample=2048 sample_alpha=0.75 logq=1 constrained_embedding=true dropout_p_embed=0.1 "
    "dropout_p_hidden=0 learning_rate=0.1 momentum=0 n_epochs=1 eval.tie_mode=standard": Step(
        covered_by="tests/test_real_data.py::test_diginetica_accuracy_parity_with_official",
        why="that test runs this command (save_model=false) and checks its accuracy against "
        "the official code's",
    ),
}


def fresh_clone(dest: Path) -> Path:
    """The files git holds, as a clone has them (no results/raw, no caches)."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    os.utime(dest / "pyproject.toml", (0, 0))  # older than the environment's install stamp
    return dest


def user_files(project: Path) -> None:
    """The files the README's commands name as the user's own: two session logs and a raw log."""
    from bench.data.synthetic import generate

    train, test = generate(n_items=300, n_train_sessions=1500, n_test_sessions=200, seed=3)
    train.to_csv(project / "my_train.tsv", sep="\t", index=False)
    test.to_csv(project / "my_test.tsv", sep="\t", index=False)
    log = pd.concat([train, test])
    start, span = log["Time"].min(), log["Time"].max() - log["Time"].min()
    log["Time"] = start + (log["Time"] - start) * (30 * 86400 / span)  # a month, for test_days=7
    log.to_csv(project / "my_log.tsv", sep="\t", index=False)


def walk_env(data_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_DATA_DIR", "PYTHONPATH")}
    env |= {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2")}
    if data_dir is not None:
        env["BENCH_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="module")
def walk(shared_data, tmp_path_factory) -> Walk:
    project = fresh_clone(tmp_path_factory.mktemp("clone") / "gru4rec-bench")
    user_files(project)
    env = walk_env(shared_data) | {"PYTHONPATH": str(project / "src")}
    return Walk(project, env)


def typed(command: str, step: Step, walk: Walk) -> str:
    """The README's command with the step's replacements and short settings."""
    fill = {"resume": walk.resume or "", "data": walk.env.get("BENCH_DATA_DIR", "")}
    for old, new in step.replace.items():
        command = command.replace(old, new.format(**fill))
    extra = " ".join(shlex.quote(e.format(**fill)) for e in step.extra)
    return f"{command} {extra}".strip()


def interrupt_at_epoch_3(walk: Walk, command: str) -> subprocess.CompletedProcess:
    """Ctrl+C once epoch 2's line is out, as the README's user presses it in epoch 3."""
    proc = subprocess.Popen(
        argv(command),
        cwd=walk.project,
        env=walk.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.startswith("Epoch 2 -->"):
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(out) + rest, err)


def test_every_readme_command_is_walked():
    commands = list(dict.fromkeys(readme_commands(README.read_text())))  # each once
    unwalked = [c for c in commands if c not in WALK]
    stale = [c for c in WALK if c not in commands]
    assert not unwalked, f"README commands the walk does not know (add them to WALK): {unwalked}"
    assert not stale, f"WALK commands no longer in the README: {stale}"
    assert list(WALK) == commands, "WALK is in README order"
    for command, step in WALK.items():
        if step.covered_by:
            path, name = step.covered_by.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(), f"{command}: {step.covered_by}"
            assert step.why, f"{command}: say why the walk does not run it"


RUN = [c for c, s in WALK.items() if not s.covered_by]


@pytest.mark.real_data
@pytest.mark.parametrize(
    "command", [pytest.param(c, marks=[pytest.mark.slow] if WALK[c].slow else []) for c in RUN]
)
def test_the_readme_command_runs_as_written(command, walk):
    step = WALK[command]
    if step.instead is not None:
        step.instead(walk)
        return
    line = typed(command, step, walk)
    if step.check is interrupted:
        interrupted(interrupt_at_epoch_3(walk, line), walk)
        return
    p = walk.run(line)
    assert p.returncode == step.returncode, f"{line}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    if step.check is not None:
        step.check(p, walk)


WITHOUT_DATA = [
    "python -m bench.run dataset=diginetica_srgnn loss=bpr-max n_epochs=5",
    "python -m bench.run dataset=rsc15_100k n_epochs=5",
    "python -m bench.run model=gru4rec_seq dataset=ml-100k",
    "python -m bench.run dataset=diginetica dataset.recipe=srgnn_diginetica",
]


def test_without_shared_data_the_real_data_commands_say_what_is_missing(tmp_path):
    """A fresh clone with no ../shared beside it and BENCH_DATA_DIR unset: the default runs;
    each kind of real-data command (prepared split, official split, MovieLens, raw recipe)
    ends with one line naming the file and what to set, and leaves no run folder."""
    project = fresh_clone(tmp_path / "gru4rec-bench")
    walk = Walk(project, walk_env(None) | {"PYTHONPATH": str(project / "src")})
    trained_and_recorded(walk.run("python -m bench.run n_epochs=1"), walk)
    assert set(WITHOUT_DATA) <= set(WALK)
    for command in WITHOUT_DATA:
        p = walk.run(command)
        assert p.returncode == 2, command
        one_line_error("data_dir is unset: set BENCH_DATA_DIR or data_dir=...")(p, walk)
    assert len(list((project / "results" / "raw" / "runs").iterdir())) == 1
