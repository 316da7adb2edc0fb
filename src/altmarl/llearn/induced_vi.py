"""Induced-VI (SPEC 5.1): value iteration on the representative agent's induced MDP.

The practice of the paper's experiments and of the authors' code. For a fixed ``pi_g`` the
representative local agent plans over ``(s_l, s_g)`` with the global agent's action treated
as exogenous: ``P(a_g | s_g)`` is estimated by drawing ``m`` ``k``-sample histograms from
each population visited by the *current* joint policy (:func:`global_action_distribution`:
the discounted occupancy of ``(pi_g, pi_l)`` on the count simulator, per ``s_g``), the next
global state is averaged over it, the rewards are ``r_l``; then a greedy (or softmax) policy
(:func:`induced_vi`). Cheap; exact when ``a_g`` does not depend on the population (e.g.
``|A_g| = 1`` or a constant ``pi_g``), approximate otherwise because it ignores how the
local policy moves the population that ``pi_g`` reacts to.

The value iteration itself is :func:`altmarl.planning.value_iteration`; the options are one
frozen :class:`InducedVIOptions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from altmarl import planning
from altmarl._random import SeedLike, rng
from altmarl._validate import check_float, check_instance, check_int
from altmarl.game import TabularGame
from altmarl.histogram import rank
from altmarl.policies import GlobalPolicy, LocalPolicy, greedy, one_hot
from altmarl.sampling import Uniform
from altmarl.simulate import rollout_counts, subsample_histograms

FloatArray = NDArray[np.float64]

#: Monte-Carlo ``k``-sample histograms drawn per visited population (SPEC 5.1's ``m``)
DEFAULT_M: Final = 30
#: rollouts of the joint policy whose visited populations are sampled
DEFAULT_POP_ROLLOUTS: Final = 32
#: steps per such rollout
DEFAULT_POP_HORIZON: Final = 60
#: value iteration stops when ``||V_{t+1} - V_t||_inf <= tol`` ...
DEFAULT_TOL: Final = 1e-8
#: ... or after this many backups
DEFAULT_MAX_ITER: Final = 100_000


@dataclass(frozen=True)
class InducedVIOptions:
    """Options of :func:`induced_vi` (SPEC 5.1), validated on construction.

    ``m``: histograms drawn per visited population; ``pop_rollouts`` x ``pop_horizon``:
    the count-simulator run whose populations are sampled; ``population_iters``: how many
    times ``P(a_g | s_g)`` is re-estimated under the new policy; ``temperature``: ``None``
    for the greedy policy (lowest index on ties), else ``softmax(Q / temperature)``;
    ``tol`` / ``max_iter``: the value-iteration stopping rule. ``ValueError`` names the
    offending field.
    """

    m: int = DEFAULT_M
    pop_rollouts: int = DEFAULT_POP_ROLLOUTS
    pop_horizon: int = DEFAULT_POP_HORIZON
    population_iters: int = 1
    temperature: float | None = None
    tol: float = DEFAULT_TOL
    max_iter: int = DEFAULT_MAX_ITER

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in ("m", "pop_rollouts", "pop_horizon", "population_iters"):
            put(self, name, check_int(name, getattr(self, name)))
        put(self, "max_iter", check_int("max_iter", self.max_iter, minimum=0))
        t = self.temperature
        if t is not None and not (isinstance(t, int | float | np.integer | np.floating)
                                  and not isinstance(t, bool) and t > 0 and math.isfinite(t)):
            raise ValueError(f"temperature = {t!r}: expected None or a number > 0")
        put(self, "tol", check_float("tol", self.tol, positive=True))


def global_action_distribution(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy,
    m: int = DEFAULT_M,
    rollouts: int = DEFAULT_POP_ROLLOUTS,
    horizon: int = DEFAULT_POP_HORIZON,
    rng: np.random.Generator | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """``p[s_g, a_g] ~= P(pi_g(s_g, h) = a_g)`` under the current population (SPEC 5.1).

    The populations are the ones visited by the joint policy ``(pi_g, pi_l)`` on the count
    simulator (``rollouts`` x ``horizon`` steps, weighted by ``gamma^t``: the discounted
    occupancy, per ``s_g``); from each, ``m`` fresh ``k``-sample histograms are drawn (by
    ``pi_g``'s sampling scheme, SPEC 12) and ``pi_g`` is applied with that ``s_g``. A global state never visited uses all visited
    populations. Returns ``p`` and ``{"samples": ...}`` (simulator steps + histograms).
    """
    rng = np.random.default_rng() if rng is None else rng
    tr = rollout_counts(game, pi_g, pi_l, rollouts, horizon, rng, record_counts=True)
    assert tr.counts is not None
    counts = tr.counts.reshape(-1, game.n_sl)
    sgs = tr.s_g.reshape(-1)
    w = np.tile(game.gamma ** np.arange(horizon), rollouts)
    k, G, Ag = pi_g.k, game.n_sg, game.n_ag
    rep = np.repeat(counts, m, axis=0)
    scheme = pi_g.sampling.bind(game)
    if isinstance(scheme, Uniform):
        h = rep if k == game.n else subsample_histograms(rep, k, rng)
        hr = rank(h, k)
    else:  # SPEC 12: the samples the policy sees under its own scheme
        hr = scheme.index(scheme.sample(rep, rng, game.n))
    # action of pi_g for every global state on every drawn histogram: (G, P*m)
    acts = pi_g.actions[:, hr]
    onehot = np.zeros((G, counts.shape[0] * m, Ag))
    np.put_along_axis(onehot, acts[..., None], 1.0, axis=-1)
    per_pop = onehot.reshape(G, counts.shape[0], m, Ag).mean(axis=2)  # (G, P, Ag)
    pooled = np.einsum("p,gpa->ga", w, per_pop) / w.sum()
    p = pooled.copy()
    for g in range(G):
        mask = sgs == g
        if mask.any():
            ww = w[mask]
            p[g] = ww @ per_pop[g, mask] / ww.sum()
    info = {"samples": int(rollouts * horizon + counts.shape[0] * m),
            "visited_s_g": np.bincount(sgs, minlength=G).tolist()}
    return p, info


def induced_vi(
    game: TabularGame,
    pi_g: GlobalPolicy,
    pi_l: LocalPolicy | None = None,
    seed: SeedLike = 0,
    options: InducedVIOptions | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """Value iteration on the representative agent's induced MDP (SPEC 5.1).

    ``Q(s_l, s_g, a) = r_l(s_l, s_g, a) + gamma sum_{s_l', s_g'} P_l(s_l'|s_l, s_g, a)
    Pbar_g(s_g'|s_g) V(s_l', s_g')`` with ``Pbar_g(.|s_g) = sum_a p(a|s_g) P_g(.|s_g, a)``
    and ``p`` from :func:`global_action_distribution` under the population of
    ``(pi_g, pi_l)`` (``pi_l`` defaults to uniform). ``options.population_iters > 1``
    re-estimates ``p`` under the new policy and repeats. The policy is greedy (lowest
    index on ties), or ``softmax(Q / temperature)``. Returns the table and diagnostics
    (``q``, ``iterations``, ``residual``, ``samples``, ``p_ag``).
    """
    o = InducedVIOptions() if options is None else check_instance("options", options,
                                                                  InducedVIOptions)
    gen = rng(seed)
    cur = LocalPolicy.uniform(game) if pi_l is None else pi_l
    samples = 0
    table = cur.table
    q = np.zeros((game.n_sl, game.n_sg, game.n_al))
    it, resid = 0, float("inf")
    p = np.zeros((game.n_sg, game.n_ag))
    for _ in range(o.population_iters):
        p, pinfo = global_action_distribution(game, pi_g, cur, o.m, o.pop_rollouts,
                                              o.pop_horizon, gen)
        samples += pinfo["samples"]
        Pbar = np.einsum("ga,gah->gh", p, game.P_g)
        q, it, resid = _vi(game, Pbar, o.tol, o.max_iter)
        table = policy_from_q(q, o.temperature)
        cur = LocalPolicy(table)
    info = {"q": q, "iterations": it, "residual": resid, "samples": samples,
            "p_ag": p, "population": "discounted occupancy of the current joint policy"}
    return table, info


def _vi(game: TabularGame, Pbar: FloatArray, tol: float, max_iter: int) -> tuple[FloatArray, int, float]:
    """Value iteration on the induced MDP from ``V = 0`` until ``||V_{t+1} - V_t||_inf <= tol``
    (:func:`altmarl.planning.value_iteration`); returns ``(Q, iterations, residual)``."""

    def backup(V: FloatArray) -> FloatArray:
        W = V @ Pbar.T  # W[x', g] = sum_g' V[x', g'] Pbar[g, g']
        return np.asarray(game.r_l + game.gamma * np.einsum("xgay,yg->xga", game.P_l, W))

    res = planning.value_iteration(backup, game.r_l.copy(), np.zeros((game.n_sl, game.n_sg)),
                                   tol, max_iter, stop_on="v")
    return res.q, res.iterations, res.residual


def policy_from_q(q: FloatArray, temperature: float | None = None) -> FloatArray:
    """A local-policy table from ``Q(s_l, s_g, a)``: one-hot greedy
    (:func:`altmarl.policies.greedy`, lowest index on ties) when ``temperature`` is
    ``None``, else ``softmax(Q / temperature)`` (SPEC 5.1's greedy or softmax policy)."""
    if temperature is None:
        return one_hot(greedy(q), q.shape[-1])
    z = (q - q.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)
