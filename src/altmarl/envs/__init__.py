"""Registry of built-in games (SPEC 10): ``am.envs.make(name, **params)``, ``am.envs.names()``.

Built-in: ``"warehouse"`` (SPEC 8.1), ``"random"`` (seeded random games for tests and
benchmarks), ``"fleet"`` (a generative game with 100 local states, SPEC 11),
``"continuous-warehouse"`` (SPEC 8.2 as a generative game with scalar states). Register your
own with :func:`register`; :func:`parameters` lists what a factory accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from altmarl._validate import is_callable_spec, resolve_callable
from altmarl.envs.generative_fleet import fleet, fleet_tabular
from altmarl.envs.generative_warehouse import continuous_warehouse
from altmarl.envs.random_tabular import random_game
from altmarl.envs.tabular_warehouse import warehouse
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame

Game = TabularGame | GenerativeGame

_REGISTRY: dict[str, Callable[..., Game]] = {}


def register(name: str, factory: Callable[..., Game], overwrite: bool = False) -> None:
    """Add a game factory under ``name``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Names of the registered games."""
    return sorted(_REGISTRY)


def make(name: str, **params: Any) -> Any:
    """Build a registered game, e.g. ``make("warehouse", n=1000)``: a
    :class:`~altmarl.TabularGame` or, for generative environments such as ``"fleet"``, a
    :class:`~altmarl.GenerativeGame` (typed ``Any`` so that callers of the tabular built-ins
    need no narrowing). A key the factory does not take is a ``ValueError`` listing the
    unknown keys and the accepted ones.

    ``name`` may also be a user's factory ``"module:function"`` (imported, the current
    directory searched too) returning a ``GenerativeGame`` or a ``TabularGame``: that is how
    ``altmarl run my_sim:make_game`` and ``[env] name = "my_sim:make_game"`` reach your
    simulator."""
    factory = _factory(name)
    accepted = _accepted(factory)
    if accepted is not None:
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"env {name!r}: unknown parameter(s) {unknown}; accepted: "
                             f"{accepted}")
    try:
        game = factory(**params)
    except TypeError as exc:  # e.g. a required parameter missing
        raise ValueError(f"env {name!r}: bad parameters {sorted(params)} ({exc})") from None
    if name not in _REGISTRY and not isinstance(game, TabularGame | GenerativeGame):
        raise ValueError(f"env {name!r} returned {type(game).__name__}: expected an "
                         "altmarl.GenerativeGame or altmarl.TabularGame")
    return game


def parameters(name: str) -> list[str] | None:
    """The keyword parameters the factory of env ``name`` accepts, in signature order
    (``None`` when it takes ``**kwargs``, i.e. any key)."""
    return _accepted(_factory(name))


def _factory(name: str) -> Callable[..., Game]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if is_callable_spec(name):
        return resolve_callable("env", name)
    raise ValueError(f"env = {name!r}: unknown environment; expected one of {names()} or a "
                     "factory 'module:function'")


def _accepted(factory: Callable[..., Game]) -> list[str] | None:
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [key for key, p in sig.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


register("warehouse", warehouse)
register("random", random_game)
register("fleet", fleet)
register("continuous-warehouse", continuous_warehouse)

__all__ = ["continuous_warehouse", "fleet", "fleet_tabular", "make", "names", "parameters",
           "register", "warehouse", "random_game"]
