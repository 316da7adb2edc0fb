"""The one validation module: every public entry point checks its arguments here and
raises a ``ValueError`` naming the field, the offending value and what was expected
(SPEC 1, "Validation").

Numbers must be numbers: ``bool`` is never accepted as a number, integers must be
integral, floats finite unless said otherwise.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl.limits import MAX_SPACE

#: tolerance on probability row sums (SPEC 1)
ROW_SUM_TOL = 1e-8
#: the keys every spaces dict has (``TabularGame.spaces``; ``A_l`` may be absent, SPEC 1)
SPACE_KEYS = ("S_g", "A_g", "S_l")

T = TypeVar("T")


def show(value: Any) -> str:
    """``value`` as a user reads it in a message: numpy scalars as plain numbers
    (``0.97``, not ``np.float64(0.97)``), strings quoted (``'direct'``), sequences as
    ``[1, 2]``, mappings as ``{a = 1, b = 2}`` (TOML's inline tables), other objects by
    their type name when their ``repr`` would be a long internal one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}" if value.size > 8 else show(value.tolist())
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, list | tuple):
        items = [show(v) for v in value[:12]]
        return "[" + ", ".join(items) + (", ..." if len(value) > 12 else "") + "]"
    if isinstance(value, dict):
        items = [f"{k} = {show(v)}" for k, v in list(value.items())[:12]]
        return "{" + ", ".join(items) + (", ..." if len(value) > 12 else "") + "}"
    text = repr(value)
    return text if len(text) <= 60 and not text.startswith("<") else type(value).__name__


def show_choices(choices: Iterable[Any]) -> str:
    """Allowed values for a message: ``'a', 'b', 'c'`` (no brackets)."""
    return ", ".join(show(c) for c in choices)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(value, int | np.integer)


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(name: str, value: Any, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` with ``minimum <= value <= maximum`` (either bound may be
    ``None``). Bools, floats (even integral ones) and strings are rejected."""
    if not _is_int(value) or (minimum is not None and int(value) < minimum) or (
            maximum is not None and int(value) > maximum):
        raise ValueError(f"{name} = {show(value)}: expected an integer"
                         f"{_range_text(minimum, maximum)}")
    return int(value)


def check_float(name: str, value: Any, minimum: float | None = None,
                maximum: float | None = None, *, positive: bool = False,
                finite: bool = True) -> float:
    """``value`` as a ``float``: a real number (not a bool, not a string), finite unless
    ``finite=False``, ``> 0`` when ``positive``, within ``[minimum, maximum]``."""
    ok = not isinstance(value, bool | np.bool_) and isinstance(value, int | float | np.integer
                                                                   | np.floating)
    v = float(value) if ok else math.nan
    if ok and finite and not math.isfinite(v):
        ok = False
    if ok and math.isnan(v):
        ok = False
    if ok and positive and not v > 0:
        ok = False
    if ok and minimum is not None and v < minimum:
        ok = False
    if ok and maximum is not None and v > maximum:
        ok = False
    if not ok:
        what = "a finite number" if finite else "a number"
        if positive:
            what += " > 0"
        raise ValueError(f"{name} = {show(value)}: expected {what}{_range_text(minimum, maximum)}")
    return v


def check_positive(name: str, value: Any) -> float:
    """A finite number ``> 0``."""
    return check_float(name, value, positive=True)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """A string option among ``choices``; the message lists them (and the closest one)."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        import difflib

        close = difflib.get_close_matches(str(value), options, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{name} = {show(value)}: expected one of "
                         f"{show_choices(options)}{hint}")
    return value


def check_spaces(spaces: Any, name: str = "spaces") -> dict[str, int]:
    """A spaces dict ``{"S_g", "A_g", "S_l"}`` (and optionally ``"A_l"``) of integers ``>= 1``
    and at most ``limits.MAX_SPACE`` (SPEC 1), as plain ``int`` values. ``A_l`` absent, ``None`` or ``-1`` means unknown and
    is left out of the result; any other key is an error."""
    if not isinstance(spaces, dict):
        raise ValueError(f"{name} = {spaces!r}: expected an object with S_g, A_g, S_l "
                         "(and optionally A_l)")
    unknown = set(spaces) - {*SPACE_KEYS, "A_l"}
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}; expected S_g, A_g, S_l, A_l")
    out: dict[str, int] = {}
    for key in SPACE_KEYS:
        if key not in spaces:
            raise ValueError(f"{name}.{key}: missing; expected an integer >= 1")
        out[key] = check_int(f"{name}.{key}", spaces[key], 1, MAX_SPACE)
    if spaces.get("A_l") is not None and not (_is_int(spaces["A_l"]) and spaces["A_l"] == -1):
        out["A_l"] = check_int(f"{name}.A_l", spaces["A_l"], 1, MAX_SPACE)
    return out


def check_instance(name: str, value: Any, cls: type[T], expected: str | None = None) -> T:
    """``value`` if it is an instance of ``cls``, else ``ValueError`` "``name``: expected
    ``expected`` (default: ``a(n) <class name>``), got <type of value>"."""
    if not isinstance(value, cls):
        what = expected or f"{'an' if cls.__name__[:1].lower() in 'aeiou' else 'a'} {cls.__name__}"
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """A real ``bool`` (``0``/``1`` and strings are rejected)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} = {show(value)}: expected true or false")
    return bool(value)


def check_open_unit(name: str, value: Any) -> float:
    """``value`` as a ``float`` strictly between 0 and 1 (a confidence level); a ``bool``,
    a string or any other non-number is rejected with the same error."""
    ok = not isinstance(value, bool | np.bool_) and isinstance(value, int | float | np.integer
                                                               | np.floating)
    if not ok or not 0 < value < 1:
        raise ValueError(f"{name} = {value!r}: expected a number in (0, 1)")
    return float(value)


def check_kwargs(name: str, value: Any) -> dict[str, Any]:
    """A dict of keyword arguments (``None``: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} = {value!r}: expected a dict of keyword arguments")
    return value


def check_gamma(gamma: Any) -> float:
    """The discount factor: a number with ``0 <= gamma < 1`` (SPEC 1)."""
    if isinstance(gamma, bool | np.bool_) or not isinstance(
            gamma, int | float | np.integer | np.floating):
        raise ValueError(f"gamma = {show(gamma)}: expected a number in [0, 1)")
    g = float(gamma)
    if not (0.0 <= g < 1.0) or not np.isfinite(g):
        raise ValueError(f"gamma = {show(gamma)}: expected a number in [0, 1)")
    return g


def check_k(k: Any, n: int) -> int:
    """The subsample size: an integer with ``1 <= k <= n`` (SPEC 1)."""
    if not _is_int(k) or not 1 <= int(k) <= n:
        raise ValueError(f"k = {show(k)}: expected an integer with 1 <= k <= n = {n}")
    return int(k)


def _as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)`` with conversion failures (ragged nesting, recursion) as named
    ``ValueError``s."""
    if isinstance(value, str | bytes):
        raise ValueError(f"{name}: expected a numeric array, got a string")
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        raise ValueError(f"{name}: expected a numeric array, could not convert "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


def as_float_array(name: str, value: ArrayLike, ndim: int) -> NDArray[np.float64]:
    """``value`` as a float64 array with ``ndim`` dimensions, or a ``ValueError`` naming
    ``name``. Numbers must be numbers: integer or real floating arrays only (strings,
    booleans, complex numbers and objects are refused, not converted)."""
    arr = _as_array(name, value)
    if arr.dtype.kind not in "iuf" and not (arr.size == 0 and arr.dtype.kind in "biufO"):
        raise ValueError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}"
                         f"{' (booleans are not numbers)' if arr.dtype.kind == 'b' else ''}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def as_int_array(name: str, value: ArrayLike, ndim: int) -> NDArray[np.int64]:
    """``value`` as an int64 array with ``ndim`` dimensions: integer arrays only (floats,
    even integral ones, booleans and strings are refused; values must fit in int64)."""
    arr = _as_array(name, value)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind in "biufO"):
        raise ValueError(f"{name}: expected an array of integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > 2**63 - 1:
        raise ValueError(f"{name}: values above 2**63 - 1 do not fit in int64")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def first_bad_index(mask: NDArray[np.bool_]) -> tuple[int, ...]:
    """Index of the first ``True`` entry of ``mask`` (C order)."""
    idx = np.argwhere(mask)[0]
    return tuple(int(i) for i in idx)


def check_stochastic(name: str, arr: NDArray[np.float64], tol: float = ROW_SUM_TOL) -> None:
    """Check that ``arr`` is a table of probability rows along its last axis (SPEC 1).

    Raises ``ValueError`` naming ``name``, the first offending index and the expectation.
    """
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        i = first_bad_index(~finite)
        raise ValueError(f"{name}{list(i)} = {arr[i]}: expected a finite probability")
    neg = arr < 0
    if neg.any():
        i = first_bad_index(neg)
        raise ValueError(f"{name}{list(i)} = {arr[i]!r}: expected a probability >= 0")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > tol
    if bad.any():
        i = first_bad_index(bad)
        raise ValueError(
            f"{name}{list(i) + [':']} sums to {sums[i]!r}: expected each row to sum to 1 "
            f"(within {tol:g})"
        )


def check_finite(name: str, arr: NDArray[np.float64]) -> None:
    """Raise ``ValueError`` if ``arr`` holds NaN or infinity."""
    finite = np.isfinite(arr)
    if not finite.all():
        i = first_bad_index(~finite)
        raise ValueError(f"{name}{list(i)} = {arr[i]}: expected a finite number")


def is_callable_spec(spec: Any) -> bool:
    """Whether ``spec`` looks like ``"module:function"`` (a dotted module, one colon, a
    dotted attribute)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        return False
    mod, attr = spec.split(":")
    return all(part.isidentifier() for part in mod.split(".") + attr.split("."))


def resolve_callable(name: str, spec: Any) -> Callable[..., Any]:
    """``"module:function"`` -> the callable it names (the module imported; the current
    directory is searched too, so a user's ``my_sim.py`` next to the command works);
    ``ValueError`` naming ``name`` when the spec is malformed, the module cannot be
    imported, the attribute is missing or not callable."""
    if not is_callable_spec(spec):
        raise ValueError(f"{name} = {spec!r}: expected 'module:function'")
    mod, attr = spec.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj: Any = importlib.import_module(mod)
    except ImportError as exc:
        raise ValueError(f"{name} = {spec!r}: cannot import module {mod!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{name} = {spec!r}: module {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{name} = {spec!r}: {attr!r} is not callable")
    return obj  # type: ignore[no-any-return]
