"""Which pruner setting would have kept the best trials of the committed GRU4Rec studies?

Replays every trial of each study in `sweeps/` (in trial order, as one worker would) through
candidate pruners, feeding the per-epoch validation values the trial really reported. A
complete trial has its whole curve; a trial that was pruned in the real study only has
the epochs it ran, so when a candidate would have let it go further the rest is unknown:
it is counted as stopped where it really stopped (the epochs it cost are a lower bound).
Written to benchmarks/results/pruner_replay.json: per pruner and study, whether the best
complete trials and the enqueued (official) trial survive, and the epochs spent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_report  # noqa: E402

# Built as the studies build them (bench.study.make_pruner); a trial reports after epoch e
# at step e - 1, so "first judged after epoch N" is what each setting means in training.
CANDIDATES = {
    "median, first judged after epoch 1 (the old default)": ("median", {"warmup_epochs": 0}),
    "median, first judged after epoch 2": ("median", {"warmup_epochs": 1}),
    "median, first judged after epoch 3": ("median", {"warmup_epochs": 2}),
    "successive halving, first judged after epoch 2, reduction 3 (the studies' setting)": (
        "successive_halving",
        {"min_epochs": 2},
    ),
    "successive halving, first judged after epoch 3, reduction 3": (
        "successive_halving",
        {"min_epochs": 3},
    ),
    "successive halving, first judged after epoch 4, reduction 3": (
        "successive_halving",
        {"min_epochs": 4},
    ),
    "hyperband, first judged after epoch 2, max 10 epochs, reduction 3": (
        "hyperband",
        {"min_epochs": 2},
    ),
    "hyperband, first judged after epoch 3, max 10 epochs, reduction 3": (
        "hyperband",
        {"min_epochs": 3},
    ),
}


def make(name: str, kwargs: dict):
    from bench.study import make_pruner

    return make_pruner(name, startup_trials=3, reduction=3, n_epochs=10, **kwargs)


def replay(history: list[optuna.trial.FrozenTrial], pruner) -> tuple[dict[int, int], set[int]]:
    """(trial number -> epochs it would have run, the trials this pruner cuts)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    spent, cut = {}, set()
    for past in history:
        trial = study.ask()
        # Steps as reported (0-based epochs); trials run under successive halving report
        # only at its rungs and after their last epoch.
        values = sorted(past.intermediate_values.items())
        stopped = None
        for step, value in values:
            trial.report(value, step)
            if "enqueued" not in past.user_attrs and trial.should_prune():
                stopped = step + 1
                break
        if stopped is not None or past.state != TrialState.COMPLETE:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, past.value)
        spent[past.number] = stopped or values[-1][0] + 1
        if stopped is not None:
            cut.add(past.number)
    return spent, cut


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=Path, default=HERE.parent / "sweeps")
    ap.add_argument("--top", type=int, default=3, help="best complete trials that must survive")
    ap.add_argument("--out", default=str(HERE / "results" / "pruner_replay.json"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for db in sorted(args.sweeps.glob("gru4rec_*.db")):
        study = optuna.load_study(study_name=db.stem, storage=f"sqlite:///{db}")
        history = [t for t in study.trials if t.intermediate_values]  # failed-at-start excluded
        complete = [t for t in history if t.state == TrialState.COMPLETE]
        best = [t.number for t in sorted(complete, key=lambda t: -t.value)[: args.top]]
        enqueued = [t.number for t in history if "enqueued" in t.user_attrs]
        for name, (kind, kwargs) in CANDIDATES.items():
            spent, cut = replay(history, make(kind, kwargs))
            full = {t.number: max(t.intermediate_values) + 1 for t in history}
            rows.append(
                {
                    "study": db.stem,
                    "pruner": name,
                    "trials": len(history),
                    "best_trials": best,
                    "best_kept": [n for n in best if n not in cut],
                    "enqueued_kept": not set(enqueued) & cut,
                    "epochs_spent": sum(spent.values()),
                    "epochs_without_pruning_at_least": sum(full.values()),
                    "pruned": len(cut),
                    # Stopped in the real study, but this pruner lets them past their last
                    # known epoch (their cost here is a lower bound):
                    "continued_past_known": sum(
                        t.number not in cut for t in history if t.state != TrialState.COMPLETE
                    ),
                }
            )
            r = rows[-1]
            print(
                f"{db.stem:30s} {name:70s} best kept {r['best_kept']} of {best}, "
                f"epochs >= {r['epochs_spent']} (cut {r['pruned']}, "
                f"{r['continued_past_known']} go on past their known epochs)"
            )
    write_report(args.out, "pruner_replay", {"top": args.top, "rows": rows})


if __name__ == "__main__":
    main()
