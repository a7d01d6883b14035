"""Recipes run on integer codes of the ids (bench.data.codes) and give exactly the parts
they give on the ids themselves: same rows, same order, same ids and dtypes."""

import numpy as np
import pandas as pd
import pytest

from bench.data import codes, recipes
from bench.data import prepare as prep
from bench.data.raw import RAW_READERS

SAMPLES = {
    "rsc15": "yoochoose/raw_sample/yoochoose-clicks.sample.dat",
    "yoochoose": "yoochoose/raw_sample/yoochoose-clicks.sample.dat",
    "srgnn_yoochoose1_64": "yoochoose/raw_sample/yoochoose-clicks.sample.dat",
    "diginetica": "diginetica/raw_sample/train-item-views.sample.csv",
    "srgnn_diginetica": "diginetica/raw_sample/train-item-views.sample.csv",
    "retailrocket": "retailrocket/sessionized_sample/retailrocket-sessions.sample.tsv",
    "ml-100k": "movielens/ml-100k/u.data",
}


def test_codes_follow_the_natural_order_of_the_ids():
    frame = pd.DataFrame(
        {
            "SessionId": pd.array(["10", "9", "10", "100"], dtype="str"),  # numbers as text
            "ItemId": pd.array(["b", "a10", "a9", "b"], dtype="str"),  # text
            "Time": [0.0, 1.0, 2.0, 3.0],
        }
    )
    coded, ids = codes.encode(frame)
    assert coded["SessionId"].tolist() == [1, 0, 1, 2]  # 9 < 10 < 100, by value
    assert coded["ItemId"].tolist() == [2, 0, 1, 2]  # "a10" < "a9" < "b", as text
    assert coded["SessionId"].dtype == np.int32 and coded["Time"].tolist() == frame["Time"].tolist()
    pd.testing.assert_frame_equal(codes.decode(coded.iloc[[3, 0]], ids), frame.iloc[[3, 0]])


def _on_ids_and_on_codes(build, raw, **opts):
    on_ids, steps_ids = build(raw, **opts)
    coded, ids = codes.encode(raw)
    on_codes, steps_codes = build(coded, **opts)
    assert steps_codes == steps_ids
    for name, part in on_ids.items():
        pd.testing.assert_frame_equal(codes.decode(on_codes[name], ids), part)


def test_the_generic_recipe_gives_the_same_parts_on_codes():
    """Numeric ids written as text with equal timestamps inside sessions: de-duplication
    sorts them by (session, time, item) as numbers, on codes as on the ids."""
    rng = np.random.default_rng(0)
    n = 4000
    session = np.sort(rng.integers(0, 600, n))
    raw = pd.DataFrame(
        {
            "SessionId": pd.array(session.astype(str), dtype="str"),
            "ItemId": pd.array(rng.integers(0, 150, n).astype(str), dtype="str"),
            "Time": (session * 1440 + rng.integers(0, 3, n) * 60).astype(float),
        }
    )
    for opts in (
        {"test_days": 2, "dedup": True},
        {"test_days": 2, "iterative": True, "split_by": "session_end", "min_item_support": 3},
    ):
        _on_ids_and_on_codes(recipes.generic, raw, **opts)


@pytest.mark.real_data
@pytest.mark.parametrize("name", SAMPLES)
def test_each_recipe_gives_the_same_parts_on_codes(shared_data, name):
    recipe, opts, reader_opts = prep.resolve_options(name, None)
    raw = RAW_READERS[recipe.reader](shared_data / SAMPLES[name], **reader_opts)
    _on_ids_and_on_codes(getattr(recipes, recipe.build), raw, **opts)
