"""Committed study storages: migrated to schema-2 records with no machine path, and still
resumable. `bench.migrate` writes a finished trial's attribute through Optuna's RDB schema
(Optuna refuses to change finished trials): pinned here."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from sqlalchemy import text

from bench.migrate import main as migrate_main
from bench.optuna_adapter import set_finished_trial_attr
from bench.records import SCHEMA_VERSION, RunRecord

SWEEPS = Path(__file__).parents[1] / "sweeps"
ABSOLUTE = ("/work/", "/home/", "/root/", "/tmp/", "/Users/")


def stored_texts(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT value_json FROM study_user_attributes UNION ALL "
            "SELECT value_json FROM trial_user_attributes UNION ALL "
            "SELECT value_json FROM study_system_attributes UNION ALL "
            "SELECT value_json FROM trial_system_attributes"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("db", sorted(SWEEPS.glob("*.db")), ids=lambda p: p.stem)
def test_committed_storages_hold_schema_2_or_later_records_and_no_machine_path(db):
    texts = stored_texts(db)
    assert not [t for t in texts if any(a in t for a in ABSOLUTE)]
    study = optuna.load_study(study_name=db.stem, storage=f"sqlite:///{db}")
    assert study.user_attrs["params"] in ("default", "official")
    for raw in (study.user_attrs.get("final") or {}).get("records", []):
        # Schema 3 only counts epochs from 1: a schema-2 record reads with nothing lost.
        assert raw["schema_version"] in (2, SCHEMA_VERSION)
        rec = RunRecord.from_dict(raw).to_dict()
        assert rec["schema_version"] == SCHEMA_VERSION
        renumbered = ("epochs", "best_epoch", "schema_version")
        assert all(raw[k] == v for k, v in rec.items() if k not in renumbered and k in raw)
        # Fields added to schema 2 since (best_epoch, resumed_from) are optional: None.
        assert all(v is None for k, v in rec.items() if k not in raw and k != "epochs")


def test_migration_is_idempotent_and_leaves_trials_alone(tmp_path, capsys):
    db = tmp_path / "sr.db"
    shutil.copy(SWEEPS / "sr_yoochoose1_64.db", db)
    url = f"sqlite:///{db}"
    before = optuna.load_study(study_name="sr_yoochoose1_64", storage=url).trials
    assert migrate_main([str(db)]) == 0
    assert migrate_main([str(db)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(": 0 attributes rewritten")
    after = optuna.load_study(study_name="sr_yoochoose1_64", storage=url).trials
    assert [(t.params, t.values, t.state) for t in after] == [
        (t.params, t.values, t.state) for t in before
    ]


def test_finished_trial_attribute_is_rewritten_in_place(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    study = optuna.create_study(study_name="x", storage=storage)
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    tid = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("x"), 0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # why the adapter exists
        storage.set_trial_user_attr(tid, "record", "x")
    with pytest.raises(RuntimeError, match="not found"):
        set_finished_trial_attr(storage, tid, "record", "runs/r.json")
    # An attribute that exists is rewritten and read back through Optuna.
    with storage.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (:t, "
                "'record', '\"/abs/r.json\"')"
            ),
            {"t": tid},
        )
    set_finished_trial_attr(storage, tid, "record", "runs/r.json")
    assert (
        optuna.load_study(study_name="x", storage=storage).trials[0].user_attrs["record"]
        == "runs/r.json"
    )


def test_unreadable_storage_is_one_line(tmp_path, capsys):
    assert migrate_main(["postgresql://root@127.0.0.1:5999/nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "error: postgresql://root@127.0.0.1:5999/nope: cannot open"
    )


def test_a_missing_or_empty_storage_is_one_line_and_no_file_is_made(tmp_path, capsys):
    missing = tmp_path / "typo.db"
    assert migrate_main([str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such file"
    assert not missing.exists()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(empty)  # the schema, no study
    assert migrate_main([empty]) == 2
    assert capsys.readouterr().err.strip() == f"error: {empty}: holds no study"


def test_a_database_that_is_not_a_study_storage_is_refused_and_left_as_it_was(tmp_path, capsys):
    """Optuna would add its tables to any database it opens: the wrong file must stay as it was."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("create table sessions (id integer)")
    before = other.read_bytes()
    assert migrate_main([str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {other}: not a study storage (no Optuna tables in it)"
    assert other.read_bytes() == before


@pytest.mark.real_data
def test_a_committed_study_resumes_after_migration(shared_data, tmp_path):
    """One more SR trial on the committed (migrated) yoochoose1/64 study, the same command
    as before the redesign: the count goes on from 200 and the params source is kept."""
    db = tmp_path / "sr.db"
    shutil.copy(SWEEPS / "sr_yoochoose1_64.db", db)
    url = f"sqlite:///{db}"
    n = len(optuna.load_study(study_name="sr_yoochoose1_64", storage=url).trials)
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "-m",
        "hparams_search=sr",
        "dataset=yoochoose1_64",
        f"hydra.sweeper.storage={url}",
        "hydra.sweeper.n_trials=201",
        "hydra.sweeper.final_seeds=0",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "eval.unknown_test_items=miss",
        "eval.also_tie_modes=[standard]",
        "save_model=false",
    ]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    study = optuna.load_study(study_name="sr_yoochoose1_64", storage=url)
    assert len(study.trials) == n + 1 and study.trials[-1].state.is_finished()
    record_path = study.trials[-1].user_attrs["record"]
    assert not record_path.startswith("/") or record_path.startswith(str(tmp_path))
    # Started from params=default: continuing with params=official is refused in one line.
    p = subprocess.run(
        [*cmd[:-1], "params=official"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert p.returncode != 0
    assert "error: params: study sr_yoochoose1_64 was started with params=default" in p.stderr
    assert "Traceback" not in p.stderr
