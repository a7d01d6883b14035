"""Baselines scored by the same evaluator as GRU4Rec (same candidates, ties, metrics).

Each baseline is a torch module with the evaluator's interface: `init_hidden` gives the
per-session state (reset at session starts and shrunk with the batch exactly like
GRU4Rec's hidden state), `step_all` consumes the current item and returns scores for all
items. So no baseline has an evaluation path of its own.
"""

import inspect

from bench.baselines.bpr import BPRMF
from bench.baselines.knn import ItemKNN
from bench.baselines.popularity import Pop, SessionPop
from bench.baselines.rules import AssociationRules, SequentialRules
from bench.baselines.sknn import SKNN, STAN, VSKNN

BASELINES = {
    "pop": Pop,
    "spop": SessionPop,
    "itemknn": ItemKNN,
    "bprmf": BPRMF,
    "sknn": SKNN,
    "vsknn": VSKNN,
    "stan": STAN,
    "sr": SequentialRules,
    "ar": AssociationRules,
}


def settings_of(name: str) -> tuple[str, ...]:
    """The settings a baseline takes (its constructor's parameters, `baseline.params.*`)."""
    return tuple(inspect.signature(BASELINES[name]).parameters)


def make_baseline(name: str, params: dict | None = None):
    """The named baseline; an unknown name, an unknown setting or a bad value is one line."""
    from bench.core.knob_types import mismatch, parameter_types
    from bench.errors import BenchError

    if name not in BASELINES:
        raise BenchError(f"baseline: unknown '{name}'; expected one of {', '.join(BASELINES)}")
    known = settings_of(name)
    unknown = sorted(set(params or {}) - set(known))
    if unknown:
        raise BenchError(
            f"baseline.params.{unknown[0]}: not a setting of {name}; "
            f"expected {', '.join(known) or 'none'}"
        )
    declared = parameter_types(BASELINES[name])
    for key, value in (params or {}).items():
        problem = mismatch(f"baseline.params.{key}", value, declared.get(key, object))
        if problem:
            raise BenchError(f"{problem} ({name})")
    try:
        return BASELINES[name](**(params or {}))
    except (TypeError, ValueError) as e:
        raise BenchError(f"baseline.params ({name}): {e}") from None
