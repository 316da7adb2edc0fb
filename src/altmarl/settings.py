"""Validated configurations (pydantic v2): the one configuration style of altmarl (issue
14.5), used by the TOML experiment files (:mod:`altmarl.experiments.config`), the theory
experiment (:mod:`altmarl.experiments.theory`), the continuous warehouse
(:class:`altmarl.continuous.ContinuousConfig`, :class:`altmarl.continuous.TRPOConfig`) and
the federated example (:class:`altmarl.federated.FederatedConfig`,
:class:`altmarl.federated.FederatedExperiment`).

* :class:`StrictConfig` — base of every configuration model: unknown keys rejected
  (``extra="forbid"``), no silent coercion (``strict``: ``"3"`` is not an integer, ``True``
  is not a number), immutable (``frozen``).
* :class:`CheckedConfig` — a :class:`StrictConfig` built directly from Python
  (``ContinuousConfig(n=60)``): its constructor and :meth:`CheckedConfig.parse` raise a
  ``ValueError`` in the format below, and NumPy scalars count as the numbers they hold.
* :func:`format_validation_errors` — the message: one line per problem naming the dotted
  key, e.g. ``config: trpo.max_kl: Input should be greater than 0 (got 0.0)``; an unknown
  key gets the closest allowed one (:func:`keys_at`, :func:`unknown_key_message`).
* :data:`LISTS_AS_TUPLES` — lets a strict ``tuple`` field accept a list (JSON and TOML
  have no tuples).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from altmarl._validate import show

#: loc entries pydantic adds for the alternatives of a union (not keys of the config)
_SCALAR_TAGS = ("int", "float", "str", "bool", "none")


def _is_union_tag(p: Any) -> bool:
    return isinstance(p, str) and (
        p in _SCALAR_TAGS or p[:1].isupper()  # model classes of a union, e.g. KRange
        or p.startswith(("literal[", "function-", "list[", "dict[", "tuple[")))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The first pydantic model class in a field's annotation (``X``, ``X | None``,
    ``Annotated[X, ...]``, ``list[X]``), or ``None``."""
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def keys_at(model: type[BaseModel] | None, loc: tuple[str, ...]) -> list[str]:
    """The keys the configuration ``model`` accepts at the dotted location ``loc`` (its
    field names and aliases; empty where ``loc`` does not lead to a model)."""
    cls = model
    for part in loc:
        if cls is None:
            return []
        field = cls.model_fields.get(part) or next(
            (f for f in cls.model_fields.values() if f.alias == part), None)
        cls = None if field is None else _model_in(field.annotation)
    if cls is None:
        return []
    return [f.alias or name for name, f in cls.model_fields.items()]


def unknown_key_message(key: str, allowed: list[str]) -> str:
    """``unknown key`` with the closest allowed key (``did you mean``) or the allowed keys."""
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    if allowed:
        return f"unknown key; the keys here are {', '.join(allowed)}"
    return "unknown key (not allowed here; check the spelling)"


def format_validation_errors(exc: ValidationError, source: str,
                             what: str = "experiment configuration",
                             model: type[BaseModel] | None = None) -> str:
    """The message of a configuration error: one line ``source: dotted.key: message`` per
    problem (unknown keys named as such, with the closest key of ``model`` at that place,
    the offending input shown), at most 12, under ``invalid {what}:``; of a union's
    alternatives only the one that got furthest."""
    lines = []
    errors = exc.errors()
    locs = [tuple(str(p) for p in e["loc"] if not _is_union_tag(p)) for e in errors]
    for err, lt in zip(errors, locs, strict=True):
        # a union (e.g. sweep.k = list | table | int) reports one error per alternative:
        # when one alternative got further (a deeper location), drop the shallow ones
        if err["type"].endswith("_type") and any(o[: len(lt)] == lt and len(o) > len(lt) for o in locs):
            continue
        loc = ".".join(lt)
        if err["type"] == "extra_forbidden":
            msg = unknown_key_message(lt[-1] if lt else "", keys_at(model, lt[:-1]))
        else:
            msg = str(err["msg"])
            # pydantic prefixes the messages of our own validators with "Value error, "
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if "input" in err and err["type"] not in ("missing", "value_error"):
                got = show(err["input"])  # inputs can be huge (a list of 10^5 values)
                msg += f" (got {got if len(got) <= 200 else got[:197] + '...'})"
        lines.append(f"{source}: {loc or '<root>'}: {msg}")
    # unions report one error per alternative: keep the list short and unique
    uniq = list(dict.fromkeys(lines))
    return f"invalid {what}:\n  " + "\n  ".join(uniq[:12])


def as_tuple(value: Any) -> Any:
    """A list as a tuple (anything else unchanged): JSON and TOML have no tuples."""
    return tuple(value) if isinstance(value, list) else value


#: put in ``Annotated[tuple[...], LISTS_AS_TUPLES]``: the strict tuple field also accepts a
#: list (a configuration read from JSON or TOML)
LISTS_AS_TUPLES = BeforeValidator(as_tuple)


class StrictConfig(BaseModel):
    """Base of every configuration model of altmarl: frozen, strict types (no silent
    coercion), unknown keys rejected (``extra="forbid"``); errors are reported by
    :func:`format_validation_errors` as ``source: dotted.key: message``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CheckedConfig(StrictConfig):
    """A :class:`StrictConfig` whose constructor and :meth:`parse` raise ``ValueError``
    (:func:`format_validation_errors`, prefix :attr:`config_source`, title
    :attr:`config_what`) and accept NumPy scalars (``np.int64(3)``) as Python numbers."""

    #: prefix of every error line (e.g. ``"config"``)
    config_source: ClassVar[str] = "config"
    #: the error message starts with ``invalid {config_what}:``
    config_what: ClassVar[str] = "configuration"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ValueError(format_validation_errors(exc, self.config_source,
                                                      self.config_what, type(self))) from None

    # validation of nested models does not go through this __init__ (the mechanism
    # pydantic-settings uses), so only the outermost model formats the message
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _numpy_scalars(cls, data: Any) -> Any:
        """NumPy scalars (``np.int64(3)``, ``np.bool_(True)``) count as Python ones."""
        if isinstance(data, dict) and any(isinstance(v, np.generic) for v in data.values()):
            return {k: v.item() if isinstance(v, np.generic) else v for k, v in data.items()}
        return data

    @classmethod
    def parse(cls, data: Any, source: str | None = None) -> Self:
        """Validate a mapping (e.g. loaded from JSON); ``ValueError`` with dotted keys."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(format_validation_errors(exc, source or cls.config_source,
                                                      cls.config_what, cls)) from None
