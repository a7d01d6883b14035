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
from bench.baselines.sknn import SKNN, SNH_UNITS, STAN, VSKNN

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


def _at_least(low):
    return lambda v: v >= low, f">= {low}"


# The range of every baseline setting (a name means the same in each baseline that has it),
# checked before any data is read; the constructors keep their own checks for direct use.
RANGES = {
    **{k: _at_least(1) for k in ("n_sims", "k", "sample_size", "steps", "pruning")},
    **{k: _at_least(1) for k in ("n_factors", "batch_size")},
    **{k: _at_least(0) for k in ("n_iterations", "seed", "lmbd", "lambda_session", "lambda_item")},
    "alpha": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    **{k: (lambda v: v > 0, "> 0") for k in ("learning_rate", "sigma")},
    **{k: (lambda v: v > 0, "> 0") for k in ("lambda_spw", "lambda_snh", "lambda_inh")},
    "snh_unit": (lambda v: v in SNH_UNITS, f"one of {', '.join(SNH_UNITS)}"),
}


def settings_of(name: str) -> tuple[str, ...]:
    """The settings a baseline takes (its constructor's parameters, `baseline.params.*`)."""
    return tuple(inspect.signature(BASELINES[name]).parameters)


def make_baseline(name: str, params: dict | None = None):
    """The named baseline; an unknown name, an unknown setting or a bad value is one line."""
    from bench.errors import BenchError
    from bench.knob_types import mismatch, parameter_types

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
        in_range, expected = RANGES.get(key, (lambda v: True, ""))
        if not in_range(value):
            raise BenchError(f"baseline.params.{key}: got {value!r}; expected {expected} ({name})")
    try:
        return BASELINES[name](**(params or {}))
    except (TypeError, ValueError) as e:
        raise BenchError(f"baseline.params ({name}): {e}") from None
