"""The run's evaluation options are checked before any data loads: one line naming the
option and what it takes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bench.errors import BenchError
from bench.evaluation import check_eval_config
from bench.paths import conf_dir

NEXT_ITEM = OmegaConf.load(conf_dir() / "eval" / "next_item.yaml")


def with_option(**option):
    return OmegaConf.merge(NEXT_ITEM, OmegaConf.create(option))


def test_the_shipped_options_and_a_sampled_protocol_pass():
    check_eval_config(NEXT_ITEM)
    check_eval_config(with_option(sampled={"n": 100, "by": "popularity"}, filter_seen=True))
    check_eval_config(with_option(also_tie_modes=["standard", "median"]))


@pytest.mark.parametrize(
    "option, message",
    [
        ({"also_tie_modes": "standard"}, "eval.also_tie_modes: got 'standard'; expected a list"),
        ({"also_tie_modes": ["x"]}, "eval.also_tie_modes: unknown 'x'; expected one of"),
        ({"filter_seen": "maybe"}, "eval.filter_seen: got 'maybe'; expected true, false or null"),
        ({"sampled": "abc"}, "eval.sampled: got 'abc'; expected null or {n: N >= 1, by: "),
        ({"sampled": {"n": 100}}, "eval.sampled: got {'n': 100}; expected null or"),
        ({"sampled": {"n": 0, "by": "uniform"}}, "eval.sampled: got {'n': 0, 'by': 'uniform'}"),
        ({"sampled": {"n": 5, "by": "x"}}, "eval.sampled: got {'n': 5, 'by': 'x'}"),
        ({"sampled": {"n": 5, "by": "uniform", "k": 1}}, "eval.sampled: got {'n': 5, 'by': "),
        ({"unknown_test_items": "keep"}, "eval.unknown_test_items: got 'keep'; expected drop or"),
    ],
)
def test_a_bad_option_is_one_line(option, message):
    with pytest.raises(BenchError) as e:
        check_eval_config(with_option(**option))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
