"""A model of the public interface (bench.api.SessionModel), named in the configuration.

`model.target` is "package.module:Class"; `model.params` are its constructor's keyword
arguments, checked against the signature before any data loads (a name it does not take,
or a value of another type than its default's, is a one-line error). The harness's own
knobs for it are `batch_size` and `n_epochs`, and `patience`/`stop_metric` for early
stopping on the validation split, as for GRU4Rec. The peers this package ships
(bench.peers) come in the same way, from conf/model/<name>.yaml.
"""

from __future__ import annotations

import importlib
import inspect
import sys

import torch
from omegaconf import DictConfig, OmegaConf

from bench.api import SessionModel
from bench.errors import BenchError
from bench.knob_types import fits, mismatch, parameter_types
from bench.methods.base import FitContext, Method, check_early_stopping

HARNESS_KNOBS = ("batch_size", "n_epochs", "patience", "stop_metric")


def load_target(target) -> type[SessionModel]:
    """The class `target` names; one-line errors for every way that can fail."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise BenchError(
            f"model.target: got {target!r}; expected 'package.module:Class' "
            "(e.g. model.target=examples.my_model:PrefixGRU)"
        )
    module_name, attr = target.split(":")
    if "" not in sys.path and "." not in sys.path:  # the working directory, as `python -m` does
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BenchError(f"model.target: cannot import module '{module_name}' ({e})") from None
    if not hasattr(module, attr):
        raise BenchError(f"model.target: module '{module_name}' has no '{attr}'")
    cls = getattr(module, attr)
    if not (inspect.isclass(cls) and issubclass(cls, SessionModel)):
        raise BenchError(f"model.target: '{target}' is not a subclass of bench.api.SessionModel")
    if inspect.isabstract(cls):
        raise BenchError(f"model.target: '{target}' does not define score(prefixes, lengths)")
    return cls


def constructor_knobs(cls: type[SessionModel]) -> dict[str, inspect.Parameter]:
    """The keyword arguments after n_items: the model's knobs."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    return {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_params(cls: type[SessionModel], target: str, given: dict) -> dict:
    """The knobs as the model will get them: every constructor argument, given or default;
    each given value of the type its annotation (or default) declares."""
    knobs = constructor_knobs(cls)
    declared = parameter_types(cls)
    for name, value in given.items():
        if name not in knobs:
            raise BenchError(
                f"model.params.{name}: not a parameter of {target} "
                f"(its parameters: {', '.join(knobs) or 'none'})"
            )
        problem = mismatch(f"model.params.{name}", value, declared.get(name, object))
        if problem:
            raise BenchError(problem)
    missing = [
        n for n, p in knobs.items() if p.default is inspect.Parameter.empty and n not in given
    ]
    if missing:
        raise BenchError(f"model.params.{missing[0]}: required by {target} and not given")
    return {n: given.get(n, p.default) for n, p in knobs.items()}


class ExternalModel(Method):
    name = "external"
    kind = "model"
    training = "prefixes"
    knobs = HARNESS_KNOBS
    evaluates_per_epoch = True
    checkpoints = True
    reads_model = True

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        spec = cfg.get("model") or {}
        self.target = spec.get("target")
        self.cls = load_target(self.target)
        given = OmegaConf.to_container(spec.get("params") or OmegaConf.create({}), resolve=True)
        self.params = check_params(self.cls, self.target, dict(given))
        self._construct(1)  # the model's own checks of its values, before any data
        self.name = getattr(self.cls, "name", self.cls.__name__.lower())
        for knob in ("batch_size", "n_epochs"):
            value = cfg.get(knob)
            if not (fits(value, int) and value >= 1):
                raise BenchError(f"{knob}: got {value!r}; expected a positive integer")
        self.batch_size, self.n_epochs = int(cfg.batch_size), int(cfg.n_epochs)
        self.patience = cfg.get("patience")
        self.stop_metric = cfg.get("stop_metric") or "mrr@20"
        if self.patience is not None:
            check_early_stopping(cfg, self.stop_metric)

    @classmethod
    def describe_name(cls) -> str:
        return "external (model.target)"

    @classmethod
    def knob_hint(cls) -> str:
        return (
            "its knobs are batch_size, n_epochs, patience, stop_metric; the model's own are "
            "model.params.<name>"
        )

    @property
    def monitors(self) -> bool:
        return self.patience is not None

    def build(self, n_items: int, device: str, seed: int) -> SessionModel:
        torch.manual_seed(seed)  # the model's initialisation and dropout draw from it
        return self._construct(n_items).to(device)

    def _construct(self, n_items: int) -> SessionModel:
        """The model; its own errors about its values become one line naming the knob."""
        try:
            return self.cls(n_items, **self.params)
        except (TypeError, ValueError) as e:
            if str(e).split(":", 1)[0] in self.params:  # "lr: got -1; ..."
                raise BenchError(f"model.params.{e}") from None
            raise BenchError(f"model.params ({self.target}): {e}") from None

    def fit(self, data, ctx: FitContext) -> list[dict]:
        from bench.core.prefixes import PrefixScorer, TrainingPrefixes
        from bench.lit import PrefixModule, fit_module

        model = self.build(len(data.item_map), ctx.device, ctx.seed)
        self.scorer = PrefixScorer(model, int(data.test.lengths.max(initial=1)))
        prefixes = TrainingPrefixes(data.train, model.max_prefix, torch.device(ctx.device))
        module = PrefixModule(
            model,
            prefixes,
            self.batch_size,
            ctx.seed,
            ctx.identity,
            self.stop_metric if self.monitors else None,
            ctx.epoch_hook,
        )
        self.best_epoch = fit_module(module, self.n_epochs, ctx, self.patience)
        return [s.as_dict() for s in module.history]

    def settings(self) -> dict:
        early = (
            {"patience": self.patience, "stop_metric": self.stop_metric} if self.monitors else {}
        )
        return {
            "model": self.target,
            **self.params,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            **early,
        }

    def title(self) -> str:
        return f"{getattr(self.cls, 'title', self.cls.__name__)} ({self.target})"

    def save(self, path, data) -> None:
        from bench.atomic import write_with

        payload = {
            "target": self.target,
            "params": self.params,
            "state_dict": {k: v.detach().cpu() for k, v in self.scorer.model.state_dict().items()},
            "item_ids": [str(x) for x in data.item_map.ids],
        }
        write_with(path, lambda f: torch.save(payload, f), binary=True)
