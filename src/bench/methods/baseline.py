"""A baseline (bench.baselines) as a method: its settings are `baseline.params`."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from bench.baselines import make_baseline, settings_of
from bench.errors import BenchError
from bench.methods.base import FitContext, Method


class BaselineMethod(Method):
    kind = "baseline"
    knobs = ()

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        params = OmegaConf.to_container(cfg.baseline, resolve=True).get("params") or {}
        self.model = make_baseline(self.name, params)

    @classmethod
    def knob_hint(cls) -> str:
        known = settings_of(cls.name)
        if not known:
            return "it has no settings"
        return "its settings are " + ", ".join(f"baseline.params.{k}" for k in known)

    @classmethod
    def describe_name(cls) -> str:
        return f"{cls.name} (a baseline)"

    def fit(self, data, ctx: FitContext) -> list[dict]:
        try:
            self.scorer = self.model.fit(data.train, len(data.item_map)).to(ctx.device)
        except ValueError as e:  # a setting the data cannot serve (e.g. STAN in days, no times)
            raise BenchError(f"baseline.params ({self.name}): {e}") from None
        return []

    def settings(self) -> dict:
        """Read back from the fitted object: what it used, not what was asked."""
        return {k: getattr(self.model, k) for k in settings_of(self.name)}

    def title(self) -> str:
        return f"baseline {self.name}"


def baseline_method(name: str) -> type[BaselineMethod]:
    return type(f"BaselineMethod_{name}", (BaselineMethod,), {"name": name})
