"""Every knob a run reads, fed a value of the wrong type and one out of its range: one
error naming the knob, before any data is read (README "Running"). The knobs and values
are generated from the composed configs of every method, not listed by hand."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import bench.run  # registers the config resolvers
from bench.errors import BenchError
from bench.paths import conf_dir

METHODS = [
    [],
    ["model=gru4rec_seq"],
    ["model=srgnn"],
    ["model=sgnnhn"],
    ["model=narm"],
    *[
        [f"baseline={b}"]
        for b in ("pop", "spop", "itemknn", "bprmf", "sknn", "vsknn", "stan", "sr", "ar")
    ],
]
# Knobs chosen as Hydra config groups (`loss=bpr-max` picks conf/loss/bpr-max.yaml): an
# unknown choice is Hydra's own error, listing the options.
GROUPS = {p.name for p in conf_dir().iterdir() if p.is_dir()}
# Not values of a run: the dataset's description, the study sweeper's channel (refused when
# set by hand, tests/test_run.py) and Hydra's own settings.
SKIPPED = (
    "dataset.",
    "study.",
    "hydra.",
    "data_dir",
    "logger",
    "resume",
    "paramfile",
    "model.target",
)


def leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def bad_values(value) -> list[str]:
    """A value of the wrong type, then one out of range, for a knob holding `value`."""
    if isinstance(value, bool):
        return ["maybe"]
    if isinstance(value, (int, float)):
        return ["abc", "-1"]
    if isinstance(value, str):
        return ["123", "no_such_value"]
    if isinstance(value, list):
        return ["[abc]", "[-1]"]
    return []


def cases() -> list[tuple[list[str], str, str]]:
    found = []
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        for method in METHODS:
            cfg = OmegaConf.to_container(compose("run", overrides=method), resolve=True)
            for key, value in leaves(cfg):
                if value is None or key in GROUPS or key.startswith(SKIPPED):
                    continue
                found += [(method, key, bad) for bad in bad_values(value)]
    return found


CASES = cases()


def test_the_cases_cover_every_kind_of_knob():
    keys = {key for _, key, _ in CASES}
    for knob in ("layers", "dropout_p_hidden", "momentum", "eval.cutoffs", "eval.batch_size",
                 "eval.tie_mode", "trainer.step", "seed", "split", "max_len",
                 "model.params.lr", "baseline.params.lambda_spw", "batch_size"):  # fmt: skip
        assert knob in keys, knob
    assert len(CASES) > 300


@pytest.mark.parametrize(
    "method, key, value", CASES, ids=[f"{' '.join(m) or 'gru4rec'}:{k}={v}" for m, k, v in CASES]
)
def test_a_bad_value_is_one_error_naming_the_knob_before_any_data(tmp_path, method, key, value):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("run", overrides=[*method, f"{key}={value}", "data_dir=/nonexistent"])
    with pytest.raises(BenchError) as err:
        bench.run.settle(cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert key in message or key.rsplit(".", 1)[-1] in message.split(":", 1)[0], message
