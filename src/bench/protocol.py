"""The headline's protocol, each fact stated once: the two SR-GNN splits it reports, the
searches it runs a study of on each, the common budget of finished trials (the
conf/hparams_search files read it through the `bench_budget` resolver), and each search's
final seeds (set in its conf/hparams_search file)."""

from __future__ import annotations

import functools

from bench.paths import conf_dir

SPLITS = ("diginetica_srgnn", "yoochoose1_64")
# conf/hparams_search names, cheapest first, so that whole rows land early (NARM after the
# graph peers: issue #29 finishes them first).
SEARCHES = (
    "pop",
    "spop",
    "sr",
    "ar",
    "itemknn",
    "bprmf",
    "sknn",
    "vsknn",
    "stan",
    "gru4rec_ce",
    "gru4rec_bpr-max",
    "srgnn",
    "sgnnhn",
    "narm",
)
# Finished trials (complete or pruned) of every tuned study: the headline reports each study
# by the best of its first BUDGET. The cost measured at 50 (26-36 CPU-hours to finish, in
# the studies' progress notes) set it at 30.
BUDGET = 30
# The parameter-free searches (POP, S-POP): one trial, their configured values.
UNTUNED = ("pop", "spop")


@functools.cache
def _sweeper(search: str):
    """The `hydra.sweeper` node of a search's conf/hparams_search file (None: no such search)."""
    from omegaconf import OmegaConf

    path = conf_dir() / "hparams_search" / f"{search}.yaml"
    return OmegaConf.load(path).hydra.sweeper if path.is_file() else None


def pruner(search: str) -> str | None:
    """The pruner a search's file sets (None: it sets none, or there is no such search, so
    the sweeper's default)."""
    sweeper = _sweeper(search)
    return None if sweeper is None else sweeper.get("pruner")


def final_seeds(search: str) -> int:
    """Seeds of a search's final retraining, as its conf/hparams_search file sets them (1 for
    a study named after no search there)."""
    sweeper = _sweeper(search)
    return 1 if sweeper is None else int(sweeper.final_seeds)
