"""Every method the harness runs, by the name `conf/model` or `conf/baseline` gives it."""

from __future__ import annotations

from omegaconf import DictConfig

from bench.baselines import BASELINES
from bench.errors import BenchError
from bench.methods.base import FitContext, Method
from bench.methods.baseline import baseline_method
from bench.methods.bptt import SequenceGRU4Rec
from bench.methods.external import ExternalModel
from bench.methods.gru4rec import SessionParallelGRU4Rec

METHODS: dict[str, type[Method]] = {
    SessionParallelGRU4Rec.name: SessionParallelGRU4Rec,
    SequenceGRU4Rec.name: SequenceGRU4Rec,
    ExternalModel.name: ExternalModel,
    **{name: baseline_method(name) for name in BASELINES},
}


def build_method(cfg: DictConfig) -> Method:
    """The configured method, its knobs checked (one-line errors) before any data loads."""
    name = cfg.get("method")
    if name not in METHODS:
        raise BenchError(f"method: unknown '{name}'; expected one of {', '.join(METHODS)}")
    cls = METHODS[name]
    cls.check_knobs(cfg)
    if cfg.get("params", "default") == "official":
        if cls is not SessionParallelGRU4Rec:
            raise BenchError(
                "params=official: official paramfiles exist for session-parallel GRU4Rec only, "
                f"not {name}"
            )
        if cfg.get("paramfile") is None:
            raise BenchError(
                f"params=official: no official paramfile for dataset {cfg.dataset.name} with "
                f"loss {cfg.loss} (conf/paramfile/official_{cfg.dataset.name}_{cfg.loss}.yaml)"
            )
    return cls(cfg)


__all__ = ["METHODS", "FitContext", "Method", "build_method"]
