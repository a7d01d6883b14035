"""`python -m bench.studies`: the headline studies, started or continued in the background.

One command runs every study of the headline protocol (conf/hparams_search, both SR-GNN
splits) in a fixed order until it holds the common budget of finished trials and its
final retraining, continuing each where its storage in `sweeps/` stopped; `--status`
prints, per study, the trials finished and pruned, the CPU-hours spent and the estimate
to finish (what the progress notes report). Meant to run niced beside other work:

    nice -n 19 python -m bench.studies --threads 1            # beside other work
    python -m bench.studies --threads 1 --workers 2           # machine otherwise idle
    python -m bench.studies --probe 3         # each study to 3 trials: measured costs
    python -m bench.studies --status
    python -m bench.studies --stage      # git add the storages and their headline (workers may run)
    python -m bench.studies --stop       # workers end after their trial in progress

Each study is its own `bench.run -m hparams_search=...` process (so code changed since
the previous study is picked up), with the torch/OpenMP thread count fixed by environment.
With `--workers N` every tuned study runs N such processes on its storage, each with
`--threads` threads, then retrains its best trial N seeds at a time in one process (joblib
launcher), so that no seed is trained twice. On 2 cores two one-thread workers train
more events per second together than one worker with both threads, GRU4Rec included
(`benchmarks/worker_layout.py`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.paths import PROJECT_ROOT
from bench.protocol import BUDGET, SEARCHES, SPLITS, UNTUNED, final_seeds, pruner

# While this file exists (`--stop`), no study starts a new trial or seed: each worker
# ends after its trial in progress, and the next start (which removes it) continues.
STOP_FILE = "results/raw/studies.stop"
# Every headline study is scored SR-GNN-comparably (predictions lost to items unknown to
# training count as misses) and keeps the standard-ties metrics too.
EVAL = ["eval.unknown_test_items=miss", "eval.also_tie_modes=[standard]"]
# GRU4Rec studies start from the official paramfile of the pair (params=official).
EXTRA = {"gru4rec_ce": ["params=official"], "gru4rec_bpr-max": ["params=official"]}
# The final retraining trains on all of train, train_tr plus the validation part.
FINAL_TRAIN_FACTOR = 1.15
# Below this many finished trials a study's own mean cost is mostly its first trial (the
# published settings, enqueued, which the pruner never judges): the rest of its trials
# are priced from the studies under the same pruner that have run this many.
OWN_COST_FROM = 5


@dataclass
class Study:
    search: str
    dataset: str

    @property
    def name(self) -> str:
        return f"{self.search}_{self.dataset}"

    @property
    def storage(self) -> str:
        return f"sqlite:///sweeps/{self.name}.db"

    @property
    def budget(self) -> int:
        return 1 if self.search in UNTUNED else BUDGET

    def command(
        self, python: str = sys.executable, probe: int | None = None, retrain: bool = True
    ) -> list[str]:
        """The study's command: its trials up to the budget, then the final retraining;
        with `probe`, only up to that many finished trials and no retraining (to measure
        every study's cost before running any to the end); `retrain=False`: no retraining
        (one of several workers)."""
        trials = self.budget if probe is None else min(probe, self.budget)
        return [
            python,
            "-m",
            "bench.run",
            "-m",
            f"hparams_search={self.search}",
            f"dataset={self.dataset}",
            f"hydra.sweeper.storage={self.storage}",
            *EXTRA.get(self.search, []),
            *EVAL,
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.budget={self.budget}",
            "save_model=false",
            f"hydra.sweeper.stop_file={STOP_FILE}",
            *(["hydra.sweeper.final_seeds=0"] if probe is not None or not retrain else []),
        ]

    def retrain_command(self, python: str = sys.executable, width: int = 1) -> list[str]:
        """Only the final retraining of the best trial within the budget, `width` seeds at
        a time (parallel processes of the joblib launcher)."""
        parallel = (
            [
                "hydra/launcher=local_parallel",
                f"hydra.launcher.n_jobs={width}",
                f"hydra.sweeper.n_jobs={width}",
            ]
            if width > 1
            else []
        )
        return [*self.command(python), "hydra.sweeper.final_now=true", *parallel]


def all_studies() -> list[Study]:
    return [Study(s, ds) for s in SEARCHES for ds in SPLITS]


@dataclass
class Progress:
    """Where one study stands: trials, cost, and what is left."""

    study: Study
    finished: int = 0
    pruned: int = 0
    failed: int = 0
    cpu_seconds: float = 0.0
    cpu_estimated: bool = False  # some trials predate the cpu_seconds attribute
    complete_cpu: float | None = None  # mean CPU seconds of a complete (unpruned) trial
    per_trial_cpu: float | None = None  # mean CPU seconds of a finished trial run on CPU
    final_seeds: int = 0
    started: bool = False

    @property
    def done(self) -> bool:
        want = final_seeds(self.study.search)
        return self.finished >= self.study.budget and self.final_seeds >= want

    @property
    def own_cost(self) -> bool:
        """Whether enough trials finished for the study's own mean cost per trial to hold."""
        return self.finished >= OWN_COST_FROM

    @property
    def needs_share(self) -> bool:
        """Whether trials are still to run with too few finished to price them by."""
        return not self.own_cost and bool(self.complete_cpu) and self.finished < self.study.budget

    @property
    def trial_share(self) -> float | None:
        """A finished trial's mean cost as a share of a complete one's: what pruning saves."""
        if not (self.own_cost and self.per_trial_cpu and self.complete_cpu):
            return None
        return self.per_trial_cpu / self.complete_cpu

    def cpu_hours_left(self, share: float | None = None) -> float | None:
        """Trials still to run at this study's mean cost per finished trial, plus the final
        retraining: per seed, a complete trial's mean cost on the larger training split
        (train is 1/(1 - valid fraction), about 1.15x train_tr); None before any trial.
        Before OWN_COST_FROM trials, `share` (the trial_share of the studies under the same
        pruner) prices a trial from this study's complete ones. Costs are of the trials run
        on CPU where there are any (a GPU trial's CPU seconds are only its host process's)."""
        if not self.finished:
            return None
        per_trial = self.per_trial_cpu or self.cpu_seconds / self.finished
        if share is not None and self.needs_share:
            per_trial = share * self.complete_cpu
        left = max(0, self.study.budget - self.finished) * per_trial
        want = final_seeds(self.study.search)
        per_seed = FINAL_TRAIN_FACTOR * (self.complete_cpu or per_trial)
        left += max(0, want - self.final_seeds) * per_seed
        return left / 3600


def progress(study: Study, root: Path = PROJECT_ROOT) -> Progress:
    import optuna
    from optuna.trial import TrialState

    from bench.records import RANKS_KEY
    from bench.study import best_within_budget, study_cost

    out = Progress(study)
    path = root / "sweeps" / f"{study.name}.db"
    if not path.is_file():
        return out
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        s = optuna.load_study(study_name=study.name, storage=f"sqlite:///{path}")
    except KeyError:
        return out
    out.started = True
    cost = study_cost(s, study.budget)
    out.finished, out.pruned, out.cpu_seconds = cost.finished, cost.pruned, cost.cpu_seconds
    out.cpu_estimated, out.complete_cpu = cost.cpu_estimated, cost.complete_cpu
    out.per_trial_cpu = cost.per_trial_cpu
    out.failed = len(s.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    final = s.user_attrs.get("final") or {}
    # A retraining counts when it is of the best trial within the budget, at the budget,
    # and carries the per-event ranks that the significance test needs (records migrated
    # from before the ranks were kept have the key with no value).
    best = best_within_budget(s, study.budget)
    records = final.get("records", [])
    if (
        best is not None
        and final.get("best_trial") == best.number
        and final.get("n_trials", 0) >= out.finished
        and all(r.get(RANKS_KEY) for r in records)
    ):
        out.final_seeds = len(records)
    return out


def trial_shares(rows: list[Progress]) -> dict[str | None, float]:
    """Per pruner, the mean trial_share of the studies under it that have their own."""
    shares: dict[str | None, list[float]] = {}
    for p in rows:
        if p.trial_share is not None:
            shares.setdefault(pruner(p.study.search), []).append(p.trial_share)
    return {k: sum(v) / len(v) for k, v in shares.items()}


def status_lines(rows: list[Progress], pool: list[Progress] | None = None) -> list[str]:
    """The progress table; `pool` (default: `rows`) gives the per-pruner trial shares that
    price the trials of a study with too few of its own."""
    shares = trial_shares(rows if pool is None else pool)
    lines = [
        "| Study | Finished (of budget) | Pruned | Failed | CPU-h spent | CPU-h to finish | "
        "Final seeds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total_spent, total_left, unknown, borrowed = 0.0, 0.0, [], {}
    for p in rows:
        kind = pruner(p.study.search)
        share = shares.get(kind) if p.needs_share else None
        if share is not None:
            borrowed[kind] = share
        left = p.cpu_hours_left(share)
        spent = p.cpu_seconds / 3600
        total_spent += spent
        if left is None and not p.done:
            unknown.append(p.study.name)
        total_left += left or 0.0
        lines.append(
            f"| {p.study.name} | {p.finished} of {p.study.budget} | {p.pruned} | {p.failed} | "
            f"{spent:.2f}{'*' if p.cpu_estimated else ''} | "
            f"{'–' if left is None else f'{left:.2f}'}{'†' if share is not None else ''} | "
            f"{p.final_seeds} |"
        )
    lines.append(
        f"\nTotal: {total_spent:.1f} CPU-hours spent, {total_left:.1f} to finish"
        + (
            f" (not counting {len(unknown)} {'study' if len(unknown) == 1 else 'studies'} "
            "without a trial yet)"
            if unknown
            else ""
        )
    )
    if any(p.cpu_estimated for p in rows):
        lines.append("* includes trials run before CPU time was recorded: wall time x 2 threads")
    if borrowed:
        lines.append(
            f"† fewer than {OWN_COST_FROM} finished trials: each trial still to run is priced "
            "at this study's complete trial times the mean share a finished trial costs of "
            "a complete one in the studies under the same pruner ("
            + ", ".join(f"{k or 'default'} {v:.2f}" for k, v in sorted(borrowed.items(), key=str))
            + ")"
        )
    return lines


def stage_storages(paths: list[Path]) -> None:
    """`git add` the storages while holding SQLite's shared lock on each, so that a worker
    writing beside it never leaves a half-written page in the commit (it waits instead)."""
    import contextlib
    import sqlite3

    with contextlib.ExitStack() as stack:
        for path in paths:
            con = stack.enter_context(contextlib.closing(sqlite3.connect(path, timeout=60)))
            con.execute("BEGIN")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # shared lock held
            stack.callback(con.rollback)
        subprocess.run(["git", "add", "-f", *map(str, paths)], cwd=PROJECT_ROOT, check=True)


def stage_headline() -> int:
    """Regenerate the headline (tables, figures, README block) from exactly the storages
    in git's index, not from the files the workers go on writing, and `git add` it: a
    commit of the two then agrees, as `make headline` on a fresh clone checks."""
    import tempfile

    from bench.report.headline import main as headline_main

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, check=True, capture_output=True)

    staged = git("ls-files", "--", "sweeps/*.db").stdout.decode().split()
    with tempfile.TemporaryDirectory() as tmp:
        storages = []
        for name in staged:
            copy = Path(tmp) / Path(name).name
            copy.write_bytes(git("show", f":{name}").stdout)
            storages += ["--storage", f"sqlite:///{copy}"]
        out = PROJECT_ROOT / "results"
        code = headline_main(
            [*storages, "--out", str(out), "--readme", str(PROJECT_ROOT / "README.md")]
        )
    if code == 0:
        figures = sorted(
            str(f.relative_to(PROJECT_ROOT)) for f in (out / "figures").glob("study_*")
        )
        git("add", "results/headline.md", "results/headline.tex", "README.md", *figures)
    return code


def plan(study: Study, workers: int, probe: int | None = None, python: str = sys.executable):
    """The study's processes in order, as (how many at once, command): one process that
    also retrains at the end, or `workers` processes for the trials and then one that
    retrains `workers` seeds at a time (each worker retraining on its own would train
    every seed `workers` times)."""
    n = workers if study.search not in UNTUNED else 1
    if n == 1:
        return [(1, study.command(python, probe))]
    steps = [(n, study.command(python, probe, retrain=False))]
    if probe is None:
        width = min(n, final_seeds(study.search))
        if width > 1 and importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
            print(
                "note: hydra-joblib-launcher is not installed (pip install -e '.[launchers]'): "
                "the final seeds are retrained one at a time",
                file=sys.stderr,
            )
            width = 1
        steps.append((1, study.retrain_command(python, width)))
    return steps


def run_study(study: Study, threads: int, workers: int, probe: int | None = None) -> int:
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    for n, cmd in plan(study, workers, probe):
        if stop_requested():
            break
        print(f"== {study.name}: {n} process(es), {threads} thread(s) each", flush=True)
        procs: list[subprocess.Popen] = []
        try:
            for _ in range(n):
                procs.append(start_worker(cmd, env))
            returncode = max(p.wait() for p in procs)
        except KeyboardInterrupt:  # Ctrl+C or SIGTERM (see main), which workers in their
            # own sessions miss: each is told to stop (its trial in flight is queued again)
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait()
            raise
        if returncode != 0:
            return returncode
    return 0


def start_worker(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """One worker process. Under autogroup scheduling (sched(7); on by default in many
    kernels) a nice value weighs only against processes of the same session, so a niced
    worker still took an equal share of the cores from the user's terminal (seen with top
    on this 2-core machine: two nice-19 GRU4Rec workers of one session got 33% of a core each
    beside two nice-19 processes with a session each, which got 65%). A niced runner
    therefore starts each worker in a session of its own and gives that session's autogroup
    the runner's nice value."""
    niceness = os.nice(0)
    if niceness <= 0 or not Path("/proc/self/autogroup").exists():
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env)
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        Path(f"/proc/{proc.pid}/autogroup").write_text(str(niceness))
    except OSError as e:
        print(f"note: the worker's autogroup kept its nice value ({e})", file=sys.stderr)
    return proc


def stop_requested() -> bool:
    return (PROJECT_ROOT / STOP_FILE).exists()


def positive_int(text: str) -> int:
    """argparse's type for counts: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a positive integer")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.studies", description=__doc__.split("\n")[0])
    p.add_argument(
        "--status", action="store_true", help="print progress and the estimate; run nothing"
    )
    p.add_argument(
        "--only", nargs="*", default=[], help="study names or searches to run (default: all)"
    )
    p.add_argument(
        "--threads", type=positive_int, default=1, help="torch/OpenMP threads per worker"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="workers per tuned study (and seeds retrained at a time)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument(
        "--probe",
        type=positive_int,
        metavar="N",
        help="run each study only to N finished trials, without retraining: "
        "every study's cost measured early, for the estimate",
    )
    p.add_argument(
        "--stop",
        action="store_true",
        help="let the running workers end after their trial in progress; run nothing",
    )
    p.add_argument(
        "--stage",
        action="store_true",
        help="git add the studies' storages consistently (workers may run) and the "
        "headline regenerated from exactly them; run nothing",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.status and not (PROJECT_ROOT / "sweeps").is_dir():
        print(
            f"error: no sweeps/ folder in {PROJECT_ROOT}: the headline studies live in the "
            "project's sweeps/; run this from the checkout (an installed, non-editable copy "
            "takes the current directory as the project) or install it with pip install -e .",
            file=sys.stderr,
        )
        return 2
    studies = [
        s for s in all_studies() if not args.only or s.name in args.only or s.search in args.only
    ]
    if not studies:
        print(
            f"error: --only: none of {args.only} is a headline study or search; "
            f"expected names like {all_studies()[0].name} or searches {', '.join(SEARCHES)}",
            file=sys.stderr,
        )
        return 2
    if args.stage:
        paths = [PROJECT_ROOT / "sweeps" / f"{s.name}.db" for s in studies]
        stage_storages([p for p in paths if p.is_file()])
        return stage_headline()
    if args.status:
        every = [progress(s) for s in all_studies()]
        chosen = [p for p in every if p.study in studies]
        print("\n".join(status_lines(chosen, pool=every)))
        return 0
    stop = PROJECT_ROOT / STOP_FILE
    if args.stop:
        stop.parent.mkdir(parents=True, exist_ok=True)
        stop.touch()
        print(
            f"{STOP_FILE} written: every worker ends after its trial in progress (no trial "
            "is lost); `python -m bench.studies` continues the studies later"
        )
        return 0
    if not args.dry_run:
        stop.unlink(missing_ok=True)  # a new start continues
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        failures = run_all(studies, args)
    except KeyboardInterrupt:
        print(
            "interrupted: the workers stopped, each trial in flight queued again; the same "
            "command continues the studies",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failures:
        print(f"error: studies that stopped with an error: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum, frame):
    """SIGTERM (a scheduler, `timeout`, `kill`) takes Ctrl+C's path through run_study."""
    raise KeyboardInterrupt


def run_all(studies: list[Study], args) -> list[str]:
    """Each unfinished study in turn; the names of those that ended with an error."""
    failures = []
    for study in studies:
        if stop_requested() and not args.dry_run:
            print(f"stopped ({STOP_FILE}); the same command continues", flush=True)
            break
        state = progress(study)
        if state.done or (
            args.probe is not None and state.finished >= min(args.probe, study.budget)
        ):
            continue
        if args.dry_run:
            for n, cmd in plan(study, args.workers, args.probe, "python"):
                print(f"{n} x " * (n > 1) + " ".join(cmd))
            continue
        if run_study(study, args.threads, args.workers, args.probe) != 0:
            failures.append(study.name)  # the next study goes on; the storage keeps the rest
    return failures


if __name__ == "__main__":
    sys.exit(main())
