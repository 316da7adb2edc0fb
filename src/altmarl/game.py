"""The game model (SPEC section 1) and its validation.

One global agent and ``n`` exchangeable local agents on finite spaces::

    P_g[s_g, a_g, s_g']          global transition            (|S_g|, |A_g|, |S_g|)
    P_l[s_l, s_g, a_l, s_l']     local transition (uses the *current* s_g)
                                                               (|S_l|, |S_g|, |A_l|, |S_l|)
    r_g[s_g, a_g]                global reward                (|S_g|, |A_g|)
    r_l[s_l, s_g, a_l]           local reward                 (|S_l|, |S_g|, |A_l|)

Stage reward (SPEC eq. 1): ``r(s, a) = r_g(s_g, a_g) + (1/n) sum_i r_l(s_i, s_g, a_i)``.

Every constructor validates its input and raises :class:`ValueError` naming the
field, the offending index and the expected value.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from altmarl._validate import (
    as_float_array,
    check_finite,
    check_gamma,
    check_int,
    check_k,
    check_stochastic,
    first_bad_index,
)
from altmarl.display import html_table
from altmarl.generative.game import GenerativeGame
from altmarl.generative.tabular import tabular_view
from altmarl.io import check_members, load_npz, save_npz, to_jsonable
from altmarl.limits import INT64_MAX, MAX_ABS_REWARD

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: ``meta["format"]`` / ``meta["version"]`` of a file written by :meth:`TabularGame.save`
GAME_FORMAT = "altmarl.tabular_game"
GAME_FORMAT_VERSION = 1


class RewardWarning(UserWarning):
    """Raised (as a warning) when rewards violate Assumption 2.2 (non-negativity)."""


# ---------------------------------------------------------------------------
# initial distributions
# ---------------------------------------------------------------------------


class InitialDistribution(Protocol):
    """Distribution of the initial state ``(s_g, N)`` of the ``n``-agent system."""

    def sample(
        self, rng: np.random.Generator, size: int, n: int
    ) -> tuple[IntArray, IntArray]:
        """Draw ``size`` initial states: ``s_g`` of shape ``(size,)`` and counts ``(size, |S_l|)``."""
        ...

    def log_pmf(self, s_g: IntArray, counts: IntArray, n: int) -> FloatArray:
        """Exact log-probability of each initial state (used by the exact solver)."""
        ...

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable description (for run directories)."""
        ...


def _multinomial_log_coef(counts: IntArray, n: int) -> FloatArray:
    return np.asarray(gammaln(n + 1) - gammaln(counts + 1).sum(axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class IIDInit:
    """``s_g ~ rho_g`` and every local state i.i.d. ``~ rho_l`` (SPEC 1 default: uniform)."""

    rho_g: FloatArray
    rho_l: FloatArray

    def sample(self, rng: np.random.Generator, size: int, n: int) -> tuple[IntArray, IntArray]:
        s_g = rng.choice(self.rho_g.size, size=size, p=self.rho_g).astype(np.int64)
        counts = rng.multinomial(n, self.rho_l, size=size).astype(np.int64)
        return s_g, counts

    def log_pmf(self, s_g: IntArray, counts: IntArray, n: int) -> FloatArray:
        with np.errstate(divide="ignore"):
            lg = np.log(self.rho_g)[s_g]
            ll = np.log(self.rho_l)
        term = np.where(counts > 0, counts * ll, 0.0).sum(axis=-1)
        return np.asarray(lg + _multinomial_log_coef(counts, n) + term, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"type": "iid", "rho_g": self.rho_g.tolist(), "rho_l": self.rho_l.tolist()}


@dataclass(frozen=True)
class DirichletInit:
    """``s_g ~ rho_g``; population proportions ``~ Dirichlet(alpha)``; each agent's state
    drawn from them (SPEC 8.1, the warehouse). The counts are Dirichlet-multinomial."""

    rho_g: FloatArray
    alpha: FloatArray

    def sample(self, rng: np.random.Generator, size: int, n: int) -> tuple[IntArray, IntArray]:
        s_g = rng.choice(self.rho_g.size, size=size, p=self.rho_g).astype(np.int64)
        props = rng.dirichlet(self.alpha, size=size)
        # guard against round-off in the Dirichlet draw
        props = props / props.sum(axis=1, keepdims=True)
        counts = rng.multinomial(n, props).astype(np.int64)
        return s_g, counts

    def log_pmf(self, s_g: IntArray, counts: IntArray, n: int) -> FloatArray:
        with np.errstate(divide="ignore"):
            lg = np.log(self.rho_g)[s_g]
        a = self.alpha
        a0 = a.sum()
        term = (
            gammaln(a0)
            - gammaln(n + a0)
            + (gammaln(counts + a) - gammaln(a)).sum(axis=-1)
        )
        return np.asarray(lg + _multinomial_log_coef(counts, n) + term, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"type": "dirichlet", "rho_g": self.rho_g.tolist(), "alpha": self.alpha.tolist()}


@dataclass(frozen=True)
class TypedInit:
    """Initial law of a typed population (SPEC 12): ``s_g ~ rho_g``; exactly ``n_c`` agents
    of type ``c``, each starting i.i.d. in a state ``x`` of its type with probability
    ``rho_l[x] / sum_{y of type c} rho_l[y]`` (default: uniform over the states of its type).
    The counts of type ``c`` are ``Multinomial(n_c, .)``, independent across types."""

    rho_g: FloatArray
    rho_l: FloatArray
    types: IntArray
    type_counts: tuple[int, ...]

    def _groups(self) -> list[tuple[IntArray, FloatArray]]:
        out = []
        for c in range(len(self.type_counts)):
            g = np.flatnonzero(self.types == c)
            p = self.rho_l[g]
            out.append((g, p / p.sum()))
        return out

    def sample(self, rng: np.random.Generator, size: int, n: int) -> tuple[IntArray, IntArray]:
        s_g = rng.choice(self.rho_g.size, size=size, p=self.rho_g).astype(np.int64)
        counts = np.zeros((size, self.rho_l.size), dtype=np.int64)
        for (g, p), nc in zip(self._groups(), self.type_counts, strict=True):
            counts[:, g] = rng.multinomial(nc, p, size=size)
        return s_g, counts

    def log_pmf(self, s_g: IntArray, counts: IntArray, n: int) -> FloatArray:
        counts = np.asarray(counts, dtype=np.int64)
        with np.errstate(divide="ignore"):
            out = np.log(self.rho_g)[s_g].astype(np.float64)
        for (g, p), nc in zip(self._groups(), self.type_counts, strict=True):
            sub = counts[..., g]
            with np.errstate(divide="ignore"):
                lp = np.log(p)
            term = np.where(sub > 0, sub * lp, 0.0).sum(axis=-1)
            ok = sub.sum(axis=-1) == nc
            out = out + np.where(ok, _multinomial_log_coef(sub, nc) + term, -np.inf)
        return np.asarray(out, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"type": "typed", "rho_g": self.rho_g.tolist(), "rho_l": self.rho_l.tolist(),
                "types": self.types.tolist(), "type_counts": list(self.type_counts)}


@dataclass(frozen=True)
class TypedDirichletInit:
    """:class:`DirichletInit` per type (SPEC 12): ``s_g ~ rho_g``; for each type ``c``
    independently, proportions over the states of the type ``~ Dirichlet(alpha[S_c])`` and
    ``n_c`` agents drawn from them (Dirichlet-multinomial counts). The typed warehouse uses
    it."""

    rho_g: FloatArray
    alpha: FloatArray
    types: IntArray
    type_counts: tuple[int, ...]

    def sample(self, rng: np.random.Generator, size: int, n: int) -> tuple[IntArray, IntArray]:
        s_g = rng.choice(self.rho_g.size, size=size, p=self.rho_g).astype(np.int64)
        counts = np.zeros((size, self.alpha.size), dtype=np.int64)
        for c, nc in enumerate(self.type_counts):
            g = np.flatnonzero(self.types == c)
            props = rng.dirichlet(self.alpha[g], size=size)
            props = props / props.sum(axis=1, keepdims=True)
            counts[:, g] = rng.multinomial(nc, props)
        return s_g, counts

    def log_pmf(self, s_g: IntArray, counts: IntArray, n: int) -> FloatArray:
        counts = np.asarray(counts, dtype=np.int64)
        with np.errstate(divide="ignore"):
            out = np.log(self.rho_g)[s_g].astype(np.float64)
        for c, nc in enumerate(self.type_counts):
            g = np.flatnonzero(self.types == c)
            sub, a = counts[..., g], self.alpha[g]
            a0 = a.sum()
            term = (gammaln(a0) - gammaln(nc + a0)
                    + (gammaln(sub + a) - gammaln(a)).sum(axis=-1))
            ok = sub.sum(axis=-1) == nc
            out = out + np.where(ok, _multinomial_log_coef(sub, nc) + term, -np.inf)
        return np.asarray(out, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"type": "typed-dirichlet", "rho_g": self.rho_g.tolist(),
                "alpha": self.alpha.tolist(), "types": self.types.tolist(),
                "type_counts": list(self.type_counts)}


def init_from_json(d: dict[str, Any]) -> InitialDistribution:
    """Rebuild an initial distribution written by ``to_json``."""
    kind = d.get("type")
    if kind == "iid":
        return IIDInit(np.asarray(d["rho_g"], float), np.asarray(d["rho_l"], float))
    if kind == "dirichlet":
        return DirichletInit(np.asarray(d["rho_g"], float), np.asarray(d["alpha"], float))
    if kind == "typed-dirichlet":
        return TypedDirichletInit(np.asarray(d["rho_g"], float), np.asarray(d["alpha"], float),
                                  np.asarray(d["types"], np.int64),
                                  tuple(int(v) for v in d["type_counts"]))
    if kind == "typed":
        return TypedInit(np.asarray(d["rho_g"], float), np.asarray(d["rho_l"], float),
                         np.asarray(d["types"], np.int64),
                         tuple(int(v) for v in d["type_counts"]))
    raise ValueError(f"init.type = {kind!r}: expected 'iid', 'dirichlet', 'typed' or "
                     "'typed-dirichlet'")


# ---------------------------------------------------------------------------
# the game
# ---------------------------------------------------------------------------

InitSpec = InitialDistribution | tuple[ArrayLike, ArrayLike] | None


@dataclass(frozen=True, eq=False)
class TabularGame:
    """A finite cooperative game with one global agent and ``n`` local agents (SPEC 1).

    Parameters
    ----------
    P_g, P_l, r_g, r_l
        Transition and reward tables, shapes as in the module docstring.
    gamma
        Discount factor, ``0 <= gamma < 1``.
    n
        Number of local agents (``>= 1``).
    init
        Initial distribution: ``None`` (uniform ``s_g``, i.i.d. uniform local states),
        a pair ``(rho_g, rho_l)``, or an :class:`InitialDistribution` object. For a typed
        game: ``None`` (uniform ``s_g``, each agent uniform over the states of its type),
        a pair (``rho_l`` is normalized within each type) or a :class:`TypedInit`.
    name
        A label used in files and plots.
    types, type_counts
        A typed population (SPEC 12, paper Appendix H): ``types[s_l]`` in ``0..C-1`` is the
        type of local state ``s_l`` (every type has at least one state) and exactly
        ``type_counts[c] >= 1`` agents have type ``c`` (``sum = n``). ``P_l`` must never move
        an agent to a state of another type. Default: one type (``types = 0``,
        ``type_counts = (n,)``).
    """

    P_g: FloatArray
    P_l: FloatArray
    r_g: FloatArray
    r_l: FloatArray
    gamma: float
    n: int
    init: InitialDistribution = field(default=None)  # type: ignore[assignment]
    name: str = "game"
    #: free-form metadata (e.g. environment parameters) kept in run directories
    meta: dict[str, Any] = field(default_factory=dict)
    #: the type of each local state (SPEC 12), ``(|S_l|,)`` ints in ``0..C-1``
    types: IntArray = field(default=None)  # type: ignore[arg-type]
    #: agents per type, ``sum = n``
    type_counts: tuple[int, ...] = ()

    def __init__(
        self,
        P_g: ArrayLike,
        P_l: ArrayLike,
        r_g: ArrayLike,
        r_l: ArrayLike,
        gamma: float,
        n: int,
        init: InitSpec = None,
        name: str = "game",
        meta: dict[str, Any] | None = None,
        *,
        types: ArrayLike | None = None,
        type_counts: ArrayLike | None = None,
    ) -> None:
        pg = as_float_array("P_g", P_g, 3)
        pl = as_float_array("P_l", P_l, 4)
        rg = as_float_array("r_g", r_g, 2)
        rl = as_float_array("r_l", r_l, 3)
        n_sg, n_ag, n_sg2 = pg.shape
        if n_sg2 != n_sg:
            raise ValueError(
                f"P_g: expected shape (|S_g|, |A_g|, |S_g|), got {pg.shape} "
                f"(last axis {n_sg2} != first axis {n_sg})"
            )
        n_sl, n_sg_l, n_al, n_sl2 = pl.shape
        if n_sg_l != n_sg:
            raise ValueError(
                f"P_l: expected shape (|S_l|, |S_g|={n_sg}, |A_l|, |S_l|), got {pl.shape}"
            )
        if n_sl2 != n_sl:
            raise ValueError(
                f"P_l: expected shape (|S_l|, |S_g|, |A_l|, |S_l|), got {pl.shape} "
                f"(last axis {n_sl2} != first axis {n_sl})"
            )
        if rg.shape != (n_sg, n_ag):
            raise ValueError(f"r_g: expected shape (|S_g|, |A_g|) = {(n_sg, n_ag)}, got {rg.shape}")
        if rl.shape != (n_sl, n_sg, n_al):
            raise ValueError(
                f"r_l: expected shape (|S_l|, |S_g|, |A_l|) = {(n_sl, n_sg, n_al)}, got {rl.shape}"
            )
        check_stochastic("P_g", pg)
        check_stochastic("P_l", pl)
        check_finite("r_g", rg)
        check_finite("r_l", rl)
        for rname, rv in (("r_g", rg), ("r_l", rl)):
            big = np.abs(rv) > MAX_ABS_REWARD
            if big.any():
                i = first_bad_index(big)
                raise ValueError(f"{rname}{list(i)} = {float(rv[i])!r}: expected |r| <= "
                                 f"{MAX_ABS_REWARD:g} (values must stay finite)")
        g = check_gamma(gamma)
        nn = check_int("n", n, 1, INT64_MAX)
        if (rg < 0).any() or (rl < 0).any():
            warnings.warn(
                f"{name}: negative rewards (min r_g = {rg.min():g}, min r_l = {rl.min():g}); "
                "Assumption 2.2 expects rewards >= 0: theory bounds and the UPDATE "
                "tolerance assume it",
                RewardWarning,
                stacklevel=2,
            )
        tt, tc = check_types(types, type_counts, n_sl, nn)
        if len(tc) > 1:
            check_type_preserving(pl, tt)
        init_obj = _make_init(init, n_sg, n_sl, tt, tc)
        tt.setflags(write=False)
        object.__setattr__(self, "types", tt)
        object.__setattr__(self, "type_counts", tc)
        for a, v in (("P_g", pg), ("P_l", pl), ("r_g", rg), ("r_l", rl)):
            v.setflags(write=False)
            object.__setattr__(self, a, v)
        object.__setattr__(self, "gamma", g)
        object.__setattr__(self, "n", nn)
        object.__setattr__(self, "init", init_obj)
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "meta", dict(meta or {}))

    # --- sizes ---------------------------------------------------------------
    @property
    def n_sg(self) -> int:
        """``|S_g|``."""
        return int(self.P_g.shape[0])

    @property
    def n_ag(self) -> int:
        """``|A_g|``."""
        return int(self.P_g.shape[1])

    @property
    def n_sl(self) -> int:
        """``|S_l|``."""
        return int(self.P_l.shape[0])

    @property
    def n_al(self) -> int:
        """``|A_l|``."""
        return int(self.P_l.shape[2])

    @property
    def n_types(self) -> int:
        """``C``, the number of agent types (1 for an untyped game)."""
        return len(self.type_counts)

    @property
    def typed(self) -> bool:
        """Whether the population has more than one type (SPEC 12)."""
        return self.n_types > 1

    @property
    def spaces(self) -> dict[str, int]:
        """The four space sizes, as a dict (used to check policy files)."""
        return {"S_g": self.n_sg, "A_g": self.n_ag, "S_l": self.n_sl, "A_l": self.n_al}

    # --- reward bounds (Assumption 2.2) ---------------------------------------
    @property
    def r_g_max(self) -> float:
        return float(max(self.r_g.max(), 0.0))

    @property
    def r_l_max(self) -> float:
        return float(max(self.r_l.max(), 0.0))

    @property
    def r_max(self) -> float:
        """``r_max = r_g_max + r_l_max`` (Assumption 2.2; negative parts clipped to 0).
        UPDATE's truncation bound uses the true bounds, :attr:`reward_bounds`."""
        return self.r_g_max + self.r_l_max

    @property
    def reward_bounds(self) -> tuple[float, float]:
        """True ``(r_min, r_max)`` of the stage reward ``r_g(s_g, a_g) + mean_i
        r_l(s_i, s_g, a_i)`` (SPEC eq. 1, 13): extremes over ``s_g`` of the global reward's
        extreme plus the local reward's extreme at that ``s_g``. Rewards may be negative
        (no clipping at 0), so ``r_max - r_min`` is the span that bounds value
        differences and truncation biases (:func:`altmarl.update.truncation_bias`)."""
        lo = self.r_g.min(axis=1) + self.r_l.min(axis=(0, 2))
        hi = self.r_g.max(axis=1) + self.r_l.max(axis=(0, 2))
        return float(lo.min()), float(hi.max())

    @property
    def rho_g(self) -> FloatArray | None:
        """Initial global-state distribution, when fixed."""
        return getattr(self.init, "rho_g", None)

    @property
    def rho_l(self) -> FloatArray | None:
        """Initial local-state distribution (i.i.d. agents), when fixed."""
        return getattr(self.init, "rho_l", None)

    # --- helpers ---------------------------------------------------------------
    def check_k(self, k: Any) -> int:
        """Validate a subsample size for this game (``1 <= k <= n``)."""
        return check_k(k, self.n)

    def with_n(self, n: int, type_counts: ArrayLike | None = None) -> TabularGame:
        """The same game with another population size. A typed game takes the new
        ``type_counts`` (default: the current shares, rounded by largest remainder, at
        least one agent per type)."""
        if not self.typed:
            return TabularGame(self.P_g, self.P_l, self.r_g, self.r_l, self.gamma, n,
                               self.init, self.name, self.meta)
        nn = check_int("n", n, self.n_types)
        _, tc = check_types(self.types, scale_counts(self.type_counts, nn)
                            if type_counts is None else type_counts, self.n_sl, nn)
        init: InitSpec = self.init
        if isinstance(self.init, TypedInit):
            init = (self.init.rho_g, self.init.rho_l)
        elif isinstance(self.init, TypedDirichletInit):
            init = TypedDirichletInit(self.init.rho_g, self.init.alpha, self.init.types, tc)
        return TabularGame(self.P_g, self.P_l, self.r_g, self.r_l, self.gamma, nn, init,
                           self.name, self.meta, types=self.types, type_counts=tc)

    def as_generative(self, check: str = "first") -> GenerativeGame:
        """This game as a :class:`~altmarl.generative.GenerativeGame` with the same law
        (SPEC 11): per-agent states, count observations, the tables' rewards."""
        return tabular_view(self, check=check)

    def fingerprint(self) -> str:
        """SHA-256 of the dynamics, rewards and discount (not ``n``): identifies the game
        a policy file was made for, independent of the population size."""
        h = hashlib.sha256()
        for arr in (self.P_g, self.P_l, self.r_g, self.r_l):
            h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
            h.update(str(arr.shape).encode())
        h.update(repr(self.gamma).encode())
        if self.typed:  # untyped games keep their fingerprint
            h.update(b"types" + np.ascontiguousarray(self.types, dtype="<i8").tobytes())
        return h.hexdigest()[:16]

    def sample_init(self, rng: np.random.Generator, size: int) -> tuple[IntArray, IntArray]:
        """Draw ``size`` initial states ``(s_g, counts)`` (for a typed game, checked to have
        the per-type sums ``type_counts``)."""
        s_g, counts = self.init.sample(rng, size, self.n)
        if self.typed and not isinstance(self.init, TypedInit | TypedDirichletInit):
            sums = np.stack([counts[:, self.types == c].sum(axis=1)
                             for c in range(self.n_types)], axis=1)
            if np.any(sums != np.asarray(self.type_counts)):
                raise ValueError(f"game.init: drew per-type counts {sums[0].tolist()}, expected "
                                 f"type_counts = {list(self.type_counts)} (typed game "
                                 f"{self.name!r})")
        return s_g, counts

    def joint_kernel(self, pi_l_table: ArrayLike) -> FloatArray:
        """Joint law of one agent's action and next state under a shared local policy
        (SPEC 1, 3): ``J[..., x, s_g, a, x'] = pi_l[..., x, s_g, a] P_l[x, s_g, a, x']``.

        ``pi_l_table`` has shape ``(..., |S_l|, |S_g|, |A_l|)`` (leading axes: a batch of
        tables); the result ``(..., |S_l|, |S_g|, |A_l|, |S_l|)``. Summed over ``a`` it is
        :meth:`local_kernel`. One product per entry, so any caller's layout of it gives the
        same bits. The count simulator's step draws ``Multinomial(N[x], J[x, s_g])``.
        """
        table = np.asarray(pi_l_table, dtype=np.float64)
        expected = (self.n_sl, self.n_sg, self.n_al)
        if table.shape[-3:] != expected:
            raise ValueError(f"pi_l table: expected shape (..., |S_l|, |S_g|, |A_l|) = "
                             f"(..., {expected}), got {table.shape}")
        return np.asarray(table[..., None] * self.P_l, dtype=np.float64)

    def local_kernel(self, pi_l_table: FloatArray) -> FloatArray:
        """``K[x, s_g, x'] = sum_a pi_l[x, s_g, a] P_l[x, s_g, a, x']`` (SPEC 7): the
        state-to-state kernel of one agent, :meth:`joint_kernel` summed over actions."""
        return np.einsum("xga,xgay->xgy", pi_l_table, self.P_l)

    def local_reward(self, pi_l_table: FloatArray) -> FloatArray:
        """``rbar[x, s_g] = sum_a pi_l[x, s_g, a] r_l[x, s_g, a]``."""
        return np.einsum("xga,xga->xg", pi_l_table, self.r_l)

    # --- files -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the game to ``path`` (``.npz`` appended when missing): the four tables as
        arrays and a JSON ``meta`` (format, version, name, gamma, n, initial distribution,
        fingerprint, free-form meta), pickle-free (:func:`altmarl.io.save_npz`). Only
        :class:`IIDInit` / :class:`DirichletInit` (or any ``init`` with ``to_json``) can be
        stored. Returns the path written."""
        meta = {"format": GAME_FORMAT, "version": GAME_FORMAT_VERSION, "name": self.name,
                "gamma": self.gamma, "n": self.n, "init": self.init.to_json(),
                "spaces": self.spaces, "fingerprint": self.fingerprint(), "meta": self.meta}
        if self.typed:
            meta["types"] = self.types.tolist()
            meta["type_counts"] = list(self.type_counts)
        return save_npz(path, to_jsonable(meta),
                        {"P_g": self.P_g, "P_l": self.P_l, "r_g": self.r_g, "r_l": self.r_l})

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             spaces: Mapping[str, int] | None = None) -> TabularGame:
        """Read a game written by :meth:`save`; every table is validated by the constructor.

        ``spaces`` (e.g. ``other_game.spaces``) optionally states the sizes the caller
        expects. Raises ``ValueError`` naming the file for a file of another format or
        version, missing tables, tables of another shape than ``spaces`` or than the
        file's own metadata, invalid tables, or a fingerprint that does not match.
        """
        meta, arrays = load_npz(path, "tabular-game file")
        if meta.get("format") != GAME_FORMAT:
            raise ValueError(f"{path}: not a tabular-game file (format {meta.get('format')!r}, "
                             f"expected {GAME_FORMAT!r})")
        if meta.get("version") != GAME_FORMAT_VERSION:
            raise ValueError(f"{path}: tabular-game file version {meta.get('version')!r}, "
                             f"expected {GAME_FORMAT_VERSION}")
        check_members(path, arrays, ("P_g", "P_l", "r_g", "r_l"), "tabular-game file")
        missing = [key for key in ("P_g", "P_l", "r_g", "r_l") if key not in arrays]
        missing += [key for key in ("gamma", "n", "init") if key not in meta]
        if missing:
            raise ValueError(f"{path}: tabular-game file without {missing}")
        try:
            game = cls(arrays["P_g"], arrays["P_l"], arrays["r_g"], arrays["r_l"],
                       meta["gamma"], meta["n"], init=init_from_json(meta["init"]),
                       name=meta.get("name", "game"), meta=meta.get("meta") or {},
                       types=meta.get("types"), type_counts=meta.get("type_counts"))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        for label, want in (("the file's metadata", meta.get("spaces")), ("expected", spaces)):
            if want is not None and dict(want) != game.spaces:
                raise ValueError(f"{path}: a game with spaces {game.spaces}; {label}: "
                                 f"{dict(want)}")
        fp = meta.get("fingerprint")
        if fp is not None and fp != game.fingerprint():
            raise ValueError(f"{path}: the tables' fingerprint {game.fingerprint()} differs "
                             f"from the recorded {fp!r} (file altered or corrupt)")
        return game

    def __repr__(self) -> str:
        typed = f", type_counts={list(self.type_counts)}" if self.typed else ""
        return (
            f"TabularGame(name={self.name!r}, |S_g|={self.n_sg}, |A_g|={self.n_ag}, "
            f"|S_l|={self.n_sl}, |A_l|={self.n_al}, n={self.n}, gamma={self.gamma}{typed})"
        )

    def _repr_html_(self) -> str:
        """Notebook display: name, spaces, population, discount, reward bounds, types."""
        r_min, r_max = self.reward_bounds
        rows: list[tuple[str, Any]] = [
            ("name", self.name),
            ("|S_g|, |A_g|", f"{self.n_sg}, {self.n_ag}"),
            ("|S_l|, |A_l|", f"{self.n_sl}, {self.n_al}"),
            ("n (local agents)", self.n),
            ("gamma", self.gamma),
            ("stage reward in", (r_min, r_max)),
        ]
        if self.typed:
            rows.append(("agents per type", list(self.type_counts)))
        rows.append(("fingerprint", self.fingerprint()))
        return html_table("TabularGame", rows)


def check_game(game: Any, name: str = "game") -> TabularGame:
    """``game`` itself if it is a :class:`TabularGame`, else a ``ValueError`` naming
    ``name`` and the type it got."""
    if not isinstance(game, TabularGame):
        raise ValueError(f"{name}: expected an altmarl.TabularGame, got {type(game).__name__}")
    return game


def check_recorded_game(recorded: Mapping[str, Any] | None, game: Any, prefix: str,
                        noun: str, strict: bool, *, required: bool = False) -> None:
    """Refuse a file, log or dataset recorded for another game (the game-fingerprint check).

    ``recorded`` is what the file records about its game (``{"name", "fingerprint", ...}``,
    as written by :func:`game_record`; anything but a mapping counts as nothing recorded),
    ``game`` the game it is used with (anything with ``name`` and ``fingerprint()``:
    :meth:`TabularGame.fingerprint`, :meth:`GenerativeGame.fingerprint`). With ``strict``,
    a recorded fingerprint that differs from ``game``'s raises a ``ValueError``
    ``"{prefix}: {noun} game NAME (fingerprint FP), not for|on GAME (fingerprint FP'); pass
    strict=False ..."`` (the preposition is the last word of ``noun``: ``"policy made
    for"``, ``"log recorded on"``). A missing fingerprint is accepted unless ``required``.
    ``strict=False`` checks nothing (the caller checks the spaces)."""
    if not strict:
        return
    rec: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    fp = rec.get("fingerprint")
    if fp is None and not required:
        return
    mine = game.fingerprint()
    if fp == mine:
        return
    prep = noun.rsplit(" ", 1)[-1]
    what = "no fingerprint recorded" if fp is None else f"fingerprint {fp}"
    raise ValueError(f"{prefix}: {noun} game {rec.get('name')!r} ({what}), not {prep} "
                     f"{game.name!r} (fingerprint {mine}); pass strict=False to use it on a "
                     "game with the same spaces anyway")


def game_record(game: TabularGame | GenerativeGame) -> dict[str, Any]:
    """What a policy file, log or run record stores about its game: ``name``,
    ``fingerprint`` and ``n`` (checked on load by :func:`check_recorded_game`)."""
    return {"name": game.name, "fingerprint": game.fingerprint(), "n": game.n}


def check_types(types: ArrayLike | None, type_counts: ArrayLike | None, n_sl: int,
                n: int) -> tuple[IntArray, tuple[int, ...]]:
    """The validated ``(types, type_counts)`` of a game (SPEC 12): labels ``0..C-1`` on the
    ``|S_l|`` local states, none empty, and ``C`` counts ``>= 1`` summing to ``n``; both
    ``None`` is the untyped game (one type). ``ValueError`` naming the field otherwise."""
    if types is None and type_counts is None:
        return np.zeros(n_sl, dtype=np.int64), (n,)
    if types is None or type_counts is None:
        missing = "types" if types is None else "type_counts"
        raise ValueError(f"{missing}: a typed game needs both types and type_counts")
    t = np.asarray(types)
    if t.shape != (n_sl,):
        raise ValueError(f"types: expected one label per local state, shape ({n_sl},), got "
                         f"{t.shape}")
    if t.dtype.kind not in "iu" and not (t.dtype.kind == "f" and np.all(t == np.round(t))):
        raise ValueError(f"types: expected integer labels, got dtype {t.dtype}")
    t = t.astype(np.int64)
    tc_arr = np.asarray(type_counts)
    if tc_arr.ndim != 1 or tc_arr.size == 0:
        raise ValueError(f"type_counts: expected a sequence (n_0, ..., n_(C-1)), got "
                         f"{type_counts!r}"[:200])
    C = int(tc_arr.size)
    bad = np.flatnonzero((t < 0) | (t >= C))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"types[{i}] = {t[i]}: expected a label in 0..{C - 1} "
                         f"(C = {C} = len(type_counts))")
    for c in range(C):
        if not (t == c).any():
            raise ValueError(f"types: type {c} has no local state (labels must be 0..{C - 1}, "
                             "none empty)")
    tc = tuple(check_int(f"type_counts[{c}]", v, 1) for c, v in enumerate(tc_arr.tolist()))
    if sum(tc) != n:
        raise ValueError(f"type_counts: sum {sum(tc)} != n = {n} (exactly n_c agents of type c, "
                         "sum = n)")
    return t, tc


def check_type_preserving(P_l: FloatArray, types: IntArray) -> None:
    """``ValueError`` naming ``P_l`` and the index when ``P_l`` moves an agent to a state of
    another type (SPEC 12: an agent's type never changes)."""
    cross = types[:, None, None, None] != types[None, None, None, :]
    bad = (P_l > 0) & cross
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"P_l{list(i)} = {float(P_l[i])!r}: moves an agent of type {types[i[0]]} "
                         f"(state {i[0]}) to state {i[3]} of type {types[i[3]]}; expected 0 "
                         "(P_l never changes an agent's type)")


def scale_counts(counts: tuple[int, ...], n: int) -> tuple[int, ...]:
    """``counts`` rescaled to sum ``n`` (largest remainder), each at least 1."""
    C = len(counts)
    tot = sum(counts)
    base = [max(1, (c * (n - C)) // tot) for c in counts]
    # distribute what is left by largest remainder of the exact shares
    left = n - sum(base)
    rema = sorted(range(C), key=lambda i: -(counts[i] * n / tot - base[i]))
    for j in range(max(0, left)):
        base[rema[j % C]] += 1
    return tuple(base)


def _make_init(init: InitSpec, n_sg: int, n_sl: int, types: IntArray | None = None,
               type_counts: tuple[int, ...] = ()) -> InitialDistribution:
    if len(type_counts) > 1:
        assert types is not None
        return _make_typed_init(init, n_sg, n_sl, types, type_counts)
    if init is None:
        return IIDInit(np.full(n_sg, 1.0 / n_sg), np.full(n_sl, 1.0 / n_sl))
    if isinstance(init, tuple):
        if len(init) != 2:
            raise ValueError("init: expected a pair (rho_g, rho_l) or an InitialDistribution")
        rho_g = as_float_array("init.rho_g", init[0], 1)
        rho_l = as_float_array("init.rho_l", init[1], 1)
        init = IIDInit(rho_g, rho_l)
    if isinstance(init, IIDInit):
        if init.rho_g.shape != (n_sg,):
            raise ValueError(f"init.rho_g: expected shape ({n_sg},), got {init.rho_g.shape}")
        if init.rho_l.shape != (n_sl,):
            raise ValueError(f"init.rho_l: expected shape ({n_sl},), got {init.rho_l.shape}")
        check_stochastic("init.rho_g", init.rho_g)
        check_stochastic("init.rho_l", init.rho_l)
    elif isinstance(init, DirichletInit):
        if init.rho_g.shape != (n_sg,):
            raise ValueError(f"init.rho_g: expected shape ({n_sg},), got {init.rho_g.shape}")
        check_stochastic("init.rho_g", init.rho_g)
        if init.alpha.shape != (n_sl,) or not (np.isfinite(init.alpha).all() and (init.alpha > 0).all()):
            raise ValueError(
                f"init.alpha: expected {n_sl} finite positive concentrations, got {init.alpha!r}"
            )
    elif not (hasattr(init, "sample") and hasattr(init, "log_pmf")):
        raise ValueError(
            "init: expected None, a pair (rho_g, rho_l) or an object with sample() and log_pmf()"
        )
    return init


def _make_typed_init(init: InitSpec, n_sg: int, n_sl: int, types: IntArray,
                     type_counts: tuple[int, ...]) -> InitialDistribution:
    """The initial law of a typed game: :class:`TypedInit` from ``None`` / a pair / a
    ``TypedInit``; another object with ``sample`` and ``log_pmf`` is accepted (its draws
    are checked for the per-type sums); an i.i.d. or Dirichlet law over all of ``S_l``
    is refused (it would not keep ``n_c`` agents per type)."""
    if isinstance(init, IIDInit | DirichletInit):
        raise ValueError(f"init: a {type(init).__name__} does not keep type_counts agents per "
                         "type; pass a pair (rho_g, rho_l) or an altmarl.game.TypedInit")
    if init is None or isinstance(init, tuple):
        if isinstance(init, tuple) and len(init) != 2:
            raise ValueError("init: expected a pair (rho_g, rho_l) or an InitialDistribution")
        rho_g = (np.full(n_sg, 1.0 / n_sg) if init is None
                 else as_float_array("init.rho_g", init[0], 1))
        rho_l = np.ones(n_sl) if init is None else as_float_array("init.rho_l", init[1], 1)
        if rho_g.shape != (n_sg,):
            raise ValueError(f"init.rho_g: expected shape ({n_sg},), got {rho_g.shape}")
        check_stochastic("init.rho_g", rho_g)
        if rho_l.shape != (n_sl,) or not (np.isfinite(rho_l).all() and (rho_l >= 0).all()):
            raise ValueError(f"init.rho_l: expected {n_sl} finite non-negative weights")
        for c in range(len(type_counts)):
            if not (rho_l[types == c] > 0).any():
                raise ValueError(f"init.rho_l: no mass on the states of type {c}")
        t = types.copy()
        t.setflags(write=False)
        return TypedInit(rho_g, rho_l, t, tuple(type_counts))
    if isinstance(init, TypedDirichletInit):
        if (init.rho_g.shape != (n_sg,) or init.alpha.shape != (n_sl,)
                or not np.array_equal(init.types, types)
                or tuple(init.type_counts) != tuple(type_counts)):
            raise ValueError("init: a TypedDirichletInit for other spaces, types or "
                             "type_counts than the game's")
        check_stochastic("init.rho_g", init.rho_g)
        if not (np.isfinite(init.alpha).all() and (init.alpha > 0).all()):
            raise ValueError(f"init.alpha: expected {n_sl} finite positive concentrations")
        return init
    if isinstance(init, TypedInit):
        if (init.rho_g.shape != (n_sg,) or init.rho_l.shape != (n_sl,)
                or not np.array_equal(init.types, types)
                or tuple(init.type_counts) != tuple(type_counts)):
            raise ValueError("init: a TypedInit for other spaces, types or type_counts than "
                             "the game's")
        return init
    if not (hasattr(init, "sample") and hasattr(init, "log_pmf")):
        raise ValueError(
            "init: expected None, a pair (rho_g, rho_l) or an object with sample() and log_pmf()"
        )
    return init


def softmax(logits: FloatArray, axis: int = -1) -> FloatArray:
    """Numerically stable softmax (rows of the built-in environments)."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=axis, keepdims=True), dtype=np.float64)


RewardFn = Callable[..., FloatArray]
