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

CANDIDATES = {
    "median, no warm-up (the old default)": lambda: optuna.pruners.MedianPruner(3, 0),
    "median, warm-up 2 epochs": lambda: optuna.pruners.MedianPruner(3, 2),
    "median, warm-up 3 epochs": lambda: optuna.pruners.MedianPruner(3, 3),
    "successive halving, min 1 epoch, reduction 3": lambda: optuna.pruners.SuccessiveHalvingPruner(1, 3),
    "successive halving, min 2 epochs, reduction 3": lambda: optuna.pruners.SuccessiveHalvingPruner(2, 3),
    "successive halving, min 3 epochs, reduction 3": lambda: optuna.pruners.SuccessiveHalvingPruner(3, 3),
    "hyperband, min 1 epoch, max 10, reduction 3": lambda: optuna.pruners.HyperbandPruner(1, 10, 3),
    "hyperband, min 2 epochs, max 10, reduction 3": lambda: optuna.pruners.HyperbandPruner(2, 10, 3),
}  # fmt: skip


def replay(history: list[optuna.trial.FrozenTrial], pruner) -> tuple[dict[int, int], set[int]]:
    """(trial number -> epochs it would have run, the trials this pruner cuts)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    spent, cut = {}, set()
    for past in history:
        trial = study.ask()
        values = [past.intermediate_values[k] for k in sorted(past.intermediate_values)]
        stopped = None
        for step, value in enumerate(values):
            trial.report(value, step)
            if "enqueued" not in past.user_attrs and trial.should_prune():
                stopped = step + 1
                break
        if stopped is not None or past.state != TrialState.COMPLETE:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, past.value)
        spent[past.number] = stopped or len(values)
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
        for name, make in CANDIDATES.items():
            spent, cut = replay(history, make())
            full = {t.number: len(t.intermediate_values) for t in history}
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
            print(f"{db.stem:30s} {name:48s} best kept {r['best_kept']} of {best}, "
                  f"epochs >= {r['epochs_spent']} (cut {r['pruned']}, "
                  f"{r['continued_past_known']} go on past their known epochs)")  # fmt: skip
    write_report(args.out, "pruner_replay", {"top": args.top, "rows": rows})


if __name__ == "__main__":
    main()
