"""Stochastic rewards (paper Appendix F, SPEC 4 last paragraph).

A :class:`RewardModel` replaces the deterministic tables ``r_g``, ``r_l`` by families of
bounded distributions with *known* means and bounds (Assumption F.1)::

    r_g ~ D_g(s_g, a_g)          mean mean_g[s_g, a_g]          support in [low_g, high_g]
    r_l ~ D_l(s_l, s_g, a_l)     mean mean_l[s_l, s_g, a_l]     support in [low_l, high_l]

Each component is a mean table plus a noise family (:func:`uniform`,
:func:`truncated_normal`, :func:`bernoulli`, or a user :func:`sampler`); ``None`` keeps the
component deterministic. Every family can draw the *sum* of ``c`` i.i.d. rewards of one cell
at once (``sum_draws``), which is what the count simulator needs: it knows how many agents
``M[x, a]`` took action ``a`` in state ``x`` but not who they are.

* ``bernoulli(high)``: ``r = high * Bernoulli(mean / high)``; the sum of ``c`` draws is
  ``high * Binomial(c, mean / high)`` -- exact, one draw per cell.
* ``uniform(width)``: ``r = mean + width (2 U - 1)`` with ``U = (K + 1/2) / 2^32``, ``K``
  uniform on ``0 .. 2^32 - 1`` (the midpoint grid of ``2^32`` points of ``[0, 1]``, so
  ``E[U] = 1/2`` exactly). The sum of ``c`` such ``K`` is drawn exactly either as ``c``
  integers (small counts) or bit by bit, ``sum_j 2^(31-j) Binomial_j(c, 1/2)`` (the numbers
  of set bits are independent binomials): 32 draws per cell whatever ``c``. The two ways
  give the same law; which is used depends only on the counts (cheaper one).
* ``truncated_normal(sigma, clip=2)``: ``r = mean + sigma Z``, ``Z`` standard normal
  conditioned on ``|Z| <= clip`` (symmetric, so the mean is kept). No closed form for the
  sum: ``c`` standardized draws (rejection sampling) summed per cell, cost ``O(c)``.
* ``sampler(fn, low, high)``: ``fn(rng, *index_arrays) -> draws`` of the same shape, one
  draw per index; sums use ``c`` individual draws. Draws outside ``[low, high]`` or not
  finite raise ``ValueError`` (the bounds are part of the model, Assumption F.1).

The randomized empirical operator (Definition F.2, eq. 44) averages ``m`` reward draws in
place of ``r_k``; :func:`randomized_operator` builds it on top of G-LEARN's sampled
operator and :func:`g_learn_stochastic` solves it. The simulator and ``evaluate`` draw
rewards from a model with ``reward_model=...`` (:func:`altmarl.simulate.rollout_counts`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import check_choice, check_int
from altmarl.g_learn import (
    TIE_BREAKS,
    empirical_operator,
    g_learn,
    pi_l_table,
    policy_from_operator,
)
from altmarl.game import TabularGame
from altmarl.histogram import enumerate_histograms, num_histograms, num_tuples
from altmarl.policies import GlobalPolicy, LocalPolicy

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FAMILIES = ("none", "bernoulli", "uniform", "truncnorm", "sampler")
#: binary digits of the discretized uniform
UNIFORM_BITS = 32
_BIT_WEIGHTS = 2.0 ** np.arange(UNIFORM_BITS - 1, -1, -1)
#: rows of the histogram table handled per chunk by :func:`randomized_operator`
_CHUNK_ROWS = 1 << 14

SamplerFn = Callable[..., ArrayLike]


# ---------------------------------------------------------------------------
# noise families
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """A noise family, before it is attached to a mean table (see the module docstring).

    Build it with :func:`uniform`, :func:`truncated_normal`, :func:`bernoulli` or
    :func:`sampler`. ``param`` is the width / sigma / high (scalar or a table broadcastable
    to the mean table).
    """

    kind: str
    param: Any = 0.0
    clip: float = 2.0
    fn: SamplerFn | None = None
    low: float = 0.0
    high: float = 0.0

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (a sampler is described by its name only)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("uniform", "truncnorm", "bernoulli"):
            p = np.asarray(self.param, dtype=np.float64)
            out["param"] = float(p) if p.ndim == 0 else p.tolist()
        if self.kind == "truncnorm":
            out["clip"] = self.clip
        if self.kind == "sampler":
            out.update(fn=getattr(self.fn, "__name__", repr(self.fn)), low=self.low,
                       high=self.high)
        return out


def uniform(width: ArrayLike) -> Noise:
    """``r = mean + width * (2U - 1)``, ``U ~ Uniform[0, 1]`` (discretized to ``2^32`` points);
    support ``[mean - width, mean + width]``."""
    return Noise("uniform", width)


def truncated_normal(sigma: ArrayLike, clip: float = 2.0) -> Noise:
    """``r = mean + sigma Z`` with ``Z ~ N(0, 1)`` conditioned on ``|Z| <= clip``; support
    ``[mean - clip sigma, mean + clip sigma]``."""
    return Noise("truncnorm", sigma, clip=float(clip))


def bernoulli(high: ArrayLike) -> Noise:
    """``r = high * Bernoulli(mean / high)`` (needs ``0 <= mean <= high``); support
    ``{0, high}``."""
    return Noise("bernoulli", high)


def sampler(fn: SamplerFn, low: float, high: float) -> Noise:
    """A user sampler ``fn(rng, *index_arrays) -> draws`` (one draw per index, same shape),
    with known bounds ``low <= draw <= high`` (checked on every call). The mean table must
    be the sampler's true mean (it defines the mean-reward game)."""
    return Noise("sampler", fn=fn, low=float(low), high=float(high))


class _Component:
    """One reward component: a mean table with a noise family attached and validated."""

    def __init__(self, name: str, mean: FloatArray, noise: Noise | None) -> None:
        self.name = name
        self.mean = mean
        self.noise = noise if noise is not None else Noise("none")
        kind = self.noise.kind
        if kind not in FAMILIES:
            raise ValueError(f"{name}.noise.kind = {kind!r}: expected one of {list(FAMILIES)}")
        self.kind = kind
        self.param = np.zeros_like(mean)
        if kind in ("uniform", "truncnorm", "bernoulli"):
            try:
                p = np.asarray(self.noise.param, dtype=np.float64)
                p = np.broadcast_to(p, mean.shape).copy()
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name}.noise.param: expected a number or a table broadcastable to "
                    f"{mean.shape}, got {self.noise.param!r}"
                ) from None
            if not np.isfinite(p).all() or (p < 0).any():
                i = tuple(int(v) for v in np.argwhere(~(np.isfinite(p) & (p >= 0)))[0])
                raise ValueError(f"{name}.noise.param{list(i)} = {p[i]!r}: expected a finite "
                                 "number >= 0")
            self.param = p
        if kind == "truncnorm" and not (np.isfinite(self.noise.clip) and self.noise.clip > 0):
            raise ValueError(f"{name}.noise.clip = {self.noise.clip!r}: expected a number > 0")
        if kind == "bernoulli":
            bad = (mean < -1e-12) | (mean > self.param * (1 + 1e-12) + 1e-12)
            if bad.any():
                i = tuple(int(v) for v in np.argwhere(bad)[0])
                raise ValueError(
                    f"{name}{list(i)}: bernoulli noise needs 0 <= mean <= high, got mean = "
                    f"{mean[i]!r}, high = {self.param[i]!r}"
                )
        if kind == "sampler":
            lo, hi = self.noise.low, self.noise.high
            if self.noise.fn is None or not callable(self.noise.fn):
                raise ValueError(f"{name}.noise.fn: expected a callable sampler")
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name}.noise bounds: expected finite low <= high, got "
                                 f"({lo!r}, {hi!r})")
            bad = (mean < lo) | (mean > hi)
            if bad.any():
                i = tuple(int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"{name}{list(i)} = {mean[i]!r}: the mean must lie in the "
                                 f"sampler bounds [{lo}, {hi}]")

    # --- bounds (Assumption F.1) ---------------------------------------------------
    @property
    def low(self) -> float:
        """Lower end of the support of every distribution of the component."""
        if self.kind == "uniform":
            return float((self.mean - self.param).min())
        if self.kind == "truncnorm":
            return float((self.mean - self.noise.clip * self.param).min())
        if self.kind == "bernoulli":
            return float(min(0.0, self.mean.min()))
        if self.kind == "sampler":
            return float(self.noise.low)
        return float(self.mean.min())

    @property
    def high(self) -> float:
        """Upper end of the support of every distribution of the component."""
        if self.kind == "uniform":
            return float((self.mean + self.param).max())
        if self.kind == "truncnorm":
            return float((self.mean + self.noise.clip * self.param).max())
        if self.kind == "bernoulli":
            return float(max(self.param.max(), self.mean.max()))
        if self.kind == "sampler":
            return float(self.noise.high)
        return float(self.mean.max())

    # --- sampling -------------------------------------------------------------------
    def _truncnorm(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` standard normals conditioned on ``|Z| <= clip`` (rejection)."""
        z = rng.standard_normal(size)
        clip = self.noise.clip
        redo = np.flatnonzero(np.abs(z) > clip)
        while redo.size:
            z[redo] = rng.standard_normal(redo.size)
            redo = redo[np.abs(z[redo]) > clip]
        return z

    def _sampler(self, rng: np.random.Generator, idx: tuple[IntArray, ...]) -> FloatArray:
        """One draw per index (flat index arrays) from the user sampler, checked."""
        size = int(idx[0].size)
        assert self.noise.fn is not None
        try:
            draws = np.asarray(self.noise.fn(rng, *idx), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.name} sampler failed: {exc}") from None
        if draws.shape != (size,):
            raise ValueError(f"{self.name} sampler: expected {size} draws (shape ({size},)), "
                             f"got shape {draws.shape}")
        bad = ~np.isfinite(draws) | (draws < self.noise.low) | (draws > self.noise.high)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            cell = [int(i[j]) for i in idx]
            raise ValueError(f"{self.name}{cell}: sampler drew {draws[j]!r}, outside its declared "
                             f"bounds [{self.noise.low}, {self.noise.high}]")
        return draws

    def _uniform_int_sums(self, rng: np.random.Generator, cnt: IntArray) -> FloatArray:
        """Sums of ``cnt`` i.i.d. uniform integers on ``0 .. 2^B - 1`` (``B = UNIFORM_BITS``),
        exactly: one draw per integer when that is cheaper, else bit by bit,
        ``sum_j 2^(B-1-j) Binomial_j(c, 1/2)`` (the counts of set bits are independent)."""
        total = int(cnt.sum())
        if total <= 8 * UNIFORM_BITS * cnt.size:
            ints = rng.integers(0, 2**UNIFORM_BITS, size=total, dtype=np.int64)
            return _segment_sums(ints, cnt)
        bits = rng.binomial(cnt[..., None], 0.5, size=cnt.shape + (UNIFORM_BITS,))
        return np.asarray(bits.astype(np.float64) @ _BIT_WEIGHTS, dtype=np.float64)

    def sum_draws(self, rng: np.random.Generator, idx: tuple[ArrayLike, ...],
                  count: ArrayLike) -> FloatArray:
        """Sum of ``count`` i.i.d. draws of the cell ``idx`` (index arrays broadcast with
        ``count``); exact in distribution for every family (module docstring)."""
        cnt = np.asarray(count, dtype=np.int64)
        arrs = np.broadcast_arrays(*[np.asarray(i, dtype=np.int64) for i in idx], cnt)
        ix = tuple(arrs[:-1])
        cnt = np.ascontiguousarray(arrs[-1])
        if (cnt < 0).any():
            raise ValueError(f"{self.name}: negative draw count")
        mu = self.mean[ix]
        if self.kind == "none":
            return np.asarray(cnt * mu, dtype=np.float64)
        if self.kind == "bernoulli":
            high = self.param[ix]
            p = np.divide(mu, high, out=np.zeros_like(mu), where=high > 0)
            return np.asarray(high * rng.binomial(cnt, np.clip(p, 0.0, 1.0)), dtype=np.float64)
        if self.kind == "uniform":
            # U = (K + 1/2) / 2^B with K uniform on 0..2^B-1; r = mean + width (2U - 1)
            s = (self._uniform_int_sums(rng, cnt) + 0.5 * cnt) / 2.0**UNIFORM_BITS
            return np.asarray(cnt * mu + self.param[ix] * (2.0 * s - cnt), dtype=np.float64)
        if self.kind == "truncnorm":
            # location-scale: sum = c mean + sigma (sum of c standardized draws)
            z = _segment_sums(self._truncnorm(rng, int(cnt.sum())), cnt)
            return np.asarray(cnt * mu + self.param[ix] * z, dtype=np.float64)
        flat = cnt.ravel()
        cell = np.repeat(np.arange(flat.size), flat)
        draws = self._sampler(rng, tuple(i.ravel()[cell] for i in ix))
        return _segment_sums(draws, cnt)


def _segment_sums(values: NDArray[Any], counts: IntArray) -> FloatArray:
    """Sums of consecutive segments of ``values`` of lengths ``counts`` (C order), shaped
    like ``counts`` (empty segments sum to 0)."""
    flat = counts.ravel()
    out = np.zeros(flat.size, dtype=np.float64)
    nz = flat > 0
    if values.size:
        starts = np.cumsum(flat) - flat
        out[nz] = np.add.reduceat(values, starts[nz])
    return out.reshape(counts.shape)


# ---------------------------------------------------------------------------
# the reward model
# ---------------------------------------------------------------------------


class RewardModel:
    """Stochastic rewards ``r_g ~ D_g(s_g, a_g)``, ``r_l ~ D_l(s_l, s_g, a_l)`` (Appendix F).

    Parameters
    ----------
    mean_g, mean_l
        Mean tables, shapes ``(|S_g|, |A_g|)`` and ``(|S_l|, |S_g|, |A_l|)`` (the
        mean-reward game has these as ``r_g``, ``r_l``).
    noise_g, noise_l
        Noise families (:func:`uniform`, :func:`truncated_normal`, :func:`bernoulli`,
        :func:`sampler`); ``None`` = deterministic component.
    """

    def __init__(self, mean_g: ArrayLike, mean_l: ArrayLike, noise_g: Noise | None = None,
                 noise_l: Noise | None = None) -> None:
        mg = _table("mean_g", mean_g, 2)
        ml = _table("mean_l", mean_l, 3)
        if ml.shape[1] != mg.shape[0]:
            raise ValueError(f"mean_l: expected shape (|S_l|, |S_g|={mg.shape[0]}, |A_l|), got "
                             f"{ml.shape}")
        for nm, nz in (("noise_g", noise_g), ("noise_l", noise_l)):
            if nz is not None and not isinstance(nz, Noise):
                raise ValueError(f"{nm}: expected None or a Noise (uniform(...), bernoulli(...), "
                                 f"truncated_normal(...), sampler(...)), got {nz!r}")
        self.g = _Component("r_g", mg, noise_g)
        self.l = _Component("r_l", ml, noise_l)

    @classmethod
    def from_game(cls, game: TabularGame, noise_g: Noise | None = None,
                  noise_l: Noise | None = None) -> RewardModel:
        """Noise around the game's own reward tables (they become the means)."""
        return cls(game.r_g, game.r_l, noise_g, noise_l)

    # --- description ------------------------------------------------------------------
    @property
    def mean_g(self) -> FloatArray:
        return self.g.mean

    @property
    def mean_l(self) -> FloatArray:
        return self.l.mean

    @property
    def bounds_g(self) -> tuple[float, float]:
        """``(low, high)`` of every ``D_g`` (Assumption F.1)."""
        return self.g.low, self.g.high

    @property
    def bounds_l(self) -> tuple[float, float]:
        """``(low, high)`` of every ``D_l`` (Assumption F.1)."""
        return self.l.low, self.l.high

    @property
    def r_max(self) -> float:
        """Largest possible stage reward, ``max(high_g, 0) + max(high_l, 0)``."""
        return max(self.g.high, 0.0) + max(self.l.high, 0.0)

    @property
    def is_deterministic(self) -> bool:
        return self.g.kind == "none" and self.l.kind == "none"

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (for log metadata and run directories)."""
        return {"noise_g": self.g.noise.describe(), "noise_l": self.l.noise.describe(),
                "bounds_g": list(self.bounds_g), "bounds_l": list(self.bounds_l)}

    def check_game(self, game: TabularGame) -> None:
        """Raise ``ValueError`` unless the mean tables fit ``game``'s spaces."""
        if self.mean_g.shape != game.r_g.shape:
            raise ValueError(f"reward_model.mean_g: shape {self.mean_g.shape} does not match game "
                             f"{game.name!r} (r_g {game.r_g.shape})")
        if self.mean_l.shape != game.r_l.shape:
            raise ValueError(f"reward_model.mean_l: shape {self.mean_l.shape} does not match game "
                             f"{game.name!r} (r_l {game.r_l.shape})")

    def mean_game(self, game: TabularGame) -> TabularGame:
        """``game`` with the mean tables as deterministic rewards (the game whose value the
        noisy system has in expectation)."""
        self.check_game(game)
        return TabularGame(game.P_g, game.P_l, self.mean_g, self.mean_l, game.gamma, game.n,
                           game.init, f"{game.name}[mean rewards]", game.meta)

    # --- sampling -----------------------------------------------------------------------
    def sample_global(self, rng: np.random.Generator, s_g: ArrayLike, a_g: ArrayLike,
                      count: ArrayLike = 1) -> FloatArray:
        """Sum of ``count`` draws of ``D_g(s_g, a_g)`` (one per cell by default)."""
        return self.g.sum_draws(rng, (s_g, a_g), count)

    def sample_local_sum(self, rng: np.random.Generator, s_g: ArrayLike,
                         action_counts: ArrayLike) -> FloatArray:
        """``sum_{x, a} sum_{i=1..M[x, a]} r_l^i(x, s_g, a)`` per row, with
        ``action_counts`` ``M`` of shape ``(R, |S_l|, |A_l|)`` and ``s_g`` of shape ``(R,)``:
        the summed local rewards of agents whose (state, action) counts are ``M``."""
        M = np.asarray(action_counts, dtype=np.int64)
        sg = np.asarray(s_g, dtype=np.int64)
        d, A = M.shape[-2], M.shape[-1]
        x = np.arange(d)[:, None]
        a = np.arange(A)[None, :]
        draws = self.l.sum_draws(rng, (x, sg[..., None, None], a), M)
        return np.asarray(draws.sum(axis=(-2, -1)), dtype=np.float64)

    def stage_reward(self, rng: np.random.Generator, s_g: ArrayLike, a_g: ArrayLike,
                     action_counts: ArrayLike, denom: int) -> FloatArray:
        """``r_g draw + (1/denom) sum of the local draws`` of the agents counted in
        ``action_counts`` (SPEC eq. 1 with ``denom = n``; the global agent's observed reward
        with ``denom = k`` and the sample's counts)."""
        g = self.sample_global(rng, s_g, a_g)
        return np.asarray(g + self.sample_local_sum(rng, s_g, action_counts) / denom,
                          dtype=np.float64)

    def hoeffding_m(self, eps: float, delta: float, entries: int) -> int:
        """Reward draws ``m`` per entry so that every averaged reward of ``entries`` table
        entries is within ``eps`` of its mean with probability ``>= 1 - delta`` (Lemma F.4:
        Hoeffding, Theorem F.3, plus a union bound): ``m >= R^2 ln(2 entries / delta) /
        (2 eps^2)`` with ``R = (high_g - low_g) + (high_l - low_l)`` the range of one draw of
        ``r_g + (1/k) sum_i r_l``."""
        if not (eps > 0 and 0 < delta < 1 and entries >= 1):
            raise ValueError(f"hoeffding_m: expected eps > 0, 0 < delta < 1, entries >= 1; got "
                             f"{eps!r}, {delta!r}, {entries!r}")
        R = (self.g.high - self.g.low) + (self.l.high - self.l.low)
        if R == 0:
            return 1
        return int(math.ceil(R**2 * math.log(2 * entries / delta) / (2 * eps**2)))

    def __repr__(self) -> str:
        return (f"RewardModel(noise_g={self.g.kind}, noise_l={self.l.kind}, "
                f"bounds_g={self.bounds_g}, bounds_l={self.bounds_l})")


def _table(name: str, value: ArrayLike, ndim: int) -> FloatArray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a numeric {ndim}-d table") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d table, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        i = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}{list(i)} = {arr[i]}: expected a finite number")
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------------------
# the randomized empirical operator (Definition F.2, eq. 44)
# ---------------------------------------------------------------------------


def _state_counts(k: int, d: int, parameterization: str) -> IntArray:
    """Per surrogate state index, the number of agents in each local state: ``H_k`` in
    rank order (mean-field) or the counts of each ordered tuple (standard; tuple index
    ``sum_i tau_i d^(k-1-i)``, so the counts are those of its base-``d`` digits)."""
    if parameterization == "mean-field":
        return np.asarray(enumerate_histograms(k, d), dtype=np.int64)
    idx = np.arange(num_tuples(k, d), dtype=np.int64)
    counts = np.zeros((idx.size, d), dtype=np.int64)
    for _ in range(k):
        np.add.at(counts, (np.arange(idx.size), idx % d), 1)
        idx //= d
    return counts


def averaged_rewards(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int,
                     reward_model: RewardModel, m: int, seed: int = 0,
                     parameterization: str = "mean-field") -> tuple[FloatArray, FloatArray]:
    """The ``m``-draw reward averages of the randomized operator (Definition F.2).

    Returns ``(r_g_hat, r_loc_hat)``. ``r_g_hat[s_g, a_g]`` is the mean of ``m`` draws of
    ``D_g(s_g, a_g)``. ``r_loc_hat[s_g, x]`` is, for the surrogate state ``x`` (a histogram
    ``h``, or an ordered tuple and its counts ``h``), the mean over ``m`` samples ``j`` of
    ``(1/k) sum_y h[y] sum_a pi_l[y, s_g, a] rbar_j(y, s_g, a)``, where ``rbar_j(y, s_g, a)``
    is the mean of ``h[y]`` fresh draws of ``D_l(y, s_g, a)`` (one per agent of bin ``y``):
    SPEC 4's ``r_k`` with every local reward drawn and the expectation over ``pi_l`` kept
    exact, as in ``r_k``. So a model without noise gives exactly ``r_k`` (and G-LEARN's
    operator), and each sample is a convex combination of draws, bounded like one draw.

    Entry ``(s_g, x, a_g)`` of the operator uses ``r_g_hat[s_g, a_g] + r_loc_hat[s_g, x]``:
    each is an average of ``m`` i.i.d. bounded samples with the right law, the global draws
    being shared across ``x`` and the local ones across ``a_g`` (common random numbers, like
    G-LEARN's ``crn="pool"``; Lemma F.4's per-entry Hoeffding bound and union bound hold
    unchanged). Drawn from ``SeedSequence(seed).spawn(4)[3]``, a stream disjoint from the
    three G-LEARN uses, so the transitions stay those of ``g_learn(..., seed)``.
    """
    table = pi_l_table(game, pi_l)
    reward_model.check_game(game)
    S, A, d = game.n_sg, game.n_ag, game.n_sl
    ss = np.random.SeedSequence(seed).spawn(4)[3]
    ss_g, ss_l = ss.spawn(2)
    rng_g = np.random.default_rng(ss_g)
    sg_idx = np.repeat(np.arange(S), A).reshape(S, A)
    ag_idx = np.tile(np.arange(A), S).reshape(S, A)
    r_g_hat = reward_model.sample_global(rng_g, sg_idx, ag_idx, m) / m
    Hs = _state_counts(k, d, parameterization)
    N = Hs.shape[0]
    r_loc_hat = np.empty((S, N))
    x_idx = np.arange(d)[None, :, None]
    a_idx = np.arange(game.n_al)[None, None, :]
    children = ss_l.spawn(S)
    for s in range(S):
        rng = np.random.default_rng(children[s])
        for lo in range(0, N, _CHUNK_ROWS):
            hs = Hs[lo:lo + _CHUNK_ROWS]  # (B, d)
            # m h[y] draws of D_l(y, s, a) for every (y, a), weighted by pi_l[y, s, a]
            C = np.broadcast_to((m * hs)[:, :, None], hs.shape + (game.n_al,))
            draws = reward_model.l.sum_draws(rng, (x_idx, s, a_idx), C)  # (B, d, A_l)
            tot = np.einsum("bya,ya->b", draws, table[:, s, :])
            r_loc_hat[s, lo:lo + hs.shape[0]] = tot / (k * m)
    return np.asarray(r_g_hat, dtype=np.float64), r_loc_hat


def randomized_operator(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    reward_model: RewardModel,
    m: int | None = 30,
    m_reward: int | None = None,
    seed: int = 0,
    parameterization: str = "mean-field",
    crn: str | None = None,
    **kwargs: Any,
) -> Any:
    """The randomized empirical operator ``T_tilde`` of Definition F.2 (eq. 44).

    Transitions exactly as G-LEARN's :func:`~altmarl.g_learn.empirical_operator` with the
    same ``(m, seed, parameterization, crn)`` (so the only difference is the rewards);
    ``r_k`` replaced by the average of ``m_reward`` reward draws (default ``m_reward = m``;
    with ``m=None``, the exact transition expectation, ``m_reward`` must be given, or
    ``None`` for the exact mean rewards). Returns an
    :class:`~altmarl.g_learn.EmpiricalOperator`; ``kwargs`` go to ``empirical_operator``.
    """
    if not isinstance(reward_model, RewardModel):
        raise ValueError(f"reward_model: expected an altmarl.stochastic.RewardModel, got "
                         f"{type(reward_model).__name__}")
    reward_model.check_game(game)
    mr = m if m_reward is None else check_int("m_reward", m_reward, 1)
    mean_game = reward_model.mean_game(game)
    op = empirical_operator(mean_game, pi_l, k, m, seed, parameterization, crn, **kwargs)
    if mr is None:
        return op  # exact mean rewards
    r_g_hat, r_loc_hat = averaged_rewards(game, pi_l, op.k, reward_model, int(mr), seed,
                                          op.parameterization)
    model = copy.copy(op.model)
    model.r_g = r_g_hat
    model.r_loc = r_loc_hat
    draws = dict(op.draws)
    draws["reward_global"] = game.n_sg * game.n_ag * int(mr)
    draws["reward_local_agents"] = game.n_sg * op.shape[1] * op.k * int(mr)
    return dataclasses.replace(op, model=model, draws=draws)


def g_learn_stochastic(
    game: TabularGame,
    pi_l: LocalPolicy | FloatArray,
    k: int,
    reward_model: RewardModel,
    m: int | None = 30,
    m_reward: int | None = None,
    seed: int = 0,
    parameterization: str = "mean-field",
    tol: float = 1e-6,
    max_iter: int | None = None,
    solver: str = "pi",
    crn: str | None = None,
    tie_break: str = "seeded",
    **kwargs: Any,
) -> GlobalPolicy:
    """G-LEARN with stochastic rewards (Appendix F): the greedy policy of the fixed point
    of the randomized empirical operator :func:`randomized_operator`.

    Arguments as in :func:`altmarl.g_learn` plus ``reward_model`` and ``m_reward`` (reward
    draws averaged per entry; default ``m``). The result's ``info`` adds ``m_reward``,
    ``reward_model`` (description) and ``hoeffding_eps``: the accuracy that Lemma F.4
    guarantees for the averaged rewards with probability 0.95 at this ``m_reward``.
    """
    started = (time.perf_counter(), time.process_time())
    check_choice("tie_break", tie_break, TIE_BREAKS)
    op = randomized_operator(game, pi_l, k, reward_model, m, m_reward, seed, parameterization,
                             crn, **kwargs)
    mr = m if m_reward is None else int(m_reward)
    entries = int(np.prod(op.shape))
    R = (reward_model.g.high - reward_model.g.low) + (reward_model.l.high - reward_model.l.low)
    eps = (R * math.sqrt(math.log(2 * entries / 0.05) / (2 * mr))) if mr else 0.0
    extra = {"m_reward": mr, "reward_model": reward_model.describe(), "hoeffding_eps": eps}
    return policy_from_operator(game, op, seed, tie_break, tol, max_iter, solver,
                                method="g-learn-stochastic", extra_info=extra, started=started)


def mean_reward_q(game: TabularGame, pi_l: LocalPolicy | FloatArray, k: int,
                  reward_model: RewardModel, **kwargs: Any) -> FloatArray:
    """``Q`` of G-LEARN on the mean-reward game (the target of :func:`g_learn_stochastic`
    as ``m_reward`` grows); ``kwargs`` go to :func:`altmarl.g_learn`."""
    pol = g_learn(reward_model.mean_game(game), pi_l, k, **kwargs)
    assert pol.q is not None
    return pol.q


def table_size(game: TabularGame, k: int, parameterization: str = "mean-field") -> int:
    """``|S_g| N |A_g|`` with ``N = |H_k|`` or ``|S_l|^k``."""
    n = num_histograms(k, game.n_sl) if parameterization == "mean-field" else num_tuples(k, game.n_sl)
    return game.n_sg * n * game.n_ag


__all__ = [
    "Noise",
    "RewardModel",
    "averaged_rewards",
    "bernoulli",
    "g_learn_stochastic",
    "mean_reward_q",
    "randomized_operator",
    "sampler",
    "table_size",
    "truncated_normal",
    "uniform",
]
