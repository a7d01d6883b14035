"""A baseline (bench.baselines) as a method: its settings are `baseline.params`."""

from __future__ import annotations

import inspect

from omegaconf import DictConfig, OmegaConf

from bench.baselines import BASELINES
from bench.errors import BenchError
from bench.methods.base import FitContext, Method


class Baseline(Method):
    kind = "baseline"
    knobs = ()

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        params = OmegaConf.to_container(cfg.baseline, resolve=True).get("params") or {}
        known = inspect.signature(BASELINES[self.name]).parameters
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise BenchError(
                f"baseline.params.{unknown[0]}: not a setting of {self.name}; "
                f"expected {', '.join(known) or 'none'}"
            )
        try:
            self.model = BASELINES[self.name](**params)
        except (TypeError, ValueError) as e:
            raise BenchError(f"baseline.params ({self.name}): {e}") from None
        self.params = params

    @classmethod
    def knob_hint(cls) -> str:
        known = inspect.signature(BASELINES[cls.name]).parameters
        if not known:
            return "it has no settings"
        return "its settings are " + ", ".join(f"baseline.params.{k}" for k in known)

    @classmethod
    def describe_name(cls) -> str:
        return f"{cls.name} (a baseline)"

    def fit(self, data, ctx: FitContext) -> list[dict]:
        self.scorer = self.model.fit(data.train, len(data.item_map)).to(ctx.device)
        return []

    def settings(self) -> dict:
        """Read back from the fitted object: what it used, not what was asked."""
        return {k: getattr(self.model, k) for k in inspect.signature(type(self.model)).parameters}

    def title(self) -> str:
        return f"baseline {self.name}"


def baseline_method(name: str) -> type[Baseline]:
    return type(f"Baseline_{name}", (Baseline,), {"name": name})
