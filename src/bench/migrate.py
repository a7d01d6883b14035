"""`python -m bench.migrate STORAGE...`: bring committed study storages to today's records.

Studies keep their final retrainings as records (user attribute `final`) and each trial
the path of its record. Older storages hold schema-1 records with absolute paths of the
machine that ran them; this rewrites them as schema-2 records (bench.records.RunRecord)
with portable paths, in place and idempotently. Trials, parameters and values are not
touched, so a migrated study resumes exactly where it stopped.
"""

from __future__ import annotations

import argparse
import sys

import optuna

from bench.errors import first_line
from bench.optuna_adapter import set_finished_trial_attr, trial_id
from bench.paths import portable_path, portable_storage, portable_text
from bench.records import RunRecord
from bench.study import PARAMS_ATTR, unreadable_storage


def migrate_study(storage: optuna.storages.BaseStorage, name: str) -> int:
    """Rewrite one study's records and paths; returns how many attributes changed."""
    study = optuna.load_study(study_name=name, storage=storage)
    changed = 0
    final = study.user_attrs.get("final")
    if final:
        records = []
        for raw in final.get("records", []):
            record = RunRecord.from_dict(raw).to_dict()
            record.pop("epochs", None)  # the study keeps the summary, not the curves
            record["record_path"] = portable_path(raw.get("record_path"))
            record["overrides"] = [portable_text(o) for o in record["overrides"]]
            records.append(record)
        new = {**final, "records": records}
        if new != final:
            study.set_user_attr("final", new)
            changed += 1
    if PARAMS_ATTR not in study.user_attrs:
        # Schema-1 runs applied the official paramfile of the pair whenever one existed.
        records = (final or {}).get("records") or []
        source = RunRecord.from_dict(records[0]).params if records else "default"
        study.set_user_attr(PARAMS_ATTR, source)
        changed += 1
    for trial in study.get_trials(deepcopy=False):
        path = trial.user_attrs.get("record")
        if path and portable_path(path) != path:
            tid = trial_id(storage, name, trial.number)
            set_finished_trial_attr(storage, tid, "record", portable_path(path))
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.migrate", description=__doc__.splitlines()[0])
    p.add_argument("storages", nargs="+", help="sqlite:///sweeps/x.db URLs or sweeps/x.db paths")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for arg in args.storages:
        url = arg if "://" in arg else f"sqlite:///{arg}"
        if problem := unreadable_storage(url):
            print(f"error: {arg}: {problem}", file=sys.stderr)
            return 2
        try:
            storage = optuna.storages.RDBStorage(url)
            summaries = optuna.get_all_study_summaries(storage)
        except Exception as e:  # a storage URL that cannot be opened
            print(f"error: {arg}: cannot open ({first_line(e)})", file=sys.stderr)
            return 2
        if not summaries:
            print(f"error: {arg}: holds no study", file=sys.stderr)
            return 2
        for summary in summaries:
            n = migrate_study(storage, summary.study_name)
            print(f"{portable_storage(url)} {summary.study_name}: {n} attributes rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
