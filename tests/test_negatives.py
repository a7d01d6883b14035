"""Negative sampling: the support^alpha distribution, a shared row per step, refills."""

import numpy as np
import pytest
import torch

from bench.core.negatives import NegativeSampler, alias_table


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_alias_table_is_exact(alpha):
    support = np.array([1.0, 2.0, 3.0, 10.0, 0.5, 7.0])
    w = support**alpha
    prob, alias = alias_table(w)
    # Probability mass each item receives from the table equals its target share.
    mass = prob.copy() / len(w)
    np.add.at(mass, alias, (1 - prob) / len(w))
    assert mass == pytest.approx(w / w.sum(), abs=1e-12)


def test_samples_follow_support_power_alpha():
    support = np.array([1.0, 4.0, 9.0, 16.0])
    gen = torch.Generator().manual_seed(0)
    s = NegativeSampler(
        support,
        n_sample=1000,
        sample_alpha=0.5,
        store_size=200_000,
        device=torch.device("cpu"),
        generator=gen,
    )
    draws = torch.cat([s.next() for _ in range(400)])  # 400 rows: the first store and one refill
    assert s.rows == 200 and s.pointer == 200
    freq = np.bincount(draws.numpy(), minlength=4) / len(draws)
    assert freq == pytest.approx(np.sqrt(support) / np.sqrt(support).sum(), abs=0.005)


def test_rows_are_shared_and_deterministic():
    support = np.arange(1, 50, dtype=float)
    mk = lambda: NegativeSampler(
        support, 8, 0.75, 64, torch.device("cpu"), torch.Generator().manual_seed(3)
    )
    a, b = mk(), mk()
    rows_a = [a.next() for _ in range(20)]
    assert all(r.shape == (8,) for r in rows_a)
    assert all(torch.equal(x, b.next()) for x in rows_a)
