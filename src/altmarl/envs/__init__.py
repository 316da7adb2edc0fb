"""Registry of built-in games (SPEC 10): ``am.envs.make(name, **params)``, ``am.envs.names()``.

Built-in: ``"warehouse"`` (SPEC 8.1), ``"random"`` (seeded random games for tests and
benchmarks), ``"fleet"`` (a generative game with 100 local states, SPEC 11),
``"continuous-warehouse"`` (SPEC 8.2 as a generative game with scalar states). Register your
own with :func:`register`; :func:`parameters` lists what a factory accepts.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from altmarl._validate import is_callable_spec, resolve_callable, show, show_choices
from altmarl.envs.generative_fleet import fleet, fleet_tabular
from altmarl.envs.generative_warehouse import continuous_warehouse
from altmarl.envs.random_tabular import random_game
from altmarl.envs.tabular_warehouse import warehouse
from altmarl.game import TabularGame
from altmarl.generative.game import GenerativeGame

Game = TabularGame | GenerativeGame

_REGISTRY: dict[str, Callable[..., Game]] = {}
_DESCRIPTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class EnvInfo:
    """What ``altmarl envs`` shows of a registered game: its one-line description and its
    parameters (name -> default; ``inspect.Parameter.empty`` when required)."""

    name: str
    description: str
    params: dict[str, Any]

    def params_text(self) -> str:
        """``n=1000, gamma=0.95, ...`` (required parameters without a default)."""
        return ", ".join(k if v is inspect.Parameter.empty else f"{k}={v}"
                         for k, v in self.params.items())


def register(name: str, factory: Callable[..., Game], overwrite: bool = False,
             description: str | None = None) -> None:
    """Add a game factory under ``name`` (``description``: one line for ``altmarl envs``;
    default the first line of the factory's docstring)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory
    doc = (factory.__doc__ or "").strip().splitlines()
    _DESCRIPTIONS[name] = description or (doc[0].strip() if doc else "")


def info(name: str) -> EnvInfo:
    """Description and parameters (with defaults) of a registered game (``ValueError`` for
    an unknown name, with the closest one)."""
    factory = _factory(name)
    params: dict[str, Any] = {}
    for p in inspect.signature(factory).parameters.values():
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            params[p.name] = p.default
    return EnvInfo(name, _DESCRIPTIONS.get(name, ""), params)


def names() -> list[str]:
    """Names of the registered games."""
    return sorted(_REGISTRY)


def make(name: str, **params: Any) -> Any:
    """Build a registered game, e.g. ``make("warehouse", n=1000)``: a
    :class:`~altmarl.TabularGame` or, for generative environments such as ``"fleet"``, a
    :class:`~altmarl.GenerativeGame` (typed ``Any`` so that callers of the tabular built-ins
    need no narrowing). A key the factory does not take is a ``ValueError`` naming it (and
    the closest parameter) and listing the accepted ones.

    ``name`` may also be a user's factory ``"module:function"`` (imported, the current
    directory searched too) returning a ``GenerativeGame`` or a ``TabularGame``: that is how
    ``altmarl run my_sim:make_game`` and ``[env] name = "my_sim:make_game"`` reach your
    simulator."""
    factory = _factory(name)
    accepted = _accepted(factory)
    if accepted is not None:
        unknown = [key for key in params if key not in accepted]
        if unknown:
            close = difflib.get_close_matches(unknown[0], accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"params.{unknown[0]}: unknown parameter of env {name!r}{hint}; "
                             f"its parameters are {', '.join(accepted)}"
                             + (f" (also unknown: {', '.join(unknown[1:])})"
                                if len(unknown) > 1 else ""))
    try:
        game = factory(**params)
    except TypeError as exc:  # e.g. a required parameter missing
        raise ValueError(f"env {name!r}: bad parameters {show(sorted(params))} ({exc})") from None
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
    close = difflib.get_close_matches(str(name), names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"env = {show(name)}: unknown environment; expected one of "
                     f"{show_choices(names())} or a factory 'module:function'{hint}")


def _accepted(factory: Callable[..., Game]) -> list[str] | None:
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [key for key, p in sig.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


register("warehouse", warehouse, description="the paper's tabular warehouse (Appendix G.1): a "
         "dispatcher picks a target zone, robots move around a ring of zones")
register("random", random_game, description="a seeded random tabular game (Dirichlet "
         "transition rows, uniform rewards) for tests and benchmarks")
register("fleet", fleet, description="electric vehicles serving a campaign whose demand "
         "wears out, a generative game: 100 local states, n = 10^4 (docs/generative.md)")
register("continuous-warehouse", continuous_warehouse, description="the continuous "
         "warehouse (Appendix G.2) as a generative game: scalar robot positions in [-2, 2]")

__all__ = ["EnvInfo", "continuous_warehouse", "fleet", "fleet_tabular", "info", "make",
           "names", "parameters", "register", "warehouse", "random_game"]
