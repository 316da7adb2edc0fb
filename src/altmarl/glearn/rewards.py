"""Stochastic reward models (paper Appendix F, Assumption F.1; SPEC 4 last paragraph).

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

The simulator and ``evaluate`` draw rewards from a model with ``reward_model=...``
(:func:`altmarl.simulate.rollout_counts`); G-LEARN's randomized operator averages them
(:mod:`altmarl.glearn.stochastic`, Definition F.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import as_float_array, check_finite
from altmarl.game import TabularGame

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FAMILIES = ("none", "bernoulli", "uniform", "truncnorm", "sampler")
#: binary digits of the discretized uniform
UNIFORM_BITS = 32
_BIT_WEIGHTS = 2.0 ** np.arange(UNIFORM_BITS - 1, -1, -1)

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
        R = self.draw_range
        if R == 0:
            return 1
        return int(math.ceil(R**2 * math.log(2 * entries / delta) / (2 * eps**2)))

    @property
    def draw_range(self) -> float:
        """``R = (high_g - low_g) + (high_l - low_l)``: the range of one draw of
        ``r_g + (1/k) sum_i r_l`` (Lemma F.4)."""
        return (self.g.high - self.g.low) + (self.l.high - self.l.low)

    def hoeffding_eps(self, m: int | None, delta: float, entries: int) -> float:
        """The accuracy Lemma F.4 guarantees, with probability ``>= 1 - delta``, for every
        averaged reward of ``entries`` table entries averaged over ``m`` draws:
        ``R sqrt(ln(2 entries / delta) / (2 m))`` (``0`` when ``m`` is ``None`` or ``0``:
        exact mean rewards)."""
        R = self.draw_range
        return (R * math.sqrt(math.log(2 * entries / delta) / (2 * m))) if m else 0.0

    def __repr__(self) -> str:
        return (f"RewardModel(noise_g={self.g.kind}, noise_l={self.l.kind}, "
                f"bounds_g={self.bounds_g}, bounds_l={self.bounds_l})")


def _table(name: str, value: ArrayLike, ndim: int) -> FloatArray:
    """A read-only float64 copy of a mean table, checked (:mod:`altmarl._validate`)."""
    arr = as_float_array(name, value, ndim).copy()
    check_finite(name, arr)
    arr.setflags(write=False)
    return arr


__all__ = [
    "FAMILIES",
    "Noise",
    "RewardModel",
    "bernoulli",
    "sampler",
    "truncated_normal",
    "uniform",
]
