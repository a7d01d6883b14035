"""A knob's value against the type the code that reads it declares, before any data is read.

The declared type is a dataclass field's annotation (GRU4Rec's and BPTT's knobs) or a
constructor's parameter annotation, else its default's type (a baseline's settings, a
model of the public interface). A value of another type is one line naming the knob and
what was expected, instead of an exception from deep inside the code that first uses it
(`layers=[100,abc]` in int(), `lambda_spw=abc` in a comparison after the fit).
"""

from __future__ import annotations

import inspect
import types
import typing

SIMPLE = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def fits(value, hint) -> bool:
    """Whether `value` (as YAML or the command line gives it) has the declared type; types
    other than these plain ones are left to the code that reads them."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, (list, tuple)) and all(fits(v, item) for v in value)
    return True


def describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        (item,) = typing.get_args(hint) or (typing.Any,)
        return f"a list of {describe(item).removeprefix('an ').removeprefix('a ')}s"
    return SIMPLE.get(hint, getattr(hint, "__name__", str(hint)))


def mismatch(name: str, value, hint) -> str | None:
    """`name: got ...; expected ...`, or None when the value fits."""
    if fits(value, hint):
        return None
    return f"{name}: got {value!r}; expected {describe(hint)}"


def parameter_types(func) -> dict[str, object]:
    """Keyword parameter -> declared type of a function or class constructor: its
    annotation, else its default's type (a parameter with neither is left out)."""
    target = func.__init__ if inspect.isclass(func) else func
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):  # an annotation that names what cannot be resolved
        hints = {}
    out = {}
    for name, p in inspect.signature(func).parameters.items():
        if name in hints:
            out[name] = hints[name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[name] = type(p.default)
    return out
