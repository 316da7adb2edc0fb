"""Generative games (SPEC 11): the law of SPEC 1 given by a simulator instead of tables.

A :class:`GenerativeGame` wraps two user functions, vectorized over ``R`` rollouts and any
number ``m`` of agents::

    reset(rng, R) -> (s_g, s_l)                 s_g (R, *global_shape), s_l (R, n, *local_shape)
    step(s_g, s_l, a_g, a_l, rng) -> (s_g', s_l', r_g, r_l)
                                                a_g (R,), a_l (R, m) ints; r_g (R,), r_l (R, m)

``step`` must respect the model of SPEC 1 (``s_g'`` depends on ``(s_g, a_g)``, each
``s_i'`` on ``(s_i, s_g, a_i)`` only, independently across agents; rewards ``r_g(s_g, a_g)``
and ``r_l(s_i, s_g, a_i)``) because G-LEARN's ``k``-agent surrogate calls the same ``step``
with ``m = k`` agents. The stage reward is SPEC eq. 1, ``r_g + mean_i r_l``.

Validation: the constructor calls ``reset`` once (``R = 2``) and ``step`` on all ``n``
agents and on one agent, with a fixed private seed, to learn ``global_shape`` /
``local_shape`` and to check the outputs. Every later call through :meth:`reset` /
:meth:`step` checks shapes and dtypes (O(1)) and, with ``check="always"`` (default), finite
values, finite rewards and the range of discrete states (one pass over the arrays); with
``check="first"`` only the probe calls are checked in full. A violation raises a
``ValueError`` naming the function and the array.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._random import rng as make_rng
from altmarl._validate import check_choice, check_float, check_gamma, check_int, check_k
from altmarl.display import html_table
from altmarl.generative.observe import Counts, Histogram, Observer, bincount_rows, make_observer

ResetFn = Callable[[np.random.Generator, int], tuple[Any, Any]]
StepFn = Callable[..., tuple[Any, Any, Any, Any]]

#: seed of the construction-time probe calls (private: independent of every user seed)
PROBE_SEED = 20_260_303


class GenerativeGame:
    """A game given by ``reset`` / ``step`` functions (SPEC 11).

    Parameters
    ----------
    n
        Number of local agents.
    gamma
        Discount factor, ``0 <= gamma < 1``.
    num_global_actions, num_local_actions
        ``|A_g|`` and ``|A_l|`` (actions are ints ``0..|A|-1``).
    reset, step
        The simulator (module docstring).
    observe
        The global agent's summary of its ``k``-sample: ``"counts"`` (needs
        ``num_local_states``), ``"histogram"`` (needs ``bins``), ``"encoder"`` or an observer
        object (:mod:`altmarl.generative.observe`).
    name
        A label for files and plots.
    num_global_states, num_local_states
        Sizes when the states are discrete: ints ``0..size-1`` with shape ``()``.
        Discrete sizes let tabular policies act on the game.
    bins
        Bin edges for ``observe="histogram"``.
    r_max
        A bound on the stage reward (for the truncation bound of ``evaluate``), if known.
    r_min
        A lower bound on the stage reward, if known (rewards may be negative). With
        ``r_max`` it gives :attr:`reward_bounds`, which UPDATE needs to bound the
        truncation of its estimates (SPEC 13).
    check
        ``"always"`` (default) or ``"first"`` (module docstring).
    meta
        Free-form metadata (environment parameters) kept in files and run directories.
    """

    def __init__(
        self,
        n: int,
        gamma: float,
        num_global_actions: int,
        num_local_actions: int,
        reset: ResetFn,
        step: StepFn,
        observe: str | Observer = "counts",
        name: str = "generative",
        *,
        num_global_states: int | None = None,
        num_local_states: int | None = None,
        bins: ArrayLike | None = None,
        r_max: float | None = None,
        r_min: float | None = None,
        check: str = "always",
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.n = check_int("n", n, 1)
        self.gamma = check_gamma(gamma)
        self.n_ag = check_int("num_global_actions", num_global_actions, 1)
        self.n_al = check_int("num_local_actions", num_local_actions, 1)
        if not callable(reset):
            raise ValueError(f"reset = {reset!r}: expected a callable reset(rng, R)")
        if not callable(step):
            raise ValueError(f"step = {step!r}: expected a callable "
                             "step(s_g, s_l, a_g, a_l, rng)")
        self.reset_fn = reset
        self.step_fn = step
        self.n_sg = None if num_global_states is None else check_int("num_global_states",
                                                                     num_global_states, 1)
        self.n_sl = None if num_local_states is None else check_int("num_local_states",
                                                                    num_local_states, 1)
        self.observe: Observer = make_observer(observe, self.n_sl, bins)
        if isinstance(self.observe, Counts):
            if self.n_sl is None:
                self.n_sl = int(self.observe.num_local_states)
            elif self.n_sl != self.observe.num_local_states:
                raise ValueError(f"observe: counts over {self.observe.num_local_states} states, "
                                 f"but num_local_states = {self.n_sl}")
        self.name = str(name)
        self.r_max = None if r_max is None else check_float("r_max", r_max, 0.0)
        self.r_min = None if r_min is None else check_float("r_min", r_min)
        if self.r_min is not None and self.r_max is not None and self.r_min > self.r_max:
            raise ValueError(f"r_min = {r_min!r}: expected r_min <= r_max = {r_max!r}")
        self.check = check_choice("check", check, ["always", "first"])
        self.meta: dict[str, Any] = dict(meta or {})
        # shapes, learned from the probe
        self.global_shape: tuple[int, ...] = ()
        self.local_shape: tuple[int, ...] = ()
        self._full_check = True
        self._probe()
        self._full_check = self.check == "always"
        self.obs_dim = int(self.observe.dim(self.local_shape))

    # --- sizes -------------------------------------------------------------------------
    @property
    def discrete_global(self) -> bool:
        """Whether global states are ints ``0..|S_g|-1``."""
        return self.n_sg is not None

    @property
    def discrete_local(self) -> bool:
        """Whether local states are ints ``0..|S_l|-1``."""
        return self.n_sl is not None

    @property
    def population_bins(self) -> int | None:
        """How records bin the whole population (occupancy, mode, plots): ``|S_l|`` for
        discrete local states, the observer's bins for a histogram of scalar states, else
        ``None``."""
        if self.n_sl is not None:
            return self.n_sl
        if isinstance(self.observe, Histogram):
            return len(self.observe.edges) + 1
        return None

    def population_counts(self, s_l: NDArray[Any]) -> NDArray[np.int64]:
        """Agents per population bin (:attr:`population_bins`), ``(R, n) -> (R, bins)``."""
        if self.n_sl is not None:
            return bincount_rows(np.asarray(s_l), self.n_sl)
        if isinstance(self.observe, Histogram):
            return self.observe(s_l)
        raise ValueError(f"game {self.name!r}: the population has no bins (vector local "
                         "states with a set encoder)")

    def bin_of_global(self, s_g: NDArray[Any]) -> NDArray[np.int64] | None:
        """The population bin that names the same place as the global state, when there is
        one: ``min(s_g, bins - 1)`` for discrete global states (as the tabular records), the
        histogram bin of a scalar global state; else ``None``."""
        bins = self.population_bins
        if bins is None:
            return None
        if self.n_sg is not None:
            return np.minimum(np.asarray(s_g, dtype=np.int64), bins - 1)
        if self.global_shape == () and isinstance(self.observe, Histogram):
            return np.asarray(np.searchsorted(np.asarray(self.observe.edges), s_g,
                                              side="right"), dtype=np.int64)
        return None

    @property
    def num_global_actions(self) -> int:
        """``|A_g|``."""
        return self.n_ag

    @property
    def num_local_actions(self) -> int:
        """``|A_l|``."""
        return self.n_al

    @property
    def num_global_states(self) -> int | None:
        """``|S_g|`` when discrete."""
        return self.n_sg

    @property
    def num_local_states(self) -> int | None:
        """``|S_l|`` when discrete."""
        return self.n_sl

    @property
    def spaces(self) -> dict[str, int]:
        """The four space sizes (``-1`` for a non-discrete state space), as in
        :attr:`altmarl.TabularGame.spaces`."""
        return {"S_g": -1 if self.n_sg is None else self.n_sg, "A_g": self.n_ag,
                "S_l": -1 if self.n_sl is None else self.n_sl, "A_l": self.n_al}

    def check_k(self, k: Any) -> int:
        """Validate a subsample size (``1 <= k <= n``)."""
        return check_k(k, self.n)

    @property
    def reward_bounds(self) -> tuple[float, float] | None:
        """``(r_min, r_max)`` of the stage reward when both are declared, else ``None``
        (UPDATE's truncation bound, :func:`altmarl.update.truncation_bias`)."""
        if self.r_min is None or self.r_max is None:
            return None
        return float(self.r_min), float(self.r_max)

    def fingerprint(self) -> str:
        """A short hash of the name, spaces, shapes, discount and metadata (identifies the
        game a policy file was made for; a tabular view uses its table's fingerprint)."""
        tab = self.meta.get("tabular_fingerprint")
        if isinstance(tab, str):
            return tab
        desc = {"name": self.name, "spaces": self.spaces, "global_shape": self.global_shape,
                "local_shape": self.local_shape, "gamma": repr(self.gamma),
                "observe": self.observe.to_json(),
                "meta": {k: repr(v) for k, v in sorted(self.meta.items())}}
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]

    # --- validated calls ---------------------------------------------------------------
    def reset(self, rng: np.random.Generator, R: int) -> tuple[NDArray[Any], NDArray[Any]]:
        """``R`` initial states ``(s_g, s_l)`` from the user's ``reset``, checked."""
        out = self.reset_fn(rng, int(R))
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise ValueError(f"reset returned {type(out).__name__}: expected a pair (s_g, s_l)")
        s_g = self._state("reset", "s_g", out[0], (int(R),), self.global_shape, self.n_sg)
        s_l = self._state("reset", "s_l", out[1], (int(R), self.n), self.local_shape, self.n_sl)
        return s_g, s_l

    def step(self, s_g: NDArray[Any], s_l: NDArray[Any], a_g: NDArray[np.int64],
             a_l: NDArray[np.int64], rng: np.random.Generator
             ) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.float64], NDArray[np.float64]]:
        """One transition of ``R`` rollouts with ``m = s_l.shape[1]`` agents, checked."""
        R, m = int(s_l.shape[0]), int(s_l.shape[1])
        out = self.step_fn(s_g, s_l, a_g, a_l, rng)
        if not isinstance(out, tuple | list) or len(out) != 4:
            raise ValueError(f"step returned {type(out).__name__}: expected a tuple "
                             "(s_g', s_l', r_g, r_l)")
        g2 = self._state("step", "s_g'", out[0], (R,), self.global_shape, self.n_sg)
        l2 = self._state("step", "s_l'", out[1], (R, m), self.local_shape, self.n_sl)
        r_g = self._reward("r_g", out[2], (R,))
        r_l = self._reward("r_l", out[3], (R, m))
        return g2, l2, r_g, r_l

    def _state(self, fn: str, what: str, value: Any, lead: tuple[int, ...],
               shape: tuple[int, ...], size: int | None) -> NDArray[Any]:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{fn} returned {what} of dtype {arr.dtype}: expected a numeric "
                             "array")
        expected = lead + shape
        if arr.shape != expected:
            names = "(R, *global_shape)" if len(lead) == 1 else "(R, n_agents, *local_shape)"
            raise ValueError(f"{fn} returned {what} of shape {arr.shape}: expected {names} = "
                             f"{expected}")
        if size is not None and arr.dtype.kind not in "iu":
            raise ValueError(f"{fn} returned {what} of dtype {arr.dtype}: expected integer "
                             f"states 0..{size - 1} (the game declares {size} discrete states)")
        if self._full_check:
            if size is not None:
                if arr.size and (arr.min() < 0 or arr.max() >= size):
                    bad = (arr < 0) | (arr >= size)
                    i = tuple(int(x) for x in np.argwhere(bad)[0])
                    raise ValueError(f"{fn} returned {what}{list(i)} = {arr[i]}: expected a "
                                     f"state in 0..{size - 1}")
            elif arr.dtype.kind == "f" and not np.isfinite(arr).all():
                i = tuple(int(x) for x in np.argwhere(~np.isfinite(arr))[0])
                raise ValueError(f"{fn} returned {what}{list(i)} = {arr[i]}: expected finite "
                                 "states")
        return arr

    def _reward(self, what: str, value: Any, expected: tuple[int, ...]) -> NDArray[np.float64]:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"step returned {what} of dtype {arr.dtype}: expected real rewards")
        if arr.shape != expected:
            names = "(R,)" if len(expected) == 1 else "(R, n_agents)"
            raise ValueError(f"step returned {what} of shape {arr.shape}: expected {names} = "
                             f"{expected}")
        arr = np.asarray(arr, dtype=np.float64)
        if self._full_check and not np.isfinite(arr).all():
            i = tuple(int(x) for x in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"step returned {what}{list(i)} = {arr[i]}: expected finite rewards")
        return arr

    def _probe(self) -> None:
        """Call ``reset`` and ``step`` once (fixed private seed) to learn the shapes and
        check every output in full."""
        rng = make_rng(PROBE_SEED)
        out = self.reset_fn(rng, 2)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise ValueError(f"reset returned {type(out).__name__}: expected a pair (s_g, s_l)")
        g, loc = np.asarray(out[0]), np.asarray(out[1])
        if g.ndim < 1 or g.shape[0] != 2:
            raise ValueError(f"reset(rng, 2) returned s_g of shape {g.shape}: expected "
                             "(R, *global_shape) with R = 2")
        if loc.ndim < 2 or loc.shape[:2] != (2, self.n):
            raise ValueError(f"reset(rng, 2) returned s_l of shape {loc.shape}: expected "
                             f"(R, n_agents, *local_shape) with R = 2, n_agents = n = {self.n}")
        self.global_shape = tuple(int(x) for x in g.shape[1:])
        self.local_shape = tuple(int(x) for x in loc.shape[2:])
        for what, size, shape in (("s_g", self.n_sg, self.global_shape),
                                  ("s_l", self.n_sl, self.local_shape)):
            if size is not None and shape != ():
                raise ValueError(f"reset returned {what} with per-element shape {shape}: "
                                 "discrete states (num_*_states given) must be scalar ints")
        s_g = self._state("reset", "s_g", out[0], (2,), self.global_shape, self.n_sg)
        s_l = self._state("reset", "s_l", out[1], (2, self.n), self.local_shape, self.n_sl)
        a_g = rng.integers(0, self.n_ag, size=2)
        for m in sorted({self.n, 1}, reverse=True):
            a_l = rng.integers(0, self.n_al, size=(2, m))
            self.step(s_g, s_l[:, :m], a_g, a_l, rng)

    def __repr__(self) -> str:
        return (f"GenerativeGame(name={self.name!r}, n={self.n}, gamma={self.gamma}, "
                f"|A_g|={self.n_ag}, |A_l|={self.n_al}, S_g={self.n_sg or self.global_shape}, "
                f"S_l={self.n_sl or self.local_shape}, observe={self.observe.kind!r})")

    def _repr_html_(self) -> str:
        """Notebook display: name, population, discount, spaces, the global agent's summary."""
        return html_table("GenerativeGame", [
            ("name", self.name),
            ("n (local agents)", self.n),
            ("gamma", self.gamma),
            ("|A_g|, |A_l|", f"{self.n_ag}, {self.n_al}"),
            ("global states", self.n_sg or f"shape {self.global_shape}"),
            ("local states", self.n_sl or f"shape {self.local_shape}"),
            ("observation of the k-sample", self.observe.kind),
            ("stage reward in", self.reward_bounds),
        ])
