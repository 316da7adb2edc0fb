"""Estimating the tabular game (SPEC 1) of a simulator from observed transitions.

The federated simulator (:mod:`altmarl.federated.simulator`) is not a table: it trains a
real model. To run ALTERNATING-MARL on it we estimate a :class:`~altmarl.TabularGame`
``(P_g, P_l, r_g, r_l)`` from rounds simulated under exploratory policies (certainty
equivalence). The estimator is generic — it only sees transitions — and is tested on
synthetic tabular games, where it must recover the true tables.

Statistics (:class:`TransitionCounts`, accumulated with ``np.add.at``, vectorized over
clients): ``N_g[s_g, a_g, s_g']`` and the sum of ``r_g`` per ``(s_g, a_g)``; ``N_l[s_l,
s_g, a_l, s_l']`` and the sum of ``r_l`` per ``(s_l, s_g, a_l)`` (every client of every
round is one local transition); the initial ``s_g`` and local states of each episode.

Estimator (:func:`estimate_game`), additive (Laplace-style) smoothing with pseudo-count
``alpha`` toward a *hierarchical prior* instead of toward the uniform row, because the
states are ordered buckets and "jump anywhere" is a bad default:

* ``P_hat[row] = (N[row, :] + alpha * prior[row]) / (N[row] + alpha)``;
* global prior of ``(s_g, a_g)``: the row pooled over actions at ``s_g``; if ``s_g`` was
  never visited, a self-loop ``e_{s_g}``;
* local prior of ``(s_l, s_g, a_l)``: the row pooled over actions at ``(s_l, s_g)``; if
  that is empty, the row pooled over global states at ``(s_l, a_l)``; if that is empty
  too, a self-loop ``e_{s_l}``;
* rewards the same way: ``r_hat = (sum r + alpha * r_prior) / (N + alpha)`` with the
  prior mean taken at the same fallback level (last level: the mean of all observed
  rewards of that kind, or 0 when there are none).

A visited row converges to the empirical frequency (consistent as ``N -> infinity``);
an unvisited row is exactly its prior, so every row is a valid distribution. The
initial distribution is ``IIDInit(rho_g, rho_l)`` with the empirical frequencies of the
episodes' first states (uniform when no episode was recorded).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from altmarl._validate import check_int, check_positive
from altmarl.game import IIDInit, TabularGame
from altmarl.io import atomic_write_bytes
from altmarl.policies import GlobalPolicy, LocalPolicy

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

COUNTS_FORMAT = "altmarl.transition_counts"
COUNTS_VERSION = 1


def _idx(name: str, v: ArrayLike, size: int) -> IntArray:
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer states/actions, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= size):
        raise ValueError(f"{name}: expected values in 0..{size - 1}, got range "
                         f"[{a.min()}, {a.max()}]")
    return a


def _rew(name: str, v: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    r = np.broadcast_to(np.asarray(v, dtype=np.float64), shape)
    if not np.isfinite(r).all():
        raise ValueError(f"{name}: expected finite rewards")
    return r


@dataclass
class TransitionCounts:
    """Sufficient statistics of observed transitions of a game with the given sizes.

    ``g_counts (S_g, A_g, S_g)``, ``g_reward (S_g, A_g)`` (sum of ``r_g``), ``l_counts
    (S_l, S_g, A_l, S_l)``, ``l_reward (S_l, S_g, A_l)`` (sum of ``r_l``), ``init_g
    (S_g,)`` and ``init_l (S_l,)`` (first-state counts), ``episodes`` recorded.
    """

    n_sg: int
    n_ag: int
    n_sl: int
    n_al: int
    g_counts: FloatArray = field(init=False)
    g_reward: FloatArray = field(init=False)
    l_counts: FloatArray = field(init=False)
    l_reward: FloatArray = field(init=False)
    init_g: FloatArray = field(init=False)
    init_l: FloatArray = field(init=False)
    episodes: int = 0

    def __post_init__(self) -> None:
        for name in ("n_sg", "n_ag", "n_sl", "n_al"):
            check_int(name, getattr(self, name), 1)
        S, A, L, B = self.n_sg, self.n_ag, self.n_sl, self.n_al
        self.g_counts = np.zeros((S, A, S))
        self.g_reward = np.zeros((S, A))
        self.l_counts = np.zeros((L, S, B, L))
        self.l_reward = np.zeros((L, S, B))
        self.init_g = np.zeros(S)
        self.init_l = np.zeros(L)

    @classmethod
    def for_game(cls, game: TabularGame) -> TransitionCounts:
        """Empty statistics with the sizes of ``game``."""
        return cls(game.n_sg, game.n_ag, game.n_sl, game.n_al)

    # --- accumulation ------------------------------------------------------------
    def add_global(self, s_g: ArrayLike, a_g: ArrayLike, r_g: ArrayLike,
                   s_g_next: ArrayLike) -> None:
        """Record global transitions ``(s_g, a_g, r_g, s_g')`` (1-d arrays or scalars)."""
        s = _idx("s_g", s_g, self.n_sg).ravel()
        a = _idx("a_g", a_g, self.n_ag).ravel()
        s2 = _idx("s_g_next", s_g_next, self.n_sg).ravel()
        if not (s.shape == a.shape == s2.shape):
            raise ValueError(f"add_global: s_g, a_g, s_g_next must have the same length, got "
                             f"{s.shape}, {a.shape}, {s2.shape}")
        r = _rew("r_g", r_g, s.shape)
        np.add.at(self.g_counts, (s, a, s2), 1.0)
        np.add.at(self.g_reward, (s, a), r)

    def add_local(self, s_l: ArrayLike, s_g: ArrayLike, a_l: ArrayLike, r_l: ArrayLike,
                  s_l_next: ArrayLike) -> None:
        """Record local transitions; ``s_g`` broadcasts against ``s_l`` (e.g. one global
        state per round and one row of clients per round)."""
        x = _idx("s_l", s_l, self.n_sl)
        g = _idx("s_g", s_g, self.n_sg)
        if g.ndim == 1 and x.ndim == 2 and g.shape[0] == x.shape[0]:
            g = g[:, None]  # one global state per row (round) of clients
        try:
            g = np.broadcast_to(g, x.shape)
        except ValueError:
            raise ValueError(f"add_local: s_g of shape {g.shape} does not broadcast against "
                             f"s_l of shape {x.shape}") from None
        a = _idx("a_l", a_l, self.n_al)
        x2 = _idx("s_l_next", s_l_next, self.n_sl)
        if not (x.shape == g.shape == a.shape == x2.shape):
            raise ValueError(f"add_local: s_l, s_g, a_l, s_l_next must have matching shapes, "
                             f"got {x.shape}, {g.shape}, {a.shape}, {x2.shape}")
        r = _rew("r_l", r_l, x.shape)
        np.add.at(self.l_counts, (x.ravel(), g.ravel(), a.ravel(), x2.ravel()), 1.0)
        np.add.at(self.l_reward, (x.ravel(), g.ravel(), a.ravel()), r.ravel())

    def add_init(self, s_g: int, s_l: ArrayLike) -> None:
        """Record the first state of an episode (``s_g`` and all local states)."""
        self.init_g[_idx("s_g", np.asarray([s_g]), self.n_sg)[0]] += 1.0
        x = _idx("s_l", s_l, self.n_sl).ravel()
        self.init_l += np.bincount(x, minlength=self.n_sl) / max(x.size, 1)
        self.episodes += 1

    def merge(self, other: TransitionCounts) -> TransitionCounts:
        """Add another set of statistics (same sizes) into this one; returns ``self``."""
        if other.sizes != self.sizes:
            raise ValueError(f"merge: sizes {other.sizes} differ from {self.sizes}")
        for f in ("g_counts", "g_reward", "l_counts", "l_reward", "init_g", "init_l"):
            getattr(self, f).__iadd__(getattr(other, f))
        self.episodes += other.episodes
        return self

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """``(|S_g|, |A_g|, |S_l|, |A_l|)``."""
        return (self.n_sg, self.n_ag, self.n_sl, self.n_al)

    # --- files ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an ``.npz`` (``allow_pickle=False`` readable) with JSON metadata."""
        import io

        meta = {"format": COUNTS_FORMAT, "version": COUNTS_VERSION,
                "sizes": list(self.sizes), "episodes": self.episodes}
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), g_counts=self.g_counts,
                 g_reward=self.g_reward, l_counts=self.l_counts, l_reward=self.l_reward,
                 init_g=self.init_g, init_l=self.init_l)
        p = Path(path)
        atomic_write_bytes(p, buf.getvalue())
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransitionCounts:
        """Read a file written by :meth:`save` (validated)."""
        with np.load(path, allow_pickle=False) as z:
            try:
                meta = json.loads(str(z["meta"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}: not a transition-counts file ({exc})") from None
            if meta.get("format") != COUNTS_FORMAT or meta.get("version") != COUNTS_VERSION:
                raise ValueError(f"{path}: expected format {COUNTS_FORMAT!r} version "
                                 f"{COUNTS_VERSION}, got {meta.get('format')!r} "
                                 f"{meta.get('version')!r}")
            out = cls(*[int(v) for v in meta["sizes"]])
            for f in ("g_counts", "g_reward", "l_counts", "l_reward", "init_g", "init_l"):
                arr = np.asarray(z[f], dtype=np.float64)
                if arr.shape != getattr(out, f).shape or not np.isfinite(arr).all():
                    raise ValueError(f"{path}: array {f!r} has shape {arr.shape}, expected "
                                     f"{getattr(out, f).shape} (finite)")
                setattr(out, f, arr)
            out.episodes = int(meta.get("episodes", 0))
        return out


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------


def _smooth(counts: FloatArray, rsum: FloatArray, prior_p: FloatArray, prior_r: FloatArray,
            alpha: float) -> tuple[FloatArray, FloatArray]:
    n = counts.sum(axis=-1)
    P = (counts + alpha * prior_p) / (n + alpha)[..., None]
    r = (rsum + alpha * prior_r) / (n + alpha)
    return P, r


def _pooled(counts: FloatArray, rsum: FloatArray, axis: int) -> tuple[FloatArray, FloatArray,
                                                                       FloatArray]:
    """Row and mean reward pooled over ``axis`` (kept as a length-1 axis), and the count."""
    c = counts.sum(axis=axis, keepdims=True)
    n = c.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = c / n[..., None]
        r = rsum.sum(axis=axis, keepdims=True) / n
    return p, r, n


def _fallback(levels: list[tuple[FloatArray, FloatArray, FloatArray]], self_loop: FloatArray,
              r_default: float, shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray,
                                                                  NDArray[np.int64]]:
    """First non-empty level per row (``levels`` broadcast to ``shape``); else self-loop."""
    prior_p = np.broadcast_to(self_loop, (*shape, self_loop.shape[-1])).copy()
    prior_r = np.full(shape, r_default)
    level = np.full(shape, len(levels), dtype=np.int64)
    for lv in range(len(levels) - 1, -1, -1):
        p, r, n = levels[lv]
        ok = np.broadcast_to(n > 0, shape)
        prior_p = np.where(ok[..., None], np.broadcast_to(np.nan_to_num(p), prior_p.shape),
                           prior_p)
        prior_r = np.where(ok, np.broadcast_to(np.nan_to_num(r), shape), prior_r)
        level = np.where(ok, lv, level)
    return prior_p, prior_r, level


@dataclass
class EstimationReport:
    """Coverage of the estimate: visits per row and how each row's prior was chosen.

    ``g_visits (S_g, A_g)``, ``l_visits (S_l, S_g, A_l)``; ``g_level`` / ``l_level`` the
    prior level used (0 = pooled over actions, 1 = pooled over global states (local
    rows only), last = self-loop); ``alpha``.
    """

    g_visits: FloatArray
    l_visits: FloatArray
    g_level: IntArray
    l_level: IntArray
    alpha: float

    def summary(self) -> dict[str, Any]:
        """JSON-friendly scalars."""
        return {
            "alpha": self.alpha,
            "global_rows": int(self.g_visits.size),
            "global_rows_unvisited": int((self.g_visits == 0).sum()),
            "global_visits_min": float(self.g_visits.min()),
            "global_visits_median": float(np.median(self.g_visits)),
            "local_rows": int(self.l_visits.size),
            "local_rows_unvisited": int((self.l_visits == 0).sum()),
            "local_rows_below_30": int((self.l_visits < 30).sum()),
            "local_visits_median": float(np.median(self.l_visits)),
            "global_transitions": float(self.g_visits.sum()),
            "local_transitions": float(self.l_visits.sum()),
        }


def estimate_game(counts: TransitionCounts, gamma: float, n: int, alpha: float = 1.0,
                  name: str = "estimated", meta: dict[str, Any] | None = None,
                  ) -> tuple[TabularGame, EstimationReport]:
    """Certainty-equivalent :class:`~altmarl.TabularGame` from transition statistics
    (module docstring: smoothing toward a hierarchical prior with pseudo-count
    ``alpha > 0``; every row valid, visited rows consistent).

    Returns the game (validated by its constructor) and an :class:`EstimationReport`.
    """
    check_positive("alpha", alpha)
    S, A, L, B = counts.sizes
    # global rows
    g_n = counts.g_counts.sum(axis=-1)
    tot = g_n.sum()
    rg_default = float(counts.g_reward.sum() / tot) if tot > 0 else 0.0
    lv_g = [_pooled(counts.g_counts, counts.g_reward, axis=1)]
    pp, pr, g_level = _fallback(lv_g, np.eye(S)[:, None, :], rg_default, (S, A))
    P_g, r_g = _smooth(counts.g_counts, counts.g_reward, pp, pr, alpha)
    # local rows
    l_n = counts.l_counts.sum(axis=-1)
    tot_l = l_n.sum()
    rl_default = float(counts.l_reward.sum() / tot_l) if tot_l > 0 else 0.0
    lv_l = [_pooled(counts.l_counts, counts.l_reward, axis=2),
            _pooled(counts.l_counts, counts.l_reward, axis=1)]
    pp, pr, l_level = _fallback(lv_l, np.eye(L)[:, None, None, :], rl_default, (L, S, B))
    P_l, r_l = _smooth(counts.l_counts, counts.l_reward, pp, pr, alpha)
    # exact renormalization against round-off
    P_g /= P_g.sum(axis=-1, keepdims=True)
    P_l /= P_l.sum(axis=-1, keepdims=True)
    if counts.episodes > 0:
        rho_g = counts.init_g / counts.init_g.sum()
        rho_l = counts.init_l / counts.init_l.sum()
    else:
        rho_g, rho_l = np.full(S, 1.0 / S), np.full(L, 1.0 / L)
    report = EstimationReport(g_n, l_n, g_level, l_level, float(alpha))
    game = TabularGame(P_g, P_l, r_g, r_l, gamma, n, init=IIDInit(rho_g, rho_l), name=name,
                       meta={**(meta or {}), "estimation": report.summary()})
    return game, report


# ---------------------------------------------------------------------------
# transitions of a tabular game (the synthetic oracle of the estimator's tests)
# ---------------------------------------------------------------------------


def collect_tabular(game: TabularGame, rounds: int, rng: np.random.Generator,
                    pi_g: GlobalPolicy | None = None, pi_l: LocalPolicy | None = None,
                    episode_length: int | None = None,
                    counts: TransitionCounts | None = None) -> TransitionCounts:
    """Simulate ``rounds`` steps of ``game`` agent by agent (vectorized over agents) under
    exploratory policies and record every transition.

    Defaults: ``a_g`` uniform (``pi_g=None``), ``a_l`` uniform (``pi_l=None``); with
    ``pi_g`` given, it acts on a fresh ``k``-subsample each round (SPEC 3). Episodes of
    ``episode_length`` rounds (default: one episode) restart from ``game.init``; every
    call starts a new episode.
    """
    out = counts if counts is not None else TransitionCounts.for_game(game)
    if out.sizes != (game.n_sg, game.n_ag, game.n_sl, game.n_al):
        raise ValueError(f"counts: sizes {out.sizes} do not match the game {game.spaces}")
    from altmarl.histogram import rank

    n = game.n
    T = int(rounds)
    ep_len = int(episode_length or T)
    cdf_l = np.cumsum(game.P_l, axis=-1)
    cdf_g = np.cumsum(game.P_g, axis=-1)
    pol_cdf = None if pi_l is None else np.cumsum(pi_l.table, axis=-1)
    s_g = 0
    x = np.zeros(n, dtype=np.int64)
    for t in range(T):
        if t % ep_len == 0:
            sg0, N0 = game.sample_init(rng, 1)
            s_g = int(sg0[0])
            x = rng.permutation(np.repeat(np.arange(game.n_sl), N0[0]))
            out.add_init(s_g, x)
        if pi_g is None:
            a_g = int(rng.integers(game.n_ag))
        else:
            sub = x[rng.choice(n, pi_g.k, replace=False)]
            h = np.bincount(sub, minlength=game.n_sl)
            a_g = int(pi_g.act_ranked(np.asarray(s_g), rank(h, pi_g.k)))
        if pol_cdf is None:
            a = rng.integers(game.n_al, size=n)
        else:
            a = np.minimum((pol_cdf[x, s_g] < rng.random(n)[:, None]).sum(axis=1),
                           game.n_al - 1)
        x2 = np.minimum((cdf_l[x, s_g, a] < rng.random(n)[:, None]).sum(axis=1),
                        game.n_sl - 1)
        s2 = int(min((cdf_g[s_g, a_g] < rng.random()).sum(), game.n_sg - 1))
        out.add_local(x, np.full(n, s_g), a, game.r_l[x, s_g, a], x2)
        out.add_global(np.asarray([s_g]), np.asarray([a_g]), np.asarray([game.r_g[s_g, a_g]]),
                       np.asarray([s2]))
        x, s_g = x2, s2
    return out


__all__ = [
    "EstimationReport",
    "TransitionCounts",
    "collect_tabular",
    "estimate_game",
]
