"""The typed run record: schema-1 records (every knob of session-parallel GRU4Rec for every
method, absolute paths) load as records holding what the method used; schema-2 records
(epochs counted from 0) load with epochs counted from 1, as the console counts."""

import json

import pytest

from bench.paths import PROJECT_ROOT
from bench.records import SCHEMA_VERSION, RunRecord

V1_COMMON = {
    "protocol": {"tie_mode": "conservative", "evaluated_events": 10},
    "metrics": {"recall@20": 0.5},
    "seed": 0,
    "study": {"name": "s", "storage": f"sqlite:///{PROJECT_ROOT}/sweeps/s.db", "phase": "final"},
    "overrides": [f"study.storage='sqlite:///{PROJECT_ROOT}/sweeps/s.db'", "seed=0"],
}
SESSION_PARALLEL_KNOBS = {
    "layers": [64],
    "loss": "ce",
    "batch_size": 64,
    "dropout_p_embed": 0.0,
    "dropout_p_hidden": 0.1,
    "learning_rate": 0.05,
    "momentum": 0.0,
    "sample_alpha": 0.5,
    "n_sample": 2048,
    "embedding": 0,
    "constrained_embedding": True,
    "n_epochs": 10,
    "bpreg": 1.0,
    "elu_param": 0.5,
    "logq": 1.0,
    "sample_store_size": 10000000,
    "optimizer": "adagrad_m",
}


def v1(method, dataset, **extra):
    return {
        "method": method,
        "kind": "baseline" if method not in ("gru4rec", "gru4rec_seq") else "gru4rec",
        "dataset": {
            "dataset": dataset,
            "split": "final",
            "train_path": f"/some/machine/shared/data/movielens/{dataset}/u.data",
            "test_path": f"/some/machine/shared/data/movielens/{dataset}/u.data",
        },
        "config": {"data_dir": "/some/machine/shared/data", "eval": {"tie_mode": "conservative"}},
        **V1_COMMON,
        **extra,
    }


def test_a_v1_bptt_record_shows_the_settings_it_trained_with():
    """The committed MovieLens row said batch 64, lr 0.05, 2048 samples: the BPTT run used
    batch 16, Adam 0.01 and the full softmax (schema 1 kept those under `seq`)."""
    seq = {
        "batch_size": 16,
        "learning_rate": 0.01,
        "n_epochs": 40,
        "n_sample": 0,
        "sample_alpha": 0.0,
        "max_len": 200,
        "patience": 10,
        "metric": "ndcg@10",
    }
    rec = RunRecord.from_dict(
        v1("gru4rec_seq", "ml-100k", training="bptt", gru4rec=SESSION_PARALLEL_KNOBS, seq=seq)
    )
    assert rec.schema_version == SCHEMA_VERSION and rec.training == "bptt"
    assert rec.settings == {
        "layers": [64],
        "constrained_embedding": True,
        "dropout_p_embed": 0.0,
        "dropout_p_hidden": 0.1,
        "batch_size": 16,
        "learning_rate": 0.01,
        "n_epochs": 40,
        "n_sample": 0,
        "max_len": 200,
        "patience": 10,
        "stop_metric": "ndcg@10",
    }
    assert rec.dataset["train_path"] == "${data_dir}/movielens/ml-100k/u.data"
    assert rec.eval == {"tie_mode": "conservative"}


def test_a_v1_cross_entropy_record_drops_the_knobs_ce_never_read():
    rec = RunRecord.from_dict(v1("gru4rec", "yoochoose1_64", gru4rec=SESSION_PARALLEL_KNOBS))
    assert "bpreg" not in rec.settings and "elu_param" not in rec.settings
    assert rec.settings["logq"] == 1.0 and rec.settings["loss"] == "ce"
    # Schema 1 applied the official paramfile of a pair that has one.
    assert (rec.params, rec.paramfile) == ("official", "official_yoochoose1_64_ce")
    assert rec.study["storage"] == "sqlite:///sweeps/s.db"
    assert rec.overrides == ["study.storage='sqlite:///sweeps/s.db'", "seed=0"]
    assert str(PROJECT_ROOT) not in json.dumps(rec.to_dict())


def test_a_v1_baseline_record_keeps_its_params_only():
    rec = RunRecord.from_dict(
        v1(
            "sknn",
            "yoochoose1_64",
            gru4rec=None,
            baseline={"name": "sknn", "params": {"k": 50, "sample_size": 500}},
        )
    )
    assert rec.settings == {"k": 50, "sample_size": 500} and rec.training is None
    assert (rec.params, rec.paramfile) == ("default", None)


def test_round_trip_and_unknown_versions(tmp_path):
    rec = RunRecord.from_dict(v1("pop", "x", baseline={"name": "pop", "params": {}}))
    rec.write(tmp_path / "r.json")
    assert RunRecord.read(tmp_path / "r.json") == rec
    with pytest.raises(ValueError, match="schema_version: got 9"):
        RunRecord.from_dict({**rec.to_dict(), "schema_version": 9})
    with pytest.raises(ValueError, match="partial record, missing dataset"):
        RunRecord.from_dict({"method": "pop", "protocol": {}, "metrics": {}, "seed": 0})


def test_a_v2_record_counts_its_epochs_from_1():
    rec = RunRecord.from_dict(v1("pop", "x", baseline={"name": "pop", "params": {}}))
    v2 = {
        **rec.to_dict(),
        "schema_version": 2,
        "epochs": [{"epoch": 0, "loss": 5.0}, {"epoch": 1, "loss": 4.0}, {"loss": 3.0}],
        "best_epoch": 0,
    }
    got = RunRecord.from_dict(v2)
    assert [e.get("epoch") for e in got.epochs] == [1, 2, None]
    assert [e["loss"] for e in got.epochs] == [5.0, 4.0, 3.0]
    assert got.best_epoch == 1 and got.schema_version == SCHEMA_VERSION == 3
    assert RunRecord.from_dict({**v2, "best_epoch": None}).best_epoch is None


def test_ranks_kept_in_a_storage_round_trip_up_to_the_cap():
    import numpy as np

    from bench.records import RANK_CAP, decode_ranks, encode_ranks

    ranks = np.array([1.0, 2.0, 20.0, 254.0, 255.0, 3000.0, np.inf])
    back = decode_ranks(encode_ranks(ranks))
    assert back[:4].tolist() == [1.0, 2.0, 20.0, 254.0]
    assert np.isinf(back[4:]).all()  # at or past the cap: a miss at any cutoff below it
    assert RANK_CAP == 255
    with pytest.raises(ValueError, match="integer ranks"):
        encode_ranks(np.array([1.5]))
