"""`python -m bench.studies`: the headline studies' runner and its progress report."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bench import protocol, studies
from bench.records import RANKS_KEY


def test_every_headline_study_runs_one_command_with_the_common_budget():
    names = [s.name for s in studies.all_studies()]
    assert len(names) == len(set(names)) == 2 * len(protocol.SEARCHES)
    gru = studies.Study("gru4rec_ce", "yoochoose1_64")
    cmd = gru.command("python")
    assert cmd[:5] == ["python", "-m", "bench.run", "-m", "hparams_search=gru4rec_ce"]
    assert "params=official" in cmd and f"hydra.sweeper.n_trials={protocol.BUDGET}" in cmd
    assert f"hydra.sweeper.budget={protocol.BUDGET}" in cmd  # fixed, even below an older one
    assert f"hydra.sweeper.budget={protocol.BUDGET}" in gru.command("python", probe=3)
    assert studies.Study("pop", "yoochoose1_64").budget == 1


def test_final_seeds_are_read_from_each_search_config():
    """The runner and the headline take a study's final seeds from its conf/hparams_search
    file, the one place that sets them."""
    seeds = {s: protocol.final_seeds(s) for s in protocol.SEARCHES}
    assert seeds == {
        "pop": 1,
        "spop": 1,
        "sr": 1,
        "ar": 1,
        "itemknn": 1,
        "bprmf": 5,
        "sknn": 1,
        "vsknn": 1,
        "stan": 1,
        "gru4rec_ce": 5,
        "gru4rec_bpr-max": 5,
        "srgnn": 5,
        "sgnnhn": 5,
        "narm": 5,
    }
    assert protocol.final_seeds("no_such_search") == 1


def test_every_tuned_search_reads_the_common_budget():
    """conf/hparams_search files state no budget of their own: n_trials is protocol.BUDGET
    through the resolver the entry point registers."""
    from omegaconf import OmegaConf

    import bench.run  # noqa: F401  (registers bench_budget)
    from bench.paths import conf_dir

    for search in protocol.SEARCHES:
        raw = (conf_dir() / "hparams_search" / f"{search}.yaml").read_text()
        n_trials = OmegaConf.create(raw).hydra.sweeper.n_trials
        want = 1 if search in protocol.UNTUNED else protocol.BUDGET
        assert n_trials == want, search
        assert search in protocol.UNTUNED or "n_trials: ${bench_budget:}" in raw, search


def test_progress_counts_the_budget_cost_and_what_is_left(tmp_path):
    (tmp_path / "sweeps").mkdir()
    study = studies.Study("sknn", "yoochoose1_64")
    s = optuna.create_study(
        study_name=study.name,
        direction="maximize",
        storage=f"sqlite:///{tmp_path / 'sweeps' / (study.name + '.db')}",
    )
    for i in range(4):
        trial = s.ask()
        trial.set_user_attr("cpu_seconds", 30.0 if i == 3 else 110.0)
        if i == 3:
            s.tell(trial, state=TrialState.PRUNED)
        else:
            s.tell(trial, 0.1 * i)
    p = studies.progress(study, tmp_path)
    assert (p.finished, p.pruned, p.cpu_seconds, p.cpu_estimated) == (4, 1, 360.0, False)
    # 26 trials at the mean 90 s per finished trial, and one retraining: a complete
    # trial (110 s) on the larger training split (x 1.15).
    assert protocol.BUDGET == 30
    assert p.cpu_hours_left() == (26 * 90 + 1.15 * 110) / 3600
    assert not p.done
    lines = studies.status_lines([p])
    assert "| sknn_yoochoose1_64 | 4 of 30 | 1 | 0 | 0.10 | 0.69 | 0 |" in lines
    # A retraining of the best trial counts only with its per-event ranks (the paired test)
    final = {"best_trial": 2, "n_trials": 4, "records": [{"seed": 0, RANKS_KEY: None}]}
    s.set_user_attr("final", final)
    assert studies.progress(study, tmp_path).final_seeds == 0
    s.set_user_attr("final", final | {"records": [{"seed": 0, RANKS_KEY: "AAEC"}]})
    assert studies.progress(study, tmp_path).final_seeds == 1
    # A trial run on a GPU counts its host's CPU seconds, but the estimate of what is left
    # is made from the trials run on CPU.
    trial = s.ask()
    trial.set_user_attr("cpu_seconds", 5.0)
    trial.set_user_attr("device", "NVIDIA H200")
    s.tell(trial, 0.05)
    p = studies.progress(study, tmp_path)
    assert (p.finished, p.cpu_seconds) == (5, 365.0)
    # (the retraining after 4 trials no longer counts: the study went on)
    assert p.cpu_hours_left() == pytest.approx((25 * 90 + 1.15 * 110) / 3600)


def _study_with_costs(root: Path, study: studies.Study, complete: list[float], pruned: list[float]):
    s = optuna.create_study(
        study_name=study.name,
        direction="maximize",
        storage=f"sqlite:///{root / 'sweeps' / (study.name + '.db')}",
    )
    for seconds, state in [(c, TrialState.COMPLETE) for c in complete] + [
        (c, TrialState.PRUNED) for c in pruned
    ]:
        trial = s.ask()
        trial.set_user_attr("cpu_seconds", seconds)
        s.tell(trial, 0.1 if state == TrialState.COMPLETE else None, state=state)


def test_a_study_with_few_trials_is_priced_from_those_under_the_same_pruner(tmp_path):
    """A study whose only finished trial is its unpruned first one would price all the rest
    as complete trials: below OWN_COST_FROM trials it takes the share a finished trial costs
    of a complete one from the studies under the same pruner."""
    (tmp_path / "sweeps").mkdir()
    ran = studies.Study("srgnn", "yoochoose1_64")  # successive halving
    _study_with_costs(tmp_path, ran, complete=[100.0, 100.0], pruned=[25.0] * 4)
    new = studies.Study("sgnnhn", "diginetica_srgnn")  # successive halving too
    _study_with_costs(tmp_path, new, complete=[1000.0], pruned=[])
    other = studies.Study("sknn", "yoochoose1_64")  # no pruner: not in the pool
    _study_with_costs(tmp_path, other, complete=[10.0] * 5, pruned=[])
    rows = [studies.progress(s, tmp_path) for s in (ran, new, other)]
    assert studies.OWN_COST_FROM == 5
    # (2 x 100 + 4 x 25) / 6 = 50 s a finished trial, half a complete one
    assert rows[0].trial_share == 0.5 and rows[2].trial_share == 1.0
    assert rows[1].trial_share is None
    assert studies.trial_shares(rows) == {"successive_halving": 0.5, "none": 1.0}
    # 29 trials at half of 1000 s, and five seeds at 1.15 x 1000 s
    assert rows[1].cpu_hours_left(0.5) == pytest.approx((29 * 500 + 5 * 1150) / 3600)
    assert rows[1].cpu_hours_left() == pytest.approx((29 * 1000 + 5 * 1150) / 3600)
    # a study with its own trials keeps its own mean: 24 x 50 s and five seeds
    assert rows[0].cpu_hours_left(0.9) == pytest.approx((24 * 50 + 5 * 115) / 3600)
    lines = studies.status_lines(rows[1:2], pool=rows)
    left = (29 * 500 + 5 * 1150) / 3600
    assert f"| sgnnhn_diginetica_srgnn | 1 of 30 | 0 | 0 | 0.28 | {left:.2f}† | 0 |" in lines
    assert lines[-1].endswith("(successive_halving 0.50)")
    # without the pool, nothing to borrow: its own mean, no mark
    assert "| sgnnhn_diginetica_srgnn | 1 of 30 | 0 | 0 | 0.28 | 9.65 | 0 |" in (
        studies.status_lines(rows[1:2])
    )


def test_an_unknown_study_is_a_one_line_error(capsys):
    assert studies.main(["--only", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --only:") and "\n" not in err


@pytest.mark.parametrize("option", ["--threads", "--workers", "--probe"])
@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_a_count_below_one_is_refused_by_its_option(capsys, option, value):
    with pytest.raises(SystemExit) as e:
        studies.main([option, value, "--dry-run"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"argument {option}: got '{value}'; expected a positive integer")


def test_dry_run_lists_the_unfinished_studies(capsys, monkeypatch, tmp_path):
    """One command per study of the search that the committed storages do not hold done
    (whichever those are as the studies advance), none for a done one; a stop file
    written for the workers does not hide them."""
    monkeypatch.setattr(studies, "PROJECT_ROOT", tmp_path)
    (tmp_path / studies.STOP_FILE).parent.mkdir(parents=True)
    (tmp_path / studies.STOP_FILE).touch()
    search = [s for s in studies.all_studies() if s.search == "gru4rec_bpr-max"]
    assert len(search) == 2
    unfinished = [s for s in search if not studies.progress(s).done]
    assert studies.main(["--dry-run", "--only", "gru4rec_bpr-max"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == len(unfinished)
    for line, study in zip(out, unfinished):
        assert "hparams_search=gru4rec_bpr-max" in line and f"dataset={study.dataset} " in line


def test_a_probe_runs_few_trials_and_no_retraining(capsys):
    assert studies.main(["--dry-run", "--probe", "3", "--only", "gru4rec_bpr-max"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert all("hydra.sweeper.n_trials=3" in line and "final_seeds=0" in line for line in out)


def test_several_workers_run_the_trials_then_one_retraining_several_seeds_at_a_time():
    gru = studies.Study("gru4rec_bpr-max", "diginetica_srgnn")
    (n, trials), (one, retrain) = studies.plan(gru, workers=2, python="python")
    assert (n, one) == (2, 1)
    assert (
        trials == gru.command("python", retrain=False) and "hydra.sweeper.final_seeds=0" in trials
    )
    assert (
        "hydra.sweeper.final_now=true" in retrain and "hydra.sweeper.final_seeds=0" not in retrain
    )
    assert {
        "hydra/launcher=local_parallel",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
    } <= set(retrain)
    # a deterministic baseline has one seed to retrain: no parallel launcher for it
    (_, _), (_, knn) = studies.plan(studies.Study("sknn", "yoochoose1_64"), 2, python="python")
    assert "hydra.sweeper.final_now=true" in knn and "hydra/launcher=local_parallel" not in knn
    # BPR-MF's seed changes its initialisation and sampling: 5 seeds, retrained 2 at a time
    (_, _), (_, bpr) = studies.plan(studies.Study("bprmf", "yoochoose1_64"), 2, python="python")
    assert "hydra/launcher=local_parallel" in bpr and "hydra.launcher.n_jobs=2" in bpr
    # one worker: one process that retrains at its end; a probe never retrains
    assert studies.plan(gru, 1, python="python") == [(1, gru.command("python"))]
    assert studies.plan(gru, 2, probe=3, python="python") == [(2, gru.command("python", 3, False))]
    assert studies.plan(studies.Study("pop", "yoochoose1_64"), 2, python="python")[0][0] == 1


def test_the_retraining_waits_for_every_worker_and_not_after_a_failure(monkeypatch, tmp_path):
    monkeypatch.setattr(studies, "PROJECT_ROOT", tmp_path)  # no stop file of this checkout
    # as if not niced: under a niced pytest start_worker would take its autogroup path
    monkeypatch.setattr(studies.os, "nice", lambda increment: 0)
    started = []

    class Proc:
        def __init__(self, cmd, cwd, env):
            started.append((cmd, env["OMP_NUM_THREADS"]))
            self.cmd = cmd

        def wait(self):
            return fail if "final_now" not in " ".join(self.cmd) else 0

    monkeypatch.setattr(studies.subprocess, "Popen", Proc)
    gru = studies.Study("gru4rec_ce", "yoochoose1_64")
    fail = 0
    assert studies.run_study(gru, threads=1, workers=2) == 0
    assert [("final_now=true" in " ".join(c), t) for c, t in started] == [
        (False, "1"),
        (False, "1"),
        (True, "1"),
    ]
    started.clear()
    fail = 1
    assert studies.run_study(gru, threads=1, workers=2) == 1
    assert len(started) == 2  # no retraining after a worker failed


def test_stop_ends_the_workers_after_their_trial_and_a_new_start_continues(monkeypatch, tmp_path):
    monkeypatch.setattr(studies, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(studies.os, "nice", lambda increment: 0)  # as above
    monkeypatch.setattr(studies, "progress", lambda study: studies.Progress(study))  # none done
    stop = tmp_path / studies.STOP_FILE
    assert studies.main(["--stop"]) == 0 and stop.exists()
    started = []

    class Worker:
        def __init__(self, cmd, cwd, env):
            started.append(cmd)

        def wait(self):
            stop.touch()  # `--stop` while the workers run
            return 0

    monkeypatch.setattr(studies.subprocess, "Popen", Worker)
    # The start removed the old stop file (else nothing would run); the workers are told
    # of the file; once it is written, neither the retraining nor the next study starts.
    assert studies.main(["--only", "gru4rec_ce", "--workers", "2"]) == 0
    assert len(started) == 2
    assert all(f"hydra.sweeper.stop_file={studies.STOP_FILE}" in cmd for cmd in started)
    assert all("hydra.sweeper.final_now=true" not in cmd for cmd in started)


def test_stage_puts_the_headline_of_exactly_the_staged_storages_in_the_index(monkeypatch, tmp_path):
    """Workers go on writing after `--stage`: the headline it adds is regenerated from the
    staged storages, so the commit's tables agree with the commit's storages."""
    import subprocess

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    (tmp_path / "README.md").write_text("<!-- headline:start -->\n<!-- headline:end -->\n")
    (tmp_path / "sweeps").mkdir()
    db = tmp_path / "sweeps" / "sknn_yoochoose1_64.db"
    study = optuna.create_study(
        study_name="sknn_yoochoose1_64", storage=f"sqlite:///{db}", direction="maximize"
    )
    for value in (0.1, 0.2, 0.3):
        study.tell(study.ask(), value)  # no objective_metric recorded: named "objective"
    monkeypatch.setattr(studies, "PROJECT_ROOT", tmp_path)
    studies.stage_storages([db])
    study.tell(study.ask(), 0.4)  # a worker finishes a trial after the storage was staged
    assert studies.stage_headline() == 0
    staged = git("show", ":results/headline.md")
    assert (
        "- sknn_yoochoose1_64: 3 of ? trials finished, best validation objective 0.3000" in staged
    )
    assert "- sknn_yoochoose1_64: 3 of ? trials finished" in git("show", ":README.md")
    assert git("ls-files", "results/figures").split() == [
        "results/figures/study_sknn_yoochoose1_64_history.pdf",
        "results/figures/study_sknn_yoochoose1_64_history.png",
    ]
    assert len(study.trials) == 4  # while the working tree's storage holds the fourth


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="this kernel has no autogroup scheduling"
)
@pytest.mark.parametrize("niceness", [0, 7])
def test_a_niced_runner_nices_the_session_of_each_worker(niceness):
    """nice alone weighs only within a session: a niced runner's worker gets a session of its
    own whose autogroup carries the runner's nice value; an un-niced runner's stays in its
    session."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, os, sys; from bench import studies\n"
        "p = studies.start_worker([sys.executable, '-c', 'import time; time.sleep(2)'], "
        "dict(os.environ))\n"
        "own, worker = (open(f'/proc/{q}/autogroup').read() for q in ('self', p.pid))\n"
        "print(json.dumps([os.getsid(p.pid) == p.pid, own, worker]))\n"
        "p.wait()"
    )
    if not niceness and os.nice(0):
        pytest.skip("the tests themselves run niced: no un-niced runner to start")
    run = subprocess.run(
        ["nice", "-n", str(niceness), sys.executable, "-c", code], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    own_session, own, worker = json.loads(run.stdout)
    if niceness:  # own session, its autogroup niced like the runner
        assert own_session and worker != own
        assert worker.split()[-1] == str(min(19, os.nice(0) + niceness))
    else:  # the runner's own session and autogroup; a process that never left the
        # boot session reads its autogroup file as empty (seen in CI)
        assert not own_session and worker == own


def test_ctrl_c_reaches_the_workers_of_a_niced_runner(tmp_path):
    """Workers in sessions of their own miss the terminal's Ctrl+C: the runner passes it on
    and returns only when they have ended."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        # A suite started in the background (`make test &`) ignores SIGINT, and so would
        # the runner: it takes the default Ctrl+C handling, as from a terminal.
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from pathlib import Path\n"
        "from bench import studies\n"
        f"studies.PROJECT_ROOT = Path({str(tmp_path)!r})\n"  # no stop file of this checkout
        "studies.plan = lambda *a, **k: [(2, [sys.executable, '-c', "
        "'import time; time.sleep(120.25)'])]\n"
        "try:\n"
        "    studies.run_study(studies.Study('sknn', 'x'), 1, 2)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    runner = subprocess.Popen(
        ["nice", "-n", "5", sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    assert runner.stdout.readline().startswith("== sknn_x")  # the workers are starting
    time.sleep(1)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=60)
    assert out.splitlines()[-1] == "interrupted"
    left = subprocess.run(["pgrep", "-f", "time.sleep.120.25"], capture_output=True, text=True)
    assert left.stdout == ""  # no worker outlived its runner


def test_ctrl_c_while_workers_start_ends_those_already_started(monkeypatch, tmp_path):
    """Ctrl+C between two workers' starts: the one already running is passed it too."""
    import subprocess
    import sys

    monkeypatch.setattr(studies, "PROJECT_ROOT", tmp_path)  # no stop file of this checkout

    worker = [
        sys.executable,
        "-c",
        "import signal, time; "
        "signal.signal(signal.SIGINT, signal.default_int_handler); time.sleep(120.5)",
    ]
    started = []

    def start(cmd, env):
        if started:
            raise KeyboardInterrupt
        started.append(subprocess.Popen(cmd, env=env))
        return started[-1]

    monkeypatch.setattr(studies, "plan", lambda *a, **k: [(2, worker)])
    monkeypatch.setattr(studies, "start_worker", start)
    try:
        with pytest.raises(KeyboardInterrupt):
            studies.run_study(studies.Study("sknn", "x"), 1, 2)
        assert started[0].poll() is not None  # ended, not left running
    finally:
        started[0].kill()


def test_sigterm_reaches_the_workers_and_the_runner_exits_143(tmp_path):
    """A scheduler's SIGTERM to the runner: every worker (in a session of its own) is told,
    the runner waits for them and ends with one line and status 143."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bench import studies\n"
        f"studies.PROJECT_ROOT = Path({str(tmp_path)!r})\n"
        "studies.progress = lambda study: studies.Progress(study)\n"
        "studies.plan = lambda *a, **k: [(2, [sys.executable, '-c', "
        "'import time; time.sleep(120.75)'])]\n"
        "sys.exit(studies.main(['--only', 'sknn_yoochoose1_64', '--workers', '2']))\n"
    )
    runner = subprocess.Popen(
        ["nice", "-n", "5", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout.readline().startswith("== sknn_yoochoose1_64")
    time.sleep(1)
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 143
    assert err.strip().splitlines() == [
        "interrupted: the workers stopped, each trial in flight queued again; the same "
        "command continues the studies"
    ]
    left = subprocess.run(["pgrep", "-f", "time.sleep.120.75"], capture_output=True, text=True)
    assert left.stdout == ""
