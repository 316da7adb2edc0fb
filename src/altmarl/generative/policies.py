"""The policy protocol of generative games (SPEC 2 and 11), and small policy wrappers.

Any object with these methods acts on a :class:`~altmarl.generative.GenerativeGame`:

* a global policy: attribute ``k`` (the subsample size) and
  ``act(s_g, obs) -> a_g`` — ``s_g`` ``(R, *global_shape)``, ``obs`` the observer's summary
  ``(R, dim)`` of each rollout's fresh ``k``-sample, ``a_g`` ``(R,)`` ints;
* a local policy: ``act(s_l, s_g, rng) -> a_l`` — ``s_l`` ``(R, m, *local_shape)``, ``s_g``
  ``(R, *global_shape)``, ``a_l`` ``(R, m)`` ints (one shared policy for every agent).

Tabular :class:`altmarl.GlobalPolicy` (on count observations) and :class:`altmarl.LocalPolicy`
follow the protocol, so they act on the generative view of their game and on any generative
game with discrete states of matching sizes. :class:`FunctionGlobalPolicy`,
:class:`FunctionLocalPolicy`, :class:`UniformLocalPolicy` and :class:`UniformGlobalPolicy` wrap
hand-written rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from altmarl._validate import check_int
from altmarl.generative.game import GenerativeGame
from altmarl.generative.observe import Counts

IntArray = NDArray[np.int64]


@runtime_checkable
class GlobalActor(Protocol):
    """A global policy on ``k``-sample summaries: ``act(s_g, obs) -> a_g``."""

    k: int

    def act(self, s_g: Any, obs: Any) -> Any:
        """Batched over rollouts: ``(R, *global_shape), (R, dim) -> (R,)``."""
        ...


@runtime_checkable
class LocalActor(Protocol):
    """A shared local policy: ``act(s_l, s_g, rng) -> a_l``."""

    def act(self, s_l: Any, s_g: Any, rng: np.random.Generator) -> Any:
        """Batched over rollouts and agents: ``(R, m, ...), (R, ...) -> (R, m)``."""
        ...


class FunctionGlobalPolicy:
    """A global policy from a function ``fn(s_g, obs) -> a_g`` (e.g. a dispatcher rule)."""

    def __init__(self, k: int, fn: Callable[[Any, Any], Any], name: str = "function") -> None:
        self.k = check_int("k", k, 1)
        if not callable(fn):
            raise ValueError(f"fn = {fn!r}: expected a callable fn(s_g, obs)")
        self.fn = fn
        self.info: dict[str, Any] = {"kind": name}

    def act(self, s_g: Any, obs: Any) -> Any:
        """``fn(s_g, obs)``."""
        return self.fn(s_g, obs)

    def __repr__(self) -> str:
        return f"FunctionGlobalPolicy(k={self.k}, kind={self.info['kind']!r})"


class FunctionLocalPolicy:
    """A shared local policy from a function ``fn(s_l, s_g, rng) -> a_l``."""

    def __init__(self, fn: Callable[[Any, Any, np.random.Generator], Any],
                 name: str = "function") -> None:
        if not callable(fn):
            raise ValueError(f"fn = {fn!r}: expected a callable fn(s_l, s_g, rng)")
        self.fn = fn
        self.info: dict[str, Any] = {"kind": name}

    def act(self, s_l: Any, s_g: Any, rng: np.random.Generator) -> Any:
        """``fn(s_l, s_g, rng)``."""
        return self.fn(s_l, s_g, rng)

    def __repr__(self) -> str:
        return f"FunctionLocalPolicy(kind={self.info['kind']!r})"


class UniformLocalPolicy:
    """Every agent draws a uniform local action (SPEC 6's ``pi_l^0`` on any game)."""

    def __init__(self, num_local_actions: int) -> None:
        self.n_al = check_int("num_local_actions", num_local_actions, 1)
        self.info: dict[str, Any] = {"kind": "uniform"}

    def act(self, s_l: Any, s_g: Any, rng: np.random.Generator) -> IntArray:
        """Uniform actions of shape ``s_l.shape[:2]``."""
        shape = np.shape(s_l)[:2]
        return rng.integers(0, self.n_al, size=shape, dtype=np.int64)

    def __repr__(self) -> str:
        return f"UniformLocalPolicy(|A_l|={self.n_al})"


class UniformGlobalPolicy:
    """A global agent that plays a uniformly random action at every step, whatever it
    observes: half of "uniform play", the reference a learned dispatcher is judged against.

    Its draws come from its own generator (``seed``), in the order the simulator calls
    :meth:`act`; evaluate it with ``workers=1`` for reproducible numbers."""

    def __init__(self, num_global_actions: int, seed: int | Sequence[int] = 0, k: int = 1) -> None:
        self.n_ag = check_int("num_global_actions", num_global_actions, 1)
        self.k = check_int("k", k, 1)
        self.rng = np.random.default_rng(seed)
        self.info: dict[str, Any] = {"kind": "uniform"}

    def act(self, s_g: Any, obs: Any) -> IntArray:
        """One uniform action per rollout (the leading axis of ``s_g``)."""
        return self.rng.integers(0, self.n_ag, size=np.shape(s_g)[0], dtype=np.int64)

    def __repr__(self) -> str:
        return f"UniformGlobalPolicy(|A_g|={self.n_ag})"


def check_policies(game: GenerativeGame, pi_g: Any, pi_l: Any) -> int:
    """Check that ``(pi_g, pi_l)`` can act on ``game``; returns ``k``.

    Tabular policies (with ``n_sg`` / ``n_sl`` / ``n_ag`` attributes, or a ``table``) need
    discrete states of matching sizes and, for a global policy, count observations.
    """
    if not callable(getattr(pi_g, "act", None)) or not hasattr(pi_g, "k"):
        raise ValueError(f"pi_g = {pi_g!r}: expected a global policy with attribute k and "
                         "act(s_g, obs)")
    if not callable(getattr(pi_l, "act", None)):
        raise ValueError(f"pi_l = {pi_l!r}: expected a local policy with act(s_l, s_g, rng)")
    k = game.check_k(pi_g.k)
    if all(hasattr(pi_g, a) for a in ("n_sg", "n_sl", "n_ag")) and hasattr(pi_g, "actions"):
        if not isinstance(game.observe, Counts):
            raise ValueError(f"pi_g: a tabular global policy reads count histograms, but game "
                             f"{game.name!r} observes with {game.observe.kind!r}")
        want = (pi_g.n_sg, pi_g.n_sl, pi_g.n_ag)
        have = (game.n_sg, game.n_sl, game.n_ag)
        if want != have:
            raise ValueError(f"pi_g: made for |S_g|={want[0]}, |S_l|={want[1]}, |A_g|={want[2]}; "
                             f"game {game.name!r} has {game.spaces}")
    table = getattr(pi_l, "table", None)
    if isinstance(table, np.ndarray):
        want_l = (game.n_sl, game.n_sg, game.n_al)
        if table.shape != want_l:
            raise ValueError(f"pi_l.table: expected shape (|S_l|, |S_g|, |A_l|) = {want_l} for "
                             f"game {game.name!r}, got {table.shape}")
    return k
